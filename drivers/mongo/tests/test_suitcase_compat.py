"""Compatibility with databroker's layout as suitcase-mongo writes it.

Runs recorded by a real RunEngine over ophyd.sim devices are written by suitcase-mongo into
SecantusDB and read back through our catalog; the same runs written by our store give the same
MongoDB documents, collection by collection.
"""

from __future__ import annotations

import numpy as np
import pymongo
import pytest

from intake_broker.store.documents import same_document
from intake_broker.testing import assert_same_documents
from intake_broker_mongo import MongoNormalizedCatalog, MongoStore

serializer = pytest.importorskip("suitcase.mongo_normalized")

COLLECTIONS = {
    "run_start": "uid",
    "run_stop": "uid",
    "event_descriptor": "uid",
    "event": "uid",
    "resource": "uid",
    "datum": "datum_id",
}


@pytest.fixture
def suitcase_written(database_uri, bluesky_runs):
    """(metadatastore URI, asset-registry URI) of databases suitcase-mongo wrote the runs to."""
    mds, assets = database_uri(), database_uri()
    writer = serializer.Serializer(mds, assets)
    for docs in bluesky_runs.values():
        for name, doc in docs:
            writer(name, doc)
    writer._metadatastore_db.client.close()
    writer._asset_registry_db.client.close()
    return mds, assets


@pytest.fixture
def catalog(suitcase_written):
    cat = MongoNormalizedCatalog(*suitcase_written)
    yield cat
    cat.store.close()


def test_runs_written_by_suitcase_read_back_equal(catalog, bluesky_runs):
    assert len(catalog) == len(bluesky_runs)
    for label, docs in bluesky_runs.items():
        run = catalog[docs[0][1]["uid"]]
        assert run.metadata["start"]["plan_name"] == docs[0][1]["plan_name"]
        assert same_document(run.metadata["stop"], docs[-1][1])
        assert_same_documents(list(run.documents()), docs), label


@pytest.mark.parametrize("label", ["scan", "count", "grid_scan", "det_with_conf", "image"])
def test_streams_hold_the_event_values(catalog, bluesky_runs, label):
    docs = bluesky_runs[label]
    run = catalog[docs[0][1]["uid"]]
    descriptors = {d["uid"]: d for n, d in docs if n == "descriptor"}
    for name in run:
        events = [
            d for n, d in docs if n == "event" and descriptors[d["descriptor"]]["name"] == name
        ]
        ds = run[name].read()
        assert ds.sizes["time"] == len(events)
        np.testing.assert_array_equal(ds["time"].values, [e["time"] for e in events])
        for key in events[0]["data"]:
            np.testing.assert_array_equal(
                ds[key].values, np.stack([np.asarray(e["data"][key]) for e in events])
            )
        lazy = run[name].to_dask()
        assert lazy.load().identical(ds)


def test_configuration_and_scan_ids(catalog, bluesky_runs):
    docs = bluesky_runs["det_with_conf"]
    run = catalog[docs[0][1]["scan_id"]]
    assert run.metadata["start"]["uid"] == docs[0][1]["uid"]
    descriptor = next(d for n, d in docs if n == "descriptor")
    ((device, conf),) = descriptor["configuration"].items()  # the device is named "det"
    config = run.primary.config[device].read()
    for key, value in conf["data"].items():
        assert config[key].values.tolist() == [value]
    assert (
        catalog.search({"sample": "sample-grid_scan"})[-1].metadata["start"]["uid"]
        == bluesky_runs["grid_scan"][0][1]["uid"]
    )


def _collections(mds: str, assets: str) -> dict[str, list[dict]]:
    client = pymongo.MongoClient(mds.rsplit("/", 1)[0])
    out = {}
    try:
        for name, key in COLLECTIONS.items():
            db = client[(assets if name in ("resource", "datum") else mds).rsplit("/", 1)[1]]
            out[name] = sorted(db[name].find({}, {"_id": 0}), key=lambda d: d[key])
    finally:
        client.close()
    return out


def test_our_store_writes_what_suitcase_writes(suitcase_written, database_uri, bluesky_runs):
    mds, assets = database_uri(), database_uri()
    store = MongoStore(mds, assets)
    try:
        for docs in bluesky_runs.values():
            for name, doc in docs:
                store(name, doc)  # a RunEngine subscriber
    finally:
        store.close()
    ours, theirs = _collections(mds, assets), _collections(*suitcase_written)
    for name in COLLECTIONS:
        assert len(ours[name]) == len(theirs[name]), name
        for a, b in zip(ours[name], theirs[name], strict=True):
            assert same_document(a, b), f"{name} differs:\n{a}\n!=\n{b}"
    assert len(theirs["event"]) == sum(n == "event" for d in bluesky_runs.values() for n, _ in d)


def test_reinserting_into_a_suitcase_database_changes_nothing(suitcase_written, bluesky_runs):
    before = _collections(*suitcase_written)
    store = MongoStore(*suitcase_written, create_indexes=False)
    try:
        for docs in bluesky_runs.values():
            for name, doc in docs:
                store.insert(name, doc)
    finally:
        store.close()
    after = _collections(*suitcase_written)
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
