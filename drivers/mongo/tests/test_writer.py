"""Writing: a RunEngine subscriber, idempotent, refusing conflicts before writing anything,
with suitcase-mongo's indexes."""

from __future__ import annotations

import event_model
import numpy as np
import pytest

from intake_broker.errors import DocumentConflict, InvalidDocument
from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker_mongo import EXTRA_INDEXES, SUITCASE_INDEXES, MongoNormalizedCatalog


def _counts(store) -> dict[str, int]:
    return {
        name: store._collection(name).count_documents({})
        for name in (
            "run_start",
            "run_stop",
            "event_descriptor",
            "event",
            "resource",
            "datum",
            "stream_resource",
            "stream_datum",
        )
    }


def test_runengine_subscriber_records_a_run(store, bluesky_runs):
    pytest.importorskip("bluesky")
    from bluesky import RunEngine
    from bluesky.plans import scan
    from ophyd.sim import det, motor

    RE = RunEngine({}, call_returns_result=False)
    emitted = []
    RE.subscribe(store)
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    (uid,) = RE(scan([det], motor, -1, 1, 7))
    cat = MongoNormalizedCatalog(*(loc.uri for loc in store.locations))
    try:
        ds = cat[-1].primary.read()
        assert cat[-1].metadata["start"]["uid"] == uid
        events = [d for n, d in emitted if n == "event"]
        np.testing.assert_array_equal(ds["det"].values, [e["data"]["det"] for e in events])
        assert_same_documents(list(cat[uid].documents()), emitted)
    finally:
        cat.store.close()


def test_identical_documents_are_a_no_op(store, bluesky_runs):
    for docs in bluesky_runs.values():
        insert_all(store, docs)
    before = _counts(store)
    for docs in bluesky_runs.values():
        insert_all(store, docs)
        for name, doc in docs:  # events again, as one page
            if name == "event":
                store.insert("event_page", event_model.pack_event_page(doc))
    assert _counts(store) == before
    assert before["event"] == sum(n == "event" for d in bluesky_runs.values() for n, _ in d)


def test_pages_are_stored_as_single_documents(store):
    docs = factories.scalar_run(n=6, page=True)
    insert_all(store, docs)
    assert store._collection("event").count_documents({}) == 6 + 2  # primary page + baseline
    stored = store._collection("event").find_one({"seq_num": 3}, {"_id": 0})
    assert set(stored) == {"uid", "descriptor", "seq_num", "time", "data", "timestamps", "filled"}
    assets = factories.asset_run()
    insert_all(store, assets)
    assert store._collection("datum").count_documents({}) == 3
    assert set(store._collection("datum").find_one({}, {"_id": 0})) == {
        "datum_id",
        "resource",
        "datum_kwargs",
    }


def test_conflicts_are_refused_before_anything_is_written(store):
    docs = factories.scalar_run(n=3)
    insert_all(store, docs)
    before = _counts(store)
    start, stop = docs[0][1], docs[-1][1]
    other_stop = dict(stop, uid="another-stop-uid")
    with pytest.raises(DocumentConflict, match="uid"):
        store.insert("stop", other_stop)
    events = [d for n, d in docs if n == "event" and d["descriptor"] == docs[2][1]["uid"]]
    bundle_desc = docs[2][1]
    new_event = dict(events[0], uid="a-new-event-uid", seq_num=99)
    with pytest.raises(InvalidDocument, match="has stopped"):  # the run has stopped: no new event
        store.insert("event_page", event_model.pack_event_page(new_event, events[1]))
    with pytest.raises(InvalidDocument, match="data keys"):
        store.insert("event", dict(new_event, data={"det": 1.0}, timestamps={"det": 1.0}))
    with pytest.raises(InvalidDocument, match="no-such-resource"):
        store.insert(
            "datum", {"datum_id": "d/0", "resource": "no-such-resource", "datum_kwargs": {}}
        )
    with pytest.raises(InvalidDocument, match="run start"):
        store.insert("descriptor", dict(bundle_desc, uid="d2", run_start="no-such-run"))
    changed = dict(start, plan_name="something else")
    with pytest.raises(DocumentConflict, match="plan_name"):
        store.insert("start", changed)
    assert _counts(store) == before


def test_numpy_values_are_stored_as_plain_bson(store):
    bundle = event_model.compose_run(
        metadata={"scan_id": 5, "ratio": np.float32(0.5), "shape": np.array([2, 3])}
    )
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"img": {"dtype": "array", "shape": [2, 3], "source": "x"}}
    )
    image = np.arange(6, dtype=np.uint16).reshape(2, 3)
    docs = [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("event", desc.compose_event(data={"img": image}, timestamps={"img": 1.0})),
        ("stop", bundle.compose_stop()),
    ]
    insert_all(store, docs)
    insert_all(store, docs)  # numpy against stored lists: still identical
    start = store.run(bundle.start_doc["uid"]).start
    assert start["scan_id"] == 5 and start["shape"] == [2, 3] and start["ratio"] == 0.5
    cat = MongoNormalizedCatalog(*(loc.uri for loc in store.locations))
    try:
        np.testing.assert_array_equal(cat[-1].primary.read()["img"].values[0], image)
    finally:
        cat.store.close()


def test_the_first_write_creates_suitcase_indexes(store):
    insert_all(store, factories.scalar_run(n=1))
    refused = store.create_indexes()  # idempotent; SecantusDB has no text indexes
    assert all("text" in r for r in refused)
    for collection, keys, options in SUITCASE_INDEXES + EXTRA_INDEXES:
        if any(kind == "text" for _, kind in keys):
            continue
        info = store._collection(collection).index_information()
        found = {tuple((k, int(v)) for k, v in spec["key"]): spec for spec in info.values()}
        spec = found.get(tuple((k, int(v)) for k, v in keys))
        assert spec is not None, (collection, keys)
        assert bool(spec.get("unique")) == bool(options.get("unique")), (collection, keys)
