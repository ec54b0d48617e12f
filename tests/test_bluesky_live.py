"""Real documents: a bluesky RunEngine with ophyd.sim devices writing live into a catalog."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import intake_broker
from intake_broker.errors import InvalidDocument, RunNotFound
from intake_broker.testing import assert_same_documents

bluesky = pytest.importorskip("bluesky")
from bluesky import RunEngine  # noqa: E402
from bluesky.plans import count, grid_scan, scan  # noqa: E402
from ophyd.sim import det, det4, det_with_conf, direct_img, motor, motor1, motor2  # noqa: E402


@pytest.fixture(scope="module")
def recorded():
    """Five runs recorded live through ``RE.subscribe(cat.insert)``, and their documents."""
    cat = intake_broker.temp()
    RE = RunEngine()
    RE.subscribe(cat.insert)
    docs: dict[str, list] = {}

    def keep(name, doc):
        if name == "start":
            docs[doc["uid"]] = []
            keep.current = doc["uid"]
        docs[keep.current].append((name, doc))

    RE.subscribe(keep)
    uids = {}
    uids["scan"] = RE(scan([det], motor, -1, 1, 5))[0]
    uids["count"] = RE(count([det], 3))[0]
    uids["grid"] = RE(grid_scan([det4], motor1, -1, 1, 3, motor2, -1, 1, 4))[0]
    uids["conf"] = RE(count([det_with_conf], 2))[0]
    uids["img"] = RE(count([direct_img], 2))[0]
    return cat, uids, docs


def events_of(documents, stream="primary"):
    descriptors = {d["uid"] for n, d in documents if n == "descriptor" and d["name"] == stream}
    return [d for n, d in documents if n == "event" and d["descriptor"] in descriptors]


def test_every_run_is_listed_newest_first(recorded):
    cat, uids, _ = recorded
    assert len(cat) == 5
    assert list(cat) == [uids[k] for k in ("img", "conf", "grid", "count", "scan")]
    assert cat[-1].metadata["start"]["plan_name"] == "count"


@pytest.mark.parametrize("which", ["scan", "count", "grid", "conf", "img"])
def test_values_equal_the_documents(recorded, which):
    cat, uids, docs = recorded
    run = cat[uids[which]]
    documents = docs[uids[which]]
    assert run.metadata["start"] == documents[0][1]
    assert run.metadata["stop"] == documents[-1][1]
    events = events_of(documents)
    ds = run.primary(seq_num=True).read()
    assert ds.sizes["time"] == len(events)
    np.testing.assert_array_equal(ds["seq_num"], [e["seq_num"] for e in events])
    np.testing.assert_array_equal(ds["time"], [e["time"] for e in events])
    for key in events[0]["data"]:
        expected = np.asarray([e["data"][key] for e in events])
        np.testing.assert_array_equal(ds[key].values, expected)
        np.testing.assert_array_equal(
            run.primary.timestamps.read()[key], [e["timestamps"][key] for e in events]
        )
    assert_same_documents(list(run.documents()), documents)


def test_grid_scan_shape_and_motors(recorded):
    cat, uids, _ = recorded
    ds = cat[uids["grid"]].primary.read()
    assert ds.sizes["time"] == 12
    assert set(ds.data_vars) >= {"det4", "motor1", "motor2"}
    assert sorted(set(ds["motor1"].values.round(6))) == [-1.0, 0.0, 1.0]


def test_image_keeps_its_shape(recorded):
    cat, uids, docs = recorded
    ds = cat[uids["img"]].primary.read()
    assert ds["img"].shape == (2, 10, 10)
    for event, frame in zip(events_of(docs[uids["img"]]), ds["img"].values, strict=True):
        np.testing.assert_array_equal(frame, event["data"]["img"])


def test_configuration_is_read_from_descriptors(recorded):
    cat, uids, docs = recorded
    run = cat[uids["conf"]]
    descriptor = next(d for n, d in docs[uids["conf"]] if n == "descriptor")
    config = run.primary.config["det"].read()
    for key, value in descriptor["configuration"]["det"]["data"].items():
        assert config[key].values.tolist() == [value, value]


def test_lookups_like_databroker(recorded):
    cat, uids, _ = recorded
    scan_id = cat[uids["grid"]].metadata["start"]["scan_id"]
    assert cat[scan_id].metadata["start"]["uid"] == uids["grid"]
    assert cat[uids["grid"][:6]].metadata["start"]["uid"] == uids["grid"]
    assert len(cat.search({"plan_name": "count"})) == 3
    with pytest.raises(RunNotFound, match="no run"):
        cat["0000000000"]


def test_runs_pickle_for_dask_workers(recorded):
    cat, uids, _ = recorded
    run = pickle.loads(pickle.dumps(cat[uids["scan"]]))
    assert run.primary.read()["det"].shape == (5,)


def test_live_run_is_readable_before_its_stop():
    cat = intake_broker.temp()
    RE = RunEngine()
    seen = []

    def peek(name, doc):
        cat.insert(name, doc)
        if name == "event" and doc["seq_num"] == 3:
            run = cat[-1]
            seen.append((run.complete, run.primary.read()["det"].shape))

    RE.subscribe(peek)
    RE(count([det], 5))
    assert seen == [(False, (3,))]
    assert cat[-1].complete


def test_bad_documents_are_refused_and_nothing_is_lost(recorded):
    cat, uids, docs = recorded
    before = list(cat[uids["scan"]].documents())
    event = events_of(docs[uids["scan"]])[0]
    with pytest.raises(InvalidDocument, match="descriptor 'nope'"):
        cat.insert("event", {**event, "uid": "new-uid", "descriptor": "nope"})
    with pytest.raises(InvalidDocument, match="schema"):
        cat.insert("start", {"uid": "x"})  # no time
    assert_same_documents(list(cat[uids["scan"]].documents()), before)
    assert len(cat) == 5


def test_documents_fill_external_frames_through_handlers(tmp_path):
    """ophyd.sim's ``img`` writes NPY_SEQ files and emits resource/datum; filling reads them."""
    from ophyd.sim import NumpySeqHandler, img

    img.save_path = str(tmp_path)
    cat = intake_broker.BrokerCatalog(
        intake_broker.MemoryStore(), handler_registry={"NPY_SEQ": NumpySeqHandler}
    )
    RE = RunEngine()
    RE.subscribe(cat.insert)
    RE(count([img], 2))
    run = cat[-1]
    unfilled = [d for n, d in run.documents() if n == "event_page"]
    assert all(isinstance(v, str) for page in unfilled for v in page["data"]["img"])
    filled = [d for n, d in run.documents(fill="yes") if n == "event_page"]
    frames = [np.asarray(v) for page in filled for v in page["data"]["img"]]
    assert len(frames) == 2 and all(f.shape == (10, 10) for f in frames)
    np.testing.assert_array_equal(frames[0], np.ones((10, 10)))
    delayed = [d for n, d in run.documents(fill="delayed") if n == "event_page"]
    lazy = delayed[0]["data"]["img"][0]
    assert hasattr(lazy, "compute") and np.array_equal(lazy.compute(), frames[0])
    with pytest.raises(ValueError, match="fill must be"):
        list(run.documents(fill="maybe"))
