"""The conformance suite on the built-in memory store."""

from __future__ import annotations

import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import DocumentStoreTests, QueryTests, factories, insert_all
from intake_broker.views.catalog import BrokerCatalog


class TestMemoryStore(DocumentStoreTests):
    @pytest.fixture
    def store(self):
        return MemoryStore(chunk_rows=1000)


class TestMemoryStoreQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls):
        return MemoryStore(validate=False)


def test_kept_search_answers_follow_every_change():
    from intake_broker.queries import Comparison

    store = MemoryStore()
    runs = [
        factories.scalar_run(n=3, time=1_600_000_000 + 60 * i, scan_id=i + 1) for i in range(30)
    ]
    for docs in runs[:20]:
        insert_all(store, docs)
    cat = BrokerCatalog(store)
    query = Comparison("gt", "scan_id", 5)
    assert len(cat.search(query)) == 15
    pages = [store.runs(query, skip=i, limit=4) for i in range(0, 15, 4)]
    assert [r.uid for page in pages for r in page] == [r.uid for r in store.runs(query)]
    for docs in runs[20:]:  # new runs are seen at once
        insert_all(store, docs)
    assert len(cat.search(query)) == 25
    assert store.runs(query, limit=1)[0].uid == runs[-1][0][1]["uid"]
    summary = Comparison("gt", "summary.primary.det.max", 1e9)
    assert store.runs(summary) == []
    store.set_summary(runs[0][0][1]["uid"], "primary", "det", {"max": 2e9})  # a kept summary
    assert [r.uid for r in store.runs(summary)] == [runs[0][0][1]["uid"]]


def test_kept_answers_tell_bools_from_numbers():
    from intake_broker.queries import Eq

    store = MemoryStore()
    flagged = factories.scalar_run(n=1, scan_id=1)
    flagged[0][1]["flag"] = True
    counted = factories.scalar_run(n=1, scan_id=2, time=1_700_000_100.0)
    counted[0][1]["flag"] = 1
    for docs in (flagged, counted):
        insert_all(store, docs)
    # equal as Python objects (True == 1), different as queries: bools are not numbers
    assert [r.uid for r in store.runs(Eq("flag", True))] == [flagged[0][1]["uid"]]
    assert [r.uid for r in store.runs(Eq("flag", 1))] == [counted[0][1]["uid"]]
