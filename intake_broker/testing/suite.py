"""``DocumentStoreTests``: the conformance suite every store passes.

Use it like zarr's or fsspec's shared suites::

    from intake_broker.testing import DocumentStoreTests

    class TestMyStore(DocumentStoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)          # new and empty, writable

        def reopen(self, store):
            return MyStore(store.path)        # a new object over the same data

A new backend is done when this passes, not when it imports.
"""

from __future__ import annotations

import pickle

import event_model
import numpy as np
import pytest

from intake_broker.errors import AmbiguousUID, DocumentConflict, InvalidDocument, RunNotFound
from intake_broker.queries import (
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    NotEq,
    NotIn,
    PartialUID,
    Regex,
    TimeRange,
)
from intake_broker.store.contract import DocumentStore
from intake_broker.store.documents import datum_page_rows, event_page_rows, same_document
from intake_broker.testing import factories
from intake_broker.testing.factories import insert_all
from intake_broker.views.catalog import BrokerCatalog


def unpacked(docs) -> list[tuple[str, dict]]:
    """Documents with every page split into single events / datums, for comparison."""
    out = []
    for name, doc in docs:
        if name == "event_page":
            out += [("event", e) for e in event_page_rows(doc)]
        elif name == "datum_page":
            out += [("datum", d) for d in datum_page_rows(doc)]
        else:
            out.append((name, dict(doc)))  # a copy: the caller's documents stay as they are
    for _, doc in out:
        doc.pop("filled", None)  # event-model adds an empty 'filled' when packing
    return out


def assert_same_documents(got, expected) -> None:
    got, expected = unpacked(got), unpacked(expected)
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (name, a), (_, b) in zip(got, expected, strict=True):
        assert same_document(a, b), f"{name} differs:\n{a}\n!=\n{b}"


