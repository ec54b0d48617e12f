"""Runs recorded by a real RunEngine, written by suitcase-jsonl / suitcase-msgpack, read back
through ``intake.open_catalog`` and a YAML file; and live writing with ``RE.subscribe``."""

from __future__ import annotations

import json

import intake
import msgpack
import numpy as np
import pytest

from intake_broker.store.documents import same_document
from intake_broker.testing import assert_same_documents
from intake_broker_files import JSONLCatalog, MsgpackCatalog

FORMATS = {"jsonl": "bluesky-jsonl-catalog", "msgpack": "bluesky-msgpack-catalog"}


@pytest.fixture(scope="module")
def suitcase_folder(bluesky_runs, tmp_path_factory):
    """Every recorded run written by both suitcases into one folder, and a YAML catalog."""
    import suitcase.jsonl
    import suitcase.msgpack

    folder = tmp_path_factory.mktemp("suitcase")
    for docs in bluesky_runs.values():
        with (
            suitcase.jsonl.Serializer(str(folder)) as jsonl,
            suitcase.msgpack.Serializer(str(folder)) as packed,
        ):
            for name, doc in docs:
                jsonl(name, doc)
                packed(name, doc)
    yaml = folder / "catalog.yml"
    yaml.write_text(
        "sources:\n"
        "  jsonl:\n"
        "    driver: bluesky-jsonl-catalog\n"
        "    metadata: {beamline: csx}\n"
        "    args:\n"
        f"      paths: ['{folder}/*.jsonl']\n"
        "  msgpack:\n"
        "    driver: bluesky-msgpack-catalog\n"
        "    args:\n"
        f"      paths: '{folder}/*.msgpack'\n"
    )
    return folder


def _events_by_seq(docs, descriptor_name="primary"):
    descriptors = {
        d["uid"] for n, d in docs if n == "descriptor" and d.get("name") == descriptor_name
    }
    return {d["seq_num"]: d for n, d in docs if n == "event" and d["descriptor"] in descriptors}


def _check_run(run, docs):
    start = docs[0][1]
    stop = docs[-1][1]
    assert same_document(run.metadata["start"], start)
    assert same_document(run.metadata["stop"], stop)
    assert run.complete
    ds = run.primary(seq_num=True).read()
    events = _events_by_seq(docs)
    assert ds["seq_num"].values.tolist() == sorted(events)
    descriptor = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    assert set(ds.data_vars) == set(descriptor["data_keys"])
    for row, seq in enumerate(ds["seq_num"].values.tolist()):
        event = events[seq]
        assert ds["time"].values[row] == event["time"]
        for key, value in event["data"].items():
            np.testing.assert_array_equal(ds[key].values[row], value)
            assert ds[key].shape[1:] == np.shape(value)
    timestamps = run.primary.timestamps.read()
    for row, seq in enumerate(ds["seq_num"].values.tolist()):
        for key, value in events[seq]["timestamps"].items():
            assert timestamps[key].values[row] == value
    assert_same_documents(list(run.documents()), docs)


@pytest.mark.parametrize("source", ["jsonl", "msgpack"])
def test_suitcase_files_read_through_a_yaml_catalog(suitcase_folder, bluesky_runs, source):
    catalog = intake.open_catalog(str(suitcase_folder / "catalog.yml"))[source]
    assert isinstance(catalog, JSONLCatalog if source == "jsonl" else MsgpackCatalog)
    if source == "jsonl":
        assert catalog.metadata["beamline"] == "csx"
    assert len(catalog) == len(bluesky_runs)
    newest_first = [docs[0][1]["uid"] for docs in reversed(bluesky_runs.values())]
    assert list(catalog) == newest_first
    for label, docs in bluesky_runs.items():
        start = docs[0][1]
        assert catalog[start["scan_id"]].metadata["start"]["uid"] == start["uid"]
        assert catalog[start["uid"][:8]].metadata["start"]["uid"] == start["uid"]
        assert catalog[start["uid"]].metadata["start"]["sample"] == f"sample-{label}"
        _check_run(catalog[start["uid"]], docs)
    image = catalog[bluesky_runs["image"][0][1]["uid"]].primary.read()
    frames = [e["data"]["img"] for e in _events_by_seq(bluesky_runs["image"]).values()]
    assert image["img"].shape == (2, *np.shape(frames[0]))
    np.testing.assert_array_equal(image["img"].values, np.stack(frames))
    config = catalog[bluesky_runs["det_with_conf"][0][1]["uid"]].primary.config
    descriptor = next(d for n, d in bluesky_runs["det_with_conf"] if n == "descriptor")
    ((device, conf),) = ((k, v["data"]) for k, v in descriptor["configuration"].items())
    read = config[device].read()
    assert {k: read[k].values.tolist()[0] for k in conf} == conf
    grid = catalog[-3].primary.read()
    assert grid.sizes["time"] == 12 and catalog[-3].metadata["start"]["plan_name"] == "grid_scan"
    assert len(catalog.search({"plan_name": "count"})) == 3


def test_suitcase_msgpack_files_hold_msgpack_numpy_arrays(suitcase_folder, bluesky_runs):
    """What suitcase-msgpack wrote is read unchanged, numpy arrays included."""
    uid = bluesky_runs["image"][0][1]["uid"]
    raw = (suitcase_folder / f"{uid}.msgpack").read_bytes()
    assert b"nd" in raw  # msgpack-numpy's encoding of the image
    catalog = MsgpackCatalog(str(suitcase_folder / "*.msgpack"))
    event = next(d for n, d in catalog[uid].documents() if n == "event_page")
    assert isinstance(event["data"]["img"][0], np.ndarray)


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_live_run_engine_through_the_catalog(tmp_path, fmt):
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, direct_img, motor

    cls = JSONLCatalog if fmt == "jsonl" else MsgpackCatalog
    catalog = cls(str(tmp_path / f"*.{fmt}"))
    RE = RunEngine({}, call_returns_result=False)
    emitted: list = []
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    RE.subscribe(catalog.insert)
    RE(bp.scan([det], motor, -1, 1, 5))
    RE(bp.count([direct_img], 2))
    runs = [emitted[: emitted.index(next(x for x in emitted if x[0] == "stop")) + 1]]
    runs.append(emitted[len(runs[0]) :])
    files = sorted(tmp_path.glob(f"*.{fmt}"))
    assert {f.stem for f in files} == {docs[0][1]["uid"] for docs in runs}

    fresh = intake.open_catalog(_yaml(tmp_path, fmt))["live"]
    assert len(fresh) == 2
    for docs in runs:
        _check_run(fresh[docs[0][1]["uid"]], docs)
        _check_run(catalog[docs[0][1]["uid"]], docs)

    # what we wrote reads with plain JSON / plain msgpack (as suitcase-style readers do)
    for path in files:
        if fmt == "jsonl":
            pairs = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            with open(path, "rb") as file:
                pairs = list(msgpack.Unpacker(file))
        assert pairs[0][0] == "start" and pairs[-1][0] == "stop"
        assert all(isinstance(p, list) and len(p) == 2 for p in pairs)


def _yaml(folder, fmt):
    path = folder / "live.yml"
    path.write_text(
        f"sources:\n  live:\n    driver: {FORMATS[fmt]}\n    args:\n"
        f"      paths: ['{folder}/*.{fmt}']\n"
    )
    return str(path)
