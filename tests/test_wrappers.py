"""The conformance suites over the wrappers: the access guard and a federation must answer the
whole store contract as the store behind them does (a forgotten forward fails here)."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.errors import NotSupported, ReadOnlyStore
from intake_broker.federation import FederatedStore
from intake_broker.store.abilities import FolderStore, abilities, flush
from intake_broker.testing import DocumentStoreTests, QueryTests, factories, insert_all
from intake_broker.testing.factories import ad_hdf5_run

#: Sees (and writes) the runs without a proposal, as the suites write them, through the filter.
POLICY = ProposalPolicy(deny_unlabelled=False)
ADA = Principal("ada", proposals=("p-1",))


#: Where the suites' assets are (the factories' /data, pytest's temporary folders): a guard
#: reads assets only under its roots.
ROOTS = ["/data", tempfile.gettempdir()]


def guarded(store):
    return GuardedStore(store, POLICY, ADA, asset_roots=ROOTS)


class WritingFederation(FederatedStore):
    """A federation whose inserts go to its last member, for the suites only (federations are
    read-only): every read goes through the federation, past an empty first member."""

    writable = True  # type: ignore[assignment]

    def put(self, kind, doc):
        list(self.members.values())[-1].open().put(kind, doc)


def federated(store):
    return WritingFederation({"empty": MemoryStore(), "holder": store})


class TestGuardedMemory(DocumentStoreTests):
    @pytest.fixture
    def store(self):
        return guarded(MemoryStore(chunk_rows=1000))


class TestGuardedMemoryQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls):
        return guarded(MemoryStore(validate=False))


class TestFederatedMemory(DocumentStoreTests):
    @pytest.fixture
    def store(self):
        return federated(MemoryStore(chunk_rows=1000))


class TestFederatedMemoryQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls):
        return federated(MemoryStore(validate=False))


@pytest.mark.parametrize("wrap", [guarded, federated, lambda s: guarded(federated(s))])
def test_asset_frames_read_through_wrappers(tmp_path, wrap):
    docs, frames = ad_hdf5_run(tmp_path)
    inner = MemoryStore()
    insert_all(inner, docs)
    run = BrokerCatalog(wrap(inner))[-1]
    np.testing.assert_array_equal(run.primary.read()["cam_image"].values, frames)
    pages = [d for n, d in run.documents(fill="yes") if n == "event_page"]
    np.testing.assert_array_equal(np.concatenate([p["data"]["cam_image"] for p in pages]), frames)


def test_wrappers_have_the_abilities_of_the_store_behind():
    inner = MemoryStore()
    assert abilities(inner) == ["DescriptorIndex", "ResourceIndex", "SummaryKeeper", "Annotations"]
    assert abilities(guarded(inner)) == abilities(inner)
    assert not guarded(inner).supports(FolderStore)
    fed = FederatedStore({"a": inner})
    # annotations follow a run to the member holding it (tests/test_annotations.py)
    # ... and a descriptor's run is asked of the members (what a server worker needs)
    assert abilities(fed) == ["DescriptorIndex", "Annotations"]
    with pytest.raises(ReadOnlyStore, match="read-only"):
        fed.put("start", {})
    assert issubclass(ReadOnlyStore, NotSupported)


def test_a_missing_ability_is_one_clear_error(tmp_path):
    docs, _ = ad_hdf5_run(tmp_path)
    inner = MemoryStore()
    insert_all(inner, docs)
    uid = docs[0][1]["uid"]
    stats = {"min": 0, "max": 1, "mean": 0.5, "sum": 1, "count": 2}
    through = guarded(FederatedStore({"a": inner}))  # a federation keeps no summaries
    with pytest.raises(NotSupported, match="FederatedStore cannot keep summaries.*SummaryKeeper"):
        through.set_summary(uid, "primary", "cam_image", stats)
    guarded(inner).set_summary(uid, "primary", "cam_image", stats)  # the memory store can
    assert inner.summary(uid)["primary"]["cam_image"]["max"] == 1


def test_a_federation_finds_a_descriptors_run_in_any_member(tmp_path):
    from intake_broker.errors import DescriptorNotFound

    files = pytest.importorskip("intake_broker_files")
    first, second = MemoryStore(), files.MsgpackStore.in_folder(tmp_path / "runs")
    docs = factories.scalar_run(n=2, scan_id=1)
    insert_all(second, docs)
    flush(second)
    insert_all(first, factories.scalar_run(n=2, scan_id=2, time=1_700_000_100.0))
    descriptor = next(d for n, d in docs if n == "descriptor")["uid"]
    fed = FederatedStore({"a": first, "b": second})  # nothing listed before
    assert fed.descriptor_run(descriptor) == docs[0][1]["uid"]
    assert len(fed.read_events(descriptor)) == 2
    with pytest.raises(DescriptorNotFound, match="no member"):
        fed.descriptor_run("0" * 36)
    guarded_fed = guarded(fed)
    assert guarded_fed.descriptor_run(descriptor) == docs[0][1]["uid"]
