"""Documents from a real RunEngine (bluesky + ophyd.sim), live and replayed."""

from __future__ import annotations

import numpy as np
import pytest

from intake_broker.store.documents import same_document
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import assert_same_documents, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeCatalog, NativeStore


def test_runs_read_as_the_memory_store_reads_them(bluesky_runs, tmp_path):
    native = NativeStore.in_folder(tmp_path, chunk_rows=3)
    memory = MemoryStore()
    for docs in bluesky_runs.values():
        insert_all(native, docs)
        insert_all(memory, docs)
    ours, reference = BrokerCatalog(NativeStore(native.index)), BrokerCatalog(memory)
    assert list(ours) == list(reference)
    for label, docs in bluesky_runs.items():
        uid = docs[0][1]["uid"]
        assert_same_documents(list(ours.store.documents(uid)), docs)
        run, expected = ours[uid], reference[uid]
        assert list(run) == list(expected)  # (JSON keeps tuples as lists: compare by value)
        assert same_document(dict(run.metadata), dict(expected.metadata))
        for stream in run:
            got, want = run[stream].read(), expected[stream].read()
            assert got.identical(want), f"{label}/{stream}"
            assert run[stream].to_dask().load().identical(want)
    assert (
        ours.search({"sample.name": "sample-grid_scan"})[-1].metadata["start"]["plan_name"]
        == "grid_scan"
    )


def test_live_subscription(tmp_path, postgres_url):
    pytest.importorskip("bluesky")
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, motor

    cat = NativeCatalog(postgres_url, str(tmp_path / "data"))
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(cat.insert)
    (uid,) = RE(bp.scan([det], motor, -1, 1, 7))
    run = NativeCatalog(postgres_url)[uid]
    assert run.complete and run.metadata["stop"]["num_events"] == {"primary": 7}
    ds = run.primary.read()
    np.testing.assert_allclose(ds["motor"].values, np.linspace(-1, 1, 7))
    np.testing.assert_allclose(ds["det"].values, np.exp(-(np.linspace(-1, 1, 7) ** 2) / 2))