class DocumentStoreTests:
    """The contract of :class:`~intake_broker.store.DocumentStore`, as tests."""

    @pytest.fixture
    def store(self) -> DocumentStore:
        raise NotImplementedError("a store's test class defines the 'store' fixture")

    def reopen(self, store: DocumentStore) -> DocumentStore:
        """A new store object over the same data; stores that persist override this."""
        return store

    @pytest.fixture
    def catalog(self, store) -> BrokerCatalog:
        return BrokerCatalog(store)

    # -- documents in, documents out ------------------------------------------------------

    @pytest.mark.parametrize(
        "make",
        [
            factories.scalar_run,
            factories.image_run,
            factories.reconfigured_run,
            factories.asset_run,
        ],
    )
    def test_every_document_type_round_trips(self, store, make):
        docs = make()
        insert_all(store, docs)
        store = self.reopen(store)
        uid = docs[0][1]["uid"]
        assert_same_documents(list(store.documents(uid)), docs)

    def test_event_pages_round_trip(self, store):
        docs = factories.scalar_run(page=True, n=7)
        insert_all(store, docs)
        uid = docs[0][1]["uid"]
        assert_same_documents(list(self.reopen(store).documents(uid)), docs)

    def test_documents_come_in_time_order(self, store):
        docs = factories.scalar_run(n=4)
        insert_all(store, docs)
        got = list(self.reopen(store).documents(docs[0][1]["uid"]))
        assert got[0][0] == "start" and got[-1][0] == "stop"
        times = [
            doc["time"] if name != "event_page" else doc["time"][0]
            for name, doc in got
            if name in ("descriptor", "event_page")
        ]
        assert times == sorted(times)

    def test_identical_reinsert_is_a_no_op(self, store):
        docs = factories.scalar_run(n=3)
        insert_all(store, docs)
        insert_all(store, docs)  # every document again, including events and the stop
        store = self.reopen(store)
        uid = docs[0][1]["uid"]
        assert store.count() == 1
        assert_same_documents(list(store.documents(uid)), docs)

    @pytest.mark.parametrize("kind", ["start", "descriptor", "event", "stop"])
    def test_conflicting_document_is_refused_and_changes_nothing(self, store, kind):
        docs = factories.scalar_run(n=3)
        insert_all(store, docs)
        name, original = next((n, d) for n, d in reversed(docs) if n == kind)
        changed = {**original, "time": original["time"] + 1.0}
        with pytest.raises(DocumentConflict, match="uid"):
            store.insert(name, changed)
        uid = docs[0][1]["uid"]
        assert_same_documents(list(self.reopen(store).documents(uid)), docs)

    def test_event_of_unknown_descriptor_is_refused(self, store):
        docs = factories.scalar_run(n=2)
        insert_all(store, docs)
        stray = dict(docs[3][1], uid="not-stored-before", descriptor="no-such-descriptor")
        with pytest.raises(InvalidDocument, match="no-such-descriptor"):
            store.insert("event", stray)
        assert_same_documents(list(self.reopen(store).documents(docs[0][1]["uid"])), docs)

    def test_document_failing_its_schema_is_refused(self, store):
        docs = factories.scalar_run(n=1)
        insert_all(store, docs[:2])
        bad = dict(docs[2][1])
        del bad["data_keys"]
        with pytest.raises(InvalidDocument, match="data_keys"):
            store.insert("descriptor", bad)
        assert store.count() == 1

    def test_unknown_document_name_is_refused(self, store):
        with pytest.raises(InvalidDocument, match="expected one of"):
            store.insert("evnet", {"uid": "x"})

    # -- which runs -----------------------------------------------------------------------

    def test_runs_list_newest_first_with_pagination(self, store):
        runs = list(factories.many_runs(12))
        for docs in reversed(runs):  # insertion order must not matter
            insert_all(store, docs)
        store = self.reopen(store)
        newest_first = [d[0][1]["uid"] for d in reversed(runs)]
        assert [r.uid for r in store.runs()] == newest_first
        assert [r.uid for r in store.runs(skip=3, limit=4)] == newest_first[3:7]
        assert [r.uid for r in store.runs(skip=10, limit=5)] == newest_first[10:]
        assert [r.uid for r in store.runs(sort=[("time", 1)], limit=2)] == newest_first[::-1][:2]
        assert store.count() == 12

    def test_lookup_by_uid_prefix_scan_id_and_index(self, store, catalog):
        runs = list(factories.many_runs(5))
        for docs in runs:
            insert_all(store, docs)
        catalog = BrokerCatalog(self.reopen(store))
        uid = runs[2][0][1]["uid"]
        assert catalog[uid].metadata["start"]["uid"] == uid
        assert catalog[uid[:8]].metadata["start"]["uid"] == uid
        assert catalog[3].metadata["start"]["uid"] == uid
        assert catalog[-1].metadata["start"]["uid"] == runs[-1][0][1]["uid"]
        assert catalog[-5].metadata["start"]["uid"] == runs[0][0][1]["uid"]
        assert len(catalog) == 5
        assert list(catalog) == [d[0][1]["uid"] for d in reversed(runs)]
        with pytest.raises(RunNotFound):
            catalog[-6]
        with pytest.raises(RunNotFound):
            catalog["ffffffffffffffff"]
        with pytest.raises(RunNotFound):
            catalog[999]

    def test_scan_id_gives_the_newest_run_with_it(self, store):
        old = factories.scalar_run(time=1_600_000_000, scan_id=42)
        new = factories.scalar_run(time=1_600_009_000, scan_id=42)
        insert_all(store, new)
        insert_all(store, old)
        assert BrokerCatalog(self.reopen(store))[42].metadata["start"]["uid"] == new[0][1]["uid"]

    def test_ambiguous_uid_prefix_names_the_candidates(self, store):
        uids = ["abcd1234-0000-4000-8000-000000000001", "abcd9999-0000-4000-8000-000000000002"]
        for i, uid in enumerate(uids):
            insert_all(store, factories.scalar_run(uid=uid, time=1_600_000_000 + i, n=1))
        catalog = BrokerCatalog(self.reopen(store))
        with pytest.raises(AmbiguousUID) as info:
            catalog["abcd"]
        assert set(info.value.candidates) == set(uids)
        assert uids[0] in str(info.value) and uids[1] in str(info.value)
        assert catalog["abcd9"].metadata["start"]["uid"] == uids[1]

    def test_core_queries(self, store):
        for docs in factories.many_runs(6):
            insert_all(store, docs)
        insert_all(
            store,
            factories.scalar_run(
                time=1_650_000_000, scan_id=100, sample={"name": "LaB6"}, stop=False
            ),
        )
        store = self.reopen(store)

        def scan_ids(query):
            return sorted(r.start["scan_id"] for r in store.runs(query))

        assert scan_ids(Eq("plan_name", "count")) == [1, 3, 5]
        assert scan_ids(NotEq("plan_name", "count")) == [2, 4, 6, 100]
        assert scan_ids(Comparison("gt", "scan_id", 4)) == [5, 6, 100]
        assert scan_ids(Comparison("le", "scan_id", 2)) == [1, 2]
        assert scan_ids(In("scan_id", [2, 3, 77])) == [2, 3]
        assert scan_ids(NotIn("scan_id", [1, 2, 3, 4])) == [5, 6, 100]
        assert scan_ids(Regex("plan_name", "^sc")) == [2, 4, 6, 100]
        assert scan_ids(Contains("motors", "motor")) == [1, 2, 3, 4, 5, 6, 100]
        assert scan_ids(KeyPresent("sample")) == [100]
        assert scan_ids(Eq("sample.name", "LaB6")) == [100]
        assert scan_ids(KeyPresent("stop.exit_status", present=False)) == [100]
        assert scan_ids(Eq("stop.exit_status", "success")) == [1, 2, 3, 4, 5, 6]
        assert scan_ids(TimeRange(since=1_600_000_100, until=1_600_000_250)) == [3, 4, 5]
        assert scan_ids(Eq("plan_name", "scan") & Comparison("lt", "scan_id", 5)) == [2, 4]
        assert scan_ids(Eq("scan_id", 1) | Eq("scan_id", 6)) == [1, 6]
        assert scan_ids(~Eq("plan_name", "scan")) == [1, 3, 5]
        assert store.count(Eq("plan_name", "count")) == 3
        uid = store.runs(Eq("scan_id", 4))[0].uid
        assert [r.uid for r in store.runs(PartialUID(uid[:6]))] == [uid]

    def test_search_returns_a_catalog_and_takes_mongo_dicts(self, store):
        for docs in factories.many_runs(6):
            insert_all(store, docs)
        catalog = BrokerCatalog(self.reopen(store))
        counts = catalog.search({"plan_name": "count"})
        assert isinstance(counts, BrokerCatalog) and len(counts) == 3
        narrower = counts.search({"scan_id": {"$gte": 3}})
        assert sorted(
            catalog_run.metadata["start"]["scan_id"] for _, catalog_run in narrower.items()
        ) == [3, 5]
        with pytest.raises(RunNotFound):
            narrower[1]  # in the store, but not in this search
        assert narrower[-1].metadata["start"]["scan_id"] == 5

    # -- streams --------------------------------------------------------------------------

    def test_read_events_for_a_seq_range_and_fields(self, store):
        docs = factories.scalar_run(n=10)
        insert_all(store, docs)
        store = self.reopen(store)
        uid = docs[0][1]["uid"]
        primary = next(d for d in store.descriptors(uid) if d["name"] == "primary")
        cols = store.read_events(primary["uid"], fields=["det"], seq_range=(3, 7))
        events = [d for n, d in docs if n == "event" and d["descriptor"] == primary["uid"]]
        assert list(cols.seq_num) == [3, 4, 5, 6]
        assert set(cols.data) == {"det"}
        np.testing.assert_array_equal(cols.data["det"], [e["data"]["det"] for e in events[2:6]])
        np.testing.assert_array_equal(cols.time, [e["time"] for e in events[2:6]])
        np.testing.assert_array_equal(
            cols.timestamps["det"], [e["timestamps"]["det"] for e in events[2:6]]
        )
        only_index = store.read_events(primary["uid"], fields=[])
        assert only_index.data == {} and list(only_index.seq_num) == list(range(1, 11))
        assert sum(c.rows for c in store.event_chunks(primary["uid"])) == 10

    def test_stream_as_xarray(self, store, catalog):
        docs = factories.scalar_run(n=6)
        insert_all(store, docs)
        run = BrokerCatalog(self.reopen(store))[-1]
        assert list(run) == ["baseline", "primary"] or set(run) == {"baseline", "primary"}
        lazy = run.primary.to_dask()
        assert lazy["det"].chunks is not None  # dask-backed
        ds = run.primary.read()
        events = [d for n, d in docs if n == "event" and d["descriptor"] == docs[2][1]["uid"]]
        assert ds.sizes["time"] == 6
        for key in ("motor", "det", "count"):
            np.testing.assert_array_equal(ds[key].values, [e["data"][key] for e in events])
        assert ds["count"].dtype == np.int64 and ds["motor"].attrs["units"] == "mm"
        assert lazy.load().identical(ds)  # the dask graph and the eager read agree
        # databroker's variables: the data keys and the time coordinate, nothing else
        assert set(ds.variables) == {"motor", "det", "count", "time"}
        assert list(ds.coords) == ["time"]
        assert list(ds.to_dataframe().columns) == list(ds.data_vars)
        numbered = run.primary(seq_num=True)
        np.testing.assert_array_equal(numbered.read()["seq_num"].values, range(1, 7))
        assert numbered.to_dask().load().identical(numbered.read())
        assert list(numbered.read(["det"]).coords) == ["time", "seq_num"]
        np.testing.assert_array_equal(ds["time"].values, [e["time"] for e in events])
        assert list(run.primary(include=["det"]).read().data_vars) == ["det"]
        assert "det" not in run.primary(exclude=["det"]).read().data_vars
        timestamps = run.primary.timestamps.read()
        np.testing.assert_array_equal(
            timestamps["det"].values, [e["timestamps"]["det"] for e in events]
        )
        config = run.primary.config["det"].read()
        np.testing.assert_array_equal(config["exposure"].values, [0.1] * 6)
        assert run.baseline.read()["temperature"].values.tolist() == [290.0, 291.5]

    def test_array_data_keep_their_dims_and_dtype(self, store):
        docs = factories.image_run(n=3, shape=(4, 5))
        insert_all(store, docs)
        ds = BrokerCatalog(self.reopen(store))[-1].primary.read()
        assert ds["image"].dims == ("time", "y", "x")
        assert ds["image"].dtype == np.uint16 and ds["image"].shape == (3, 4, 5)
        for i, (_, event) in enumerate(d for d in docs if d[0] == "event"):
            np.testing.assert_array_equal(ds["image"][i].values, event["data"]["image"])

    def test_chunks_follow_pages_not_events(self, store):
        docs = factories.scalar_run(n=2500)
        insert_all(store, docs)
        ds = BrokerCatalog(self.reopen(store))[-1].primary(seq_num=True).to_dask()
        chunks = ds["det"].chunks[0]
        assert sum(chunks) == 2500 and len(chunks) < 50
        np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, 2501))
        np.testing.assert_array_equal(ds["det"].values, ds.load()["det"].values)

    def test_several_descriptors_of_one_stream_concatenate(self, store):
        docs = factories.reconfigured_run()
        insert_all(store, docs)
        run = BrokerCatalog(self.reopen(store))[-1]
        assert list(run) == ["primary"]
        ds = run.primary(seq_num=True).read()
        assert ds["det"].values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert ds["seq_num"].values.tolist() == [1, 2, 3, 4, 5, 6]
        exposure = run.primary.config["det"].read()["exposure"].values.tolist()
        assert exposure == [0.1, 0.1, 0.1, 0.5, 0.5, 0.5]

    def test_run_without_stop_is_readable_and_incomplete(self, store):
        docs = factories.scalar_run(n=4, stop=False)
        insert_all(store, docs)
        catalog = BrokerCatalog(self.reopen(store))
        run = catalog[-1]
        assert run.metadata["stop"] is None and not run.complete
        assert not store.runs()[0].complete
        assert run.primary.read()["det"].shape == (4,)
        assert [n for n, _ in run.documents()][-1] == "event_page"

    def test_runs_pickle(self, store):
        docs = factories.scalar_run(n=3)
        insert_all(store, docs)
        run = BrokerCatalog(self.reopen(store))[-1]
        clone = pickle.loads(pickle.dumps(run))
        assert clone.metadata == run.metadata
        np.testing.assert_array_equal(clone.primary.read()["det"], run.primary.read()["det"])

    def test_stream_datum_and_resources_are_reachable(self, store):
        docs = factories.asset_run()
        insert_all(store, docs)
        store = self.reopen(store)
        uid = docs[0][1]["uid"]
        resource = next(d for n, d in docs if n == "resource")
        assert store.resource(uid, resource["uid"]) == resource
        datum_ids = [d["datum_id"] for p in store.datum_pages(uid) for d in datum_page_rows(p)]
        assert len(datum_ids) == 3
        assert event_model.DocumentNames is not None  # the suite relies on event-model's names
