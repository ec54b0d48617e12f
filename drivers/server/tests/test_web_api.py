"""The web page's endpoints (``/api/v1/web/...``), its files and ``/docs``, without a browser:
what they answer, the limits they keep, and ``intake-broker browse``."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib

import httpx
import numpy as np
import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_server.testing import assert_error, free_port
from intake_broker_server.web.routes import MAX_FIELDS, decimate


def uids(store):
    return {r.start["plan_name"]: r.uid for r in store.runs()}


def test_the_page_its_files_and_docs_are_served_from_here(http):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in page.text.replace('href="docs"', "")  # no absolute URL at all
    for path in ("static/web/app.js", "static/web/run.js", "static/web/style.css"):
        assert http.get("/" + path).status_code == 200, path
    docs = http.get("/docs")
    assert "static/swagger/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert http.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert "/api/v1/web/runs" in http.get("/openapi.json").json()["paths"]
    assert http.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_the_table_pages_sorts_and_searches(http, store):
    body = http.get("/api/v1/web/runs", params={"sort": "scan_id", "limit": 2}).json()
    assert body["count"] == 3 and len(body["data"]) == 2
    assert [r["scan_id"] for r in body["data"]] == [1, 7]
    row = body["data"][0]
    assert set(row) == {"uid", "scan_id", "plan_name", "sample", "time", "events", "status", "tags"}
    assert row["events"] == 12 and row["status"] == "success"  # 10 primary + 2 baseline
    last = http.get("/api/v1/web/runs", params={"sort": "scan_id", "skip": 2}).json()
    assert [r["scan_id"] for r in last["data"]] == [9]
    found = http.get("/api/v1/web/runs", params={"q": "scan_id > 5 and scan_id < 9"}).json()
    assert [r["scan_id"] for r in found["data"]] == [7] and found["count"] == 1


def test_a_query_that_does_not_parse_names_its_column(http):
    body = assert_error(
        http.get("/api/v1/web/runs", params={"q": "scan_id > 4 and"}),
        400,
        "BadQuery",
        "syntax error at column 16",
        "^",
    )
    assert body["column"] == 16
    body = assert_error(
        http.get("/api/v1/web/runs", params={"q": 'plan_name ~ "("'}), 400, "BadQuery"
    )
    assert "column" not in body  # not a syntax error: no column to show


def test_huge_or_hostile_input_is_refused_clearly(http):
    assert_error(
        http.get("/api/v1/web/runs", params={"q": "scan_id == " + "9" * 20_000}),
        400,
        "InvalidRequest",
        "at most 4000 characters",
    )
    nested = "(" * 200 + "scan_id == 1" + ")" * 200
    assert_error(http.get("/api/v1/web/runs", params={"q": nested}), 400, "BadQuery")
    assert_error(http.get("/api/v1/web/runs", params={"limit": 501}), 400, "InvalidRequest")
    assert_error(http.get("/api/v1/web/runs", params={"sort": "x" * 201}), 400, "InvalidRequest")
    sql = 'plan_name == "x\'; DROP TABLE runs; --"'
    assert http.get("/api/v1/web/runs", params={"q": sql}).json()["count"] == 0


def test_decimation_keeps_each_buckets_extremes():
    rng = np.random.default_rng(7)
    values = rng.normal(size=10_007)
    values[[5, 4000]] = [50.0, -50.0]
    kept = decimate(len(values), values, 100)
    assert len(kept) <= 200 and np.all(np.diff(kept) > 0)
    size = -(-len(values) // 100)
    for lo in range(0, len(values), size):
        bucket = values[lo : lo + size]
        assert lo + int(np.argmin(bucket)) in kept and lo + int(np.argmax(bucket)) in kept
    assert decimate(150, values[:150], 100).tolist() == list(range(150))  # few rows: all


def test_the_plot_is_decimated_and_exact_on_zoom(live_server):
    store = MemoryStore(chunk_rows=1000)
    insert_all(store, factories.scalar_run(n=5000, scan_id=1))
    url = live_server.mount(store)
    uid = store.runs()[0].uid
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            body = http.get(
                f"/api/v1/web/runs/{uid}/plot", params={"y": "det,motor", "points": 100}
            ).json()
            assert body["rows"] == 5000 and body["decimated"] is True
            det = body["series"]["det"]
            assert 2 <= len(det["y"]) <= 200
            assert max(det["y"]) == pytest.approx(1.0)  # the peak survives decimation
            zoom = http.get(
                f"/api/v1/web/runs/{uid}/plot",
                params={"y": "det", "x": "motor", "x_min": 0, "x_max": 10, "points": 100},
            ).json()
            assert zoom["decimated"] is False and zoom["rows"] == len(zoom["series"]["det"]["x"])
            assert min(zoom["series"]["det"]["x"]) >= 0 and max(zoom["series"]["det"]["x"]) <= 10
            too_many = ",".join(["det"] * (MAX_FIELDS + 1))
            assert_error(
                http.get(f"/api/v1/web/runs/{uid}/plot", params={"y": too_many}),
                400,
                "InvalidRequest",
            )
            assert_error(
                http.get(f"/api/v1/web/runs/{uid}/plot", params={"y": "det", "points": 10**6}),
                400,
                "InvalidRequest",
            )
            assert_error(
                http.get(f"/api/v1/web/runs/{uid}/plot", params={"y": "nope"}),
                404,
                "StreamNotFound",
            )
            assert_error(
                http.get(f"/api/v1/web/runs/{'0' * 36}/plot", params={"y": "det"}),
                404,
                "RunNotFound",
            )
    finally:
        live_server.unmount(url)


def read_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    raw = np.frombuffer(zlib.decompress(data[41 : 41 + length]), dtype=np.uint8)
    rows = raw.reshape(height, width + 1)
    assert (rows[:, 0] == 0).all()  # filter type none
    return rows[:, 1:]


def test_a_frame_is_one_scaled_png(http, store):
    uid = uids(store)["count"]  # the image run: frames arange(20).reshape(4, 5) + i
    response = http.get(f"/api/v1/web/runs/{uid}/frame", params={"field": "image", "index": 2})
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-frame-count"] == "5"
    assert (
        float(response.headers["x-frame-min"]) == 2 and float(response.headers["x-frame-max"]) == 21
    )
    expected = np.round(np.arange(20).reshape(4, 5) * 255 / 19 - 1e-9).astype(np.uint8)
    assert np.abs(read_png(response.content).astype(int) - expected).max() <= 1
    fixed = http.get(
        f"/api/v1/web/runs/{uid}/frame",
        params={"field": "image", "index": 2, "vmin": 0, "vmax": 10},
    )
    assert read_png(fixed.content).max() == 255 and read_png(fixed.content)[0, 0] == 51
    assert_error(
        http.get(f"/api/v1/web/runs/{uid}/frame", params={"field": "image", "index": 5}),
        400,
        "InvalidRequest",
        "5 frames",
    )
    scalar = uids(store)["scan"]
    assert_error(
        http.get(f"/api/v1/web/runs/{scalar}/frame", params={"field": "det"}),
        400,
        "InvalidRequest",
        "not an image",
    )


def test_progress_of_a_run_still_acquiring(live_server):
    store = MemoryStore(chunk_rows=4)
    docs = factories.scalar_run(n=6, stop=False)
    insert_all(store, docs)
    url = live_server.mount(store)
    uid = docs[0][1]["uid"]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            body = http.get(f"/api/v1/web/runs/{uid}/progress").json()
            assert body == {
                "uid": uid,
                "stopped": False,
                "exit_status": None,
                "streams": {"primary": 6, "baseline": 2} | body["streams"],
            }
            assert body["streams"]["primary"] == 6
            row = http.get("/api/v1/web/runs").json()["data"][0]
            assert row["status"] is None and row["events"] is None
    finally:
        live_server.unmount(url)


def test_browse_serves_the_local_catalog_on_loopback(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = (
        "from intake_broker_server.app import browse; "
        f"browse(data={str(tmp_path)!r}, port={port}, open_page=False)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "browse did not start"
                time.sleep(0.2)
        assert page.status_code == 200 and "intake-broker" in page.text
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/web/runs", timeout=5).json()
        assert listed["count"] == 0
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out.decode()


def test_the_browse_command_passes_its_options(monkeypatch):
    import argparse

    from intake_broker_server import app
    from intake_broker_server.commands import BROWSE

    parser = argparse.ArgumentParser()
    BROWSE.configure(parser)
    args = parser.parse_args(["--no-open", "--port", "8765"])
    args.catalog, args.entry, args.data = None, None, "/somewhere"
    called = {}
    browse = app.browse
    monkeypatch.setattr(app, "browse", lambda *a, **k: called.update(args=a, kwargs=k))
    assert BROWSE.run(args, None) == 0
    assert called == {
        "args": (None,),
        "kwargs": {"entry": None, "data": "/somewhere", "port": 8765, "open_page": False},
    }
    with pytest.raises(ValueError, match="port must be"):
        browse(port=70000)


def test_a_frame_of_a_detector_file_is_read_alone(live_server, tmp_path):
    """An area detector's HDF5 frames (resource/datum): the frame asked for, under the asset
    roots; nothing outside them."""
    pytest.importorskip("h5py")
    docs, frames = factories.ad_hdf5_run(tmp_path, n=4, shape=(8, 12))
    store = MemoryStore()
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    url = live_server.mount(store, asset_roots=[str(tmp_path)])
    closed = live_server.mount(store)  # no asset roots: the file may not be read
    try:
        with httpx.Client(timeout=30) as http:
            answer = http.get(
                f"{url}/api/v1/web/runs/{uid}/frame", params={"field": "cam_image", "index": 3}
            )
            assert answer.status_code == 200, answer.text
            frame = frames[3].astype(float)
            expected = (frame - frame.min()) * 255 / (frame.max() - frame.min())
            assert np.abs(read_png(answer.content) - expected).max() <= 1
            refused = http.get(
                f"{closed}/api/v1/web/runs/{uid}/frame", params={"field": "cam_image", "index": 3}
            )
            assert refused.status_code == 403 and refused.json()["error"] == "AssetOutsideRoots"
    finally:
        live_server.unmount(url)
        live_server.unmount(closed)


# -- configurable columns, who am I, export downloads, live events ---------------------------


def test_extra_columns_are_start_and_stop_keys(http, store):
    body = http.get(
        "/api/v1/web/runs",
        params={"sort": "scan_id", "columns": "sample.name,num_points,stop.exit_status,nope.x"},
    ).json()
    row = body["data"][0]
    record = next(r for r in store.runs() if r.uid == row["uid"])
    assert row["columns"] == {
        "sample.name": (record.start.get("sample") or {}).get("name"),
        "num_points": record.start.get("num_points"),
        "stop.exit_status": record.stop["exit_status"],
        "nope.x": None,
    }
    assert row["columns"]["stop.exit_status"] == "success"
    plain = http.get("/api/v1/web/runs", params={"sort": "scan_id"}).json()["data"][0]
    assert "columns" not in plain  # only when asked
    many = ",".join(f"k{i}" for i in range(17))
    assert_error(
        http.get("/api/v1/web/runs", params={"columns": many}), 400, "InvalidRequest", "at most 16"
    )
    assert_error(http.get("/api/v1/web/runs", params={"columns": "a..b"}), 400, "BadQuery")


def test_a_long_cell_is_cut_short(live_server):
    store = MemoryStore()
    insert_all(
        store, factories.scalar_run(n=2, long_text="x" * 5000, nested={"a": list(range(999))})
    )
    url = live_server.mount(store)
    try:
        row = httpx.get(
            f"{url}/api/v1/web/runs", params={"columns": "long_text,nested,nested.a"}, timeout=30
        ).json()["data"][0]
        for key in ("long_text", "nested", "nested.a"):
            assert isinstance(row["columns"][key], str) and len(row["columns"][key]) == 200, key
            assert row["columns"][key].endswith("\u2026")
    finally:
        live_server.unmount(url)


def test_me_without_authentication(http):
    import getpass

    body = http.get("/api/v1/web/me").json()
    assert body["scopes"] == ["read", "write"] and body["auth"] is False
    assert body["user"] == getpass.getuser() and body["annotations"] is True
    assert {"csv", "jsonl"} <= set(body["export_formats"])


def exported(store, uid, fmt, tmp_path):
    """The files ``run.export`` writes, by path (the manifest aside: it holds a time)."""
    from intake_broker.views.catalog import BrokerCatalog

    folder = tmp_path / f"by-python-{fmt}"
    BrokerCatalog(store)[uid].export(fmt, str(folder), progress=False)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }


def test_an_export_download_is_what_run_export_writes(http, store, tmp_path, monkeypatch):
    import io
    import zipfile

    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "EXPORT_FOLDER", str(tmp_path / "server"))
    (tmp_path / "server").mkdir()

    uid = uids(store)["scan"]
    answer = http.get(f"/api/v1/web/runs/{uid}/export", params={"format": "jsonl"})
    assert answer.status_code == 200, answer.text
    assert f'filename="{uid}.jsonl"' in answer.headers["content-disposition"]
    assert answer.content == exported(store, uid, "jsonl", tmp_path)[f"{uid}.jsonl"]

    for fmt in ("csv", "parquet"):
        if fmt not in http.get("/api/v1/web/me").json()["export_formats"]:
            continue
        answer = http.get(f"/api/v1/web/runs/{uid}/export", params={"format": fmt})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        files = {n: archive.read(n) for n in archive.namelist() if n != "manifest.json"}
        assert files == exported(store, uid, fmt, tmp_path), fmt
        assert "manifest.json" in archive.namelist()
    assert_error(
        http.get(f"/api/v1/web/runs/{uid}/export", params={"format": "../../etc/passwd"}),
        400,
        "InvalidRequest",
    )
    assert_error(
        http.get(f"/api/v1/web/runs/{uid}/export", params={"format": "pickle"}),
        400,
        "InvalidRequest",
        "csv",
    )
    assert_error(
        http.get(f"/api/v1/web/runs/{'0' * 36}/export", params={"format": "csv"}),
        404,
        "RunNotFound",
    )
    for _ in range(100):  # each download's folder goes once it is sent (a background task)
        if not any((tmp_path / "server").iterdir()):
            break
        time.sleep(0.05)
    assert list((tmp_path / "server").iterdir()) == []


def test_an_export_larger_than_a_response_is_refused(live_server, tmp_path, monkeypatch):
    """Before it is written when the run's data is too large; after, when its files are (text
    formats are larger than the data); nothing stays on the server's disk."""
    from intake_broker_server.service import Limits
    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "EXPORT_FOLDER", str(tmp_path))
    store = MemoryStore()
    insert_all(store, factories.image_run(n=20, shape=(64, 64)))
    insert_all(store, factories.scalar_run(n=300, scan_id=2))
    url = live_server.mount(store, limits=Limits(response_bytes=40_000))
    images, scalars = uids(store)["count"], uids(store)["scan"]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            before = http.get(f"/api/v1/web/runs/{images}/export", params={"format": "jsonl"})
            assert_error(before, 400, "OversizedRequest", "more than one response carries")
            after = http.get(f"/api/v1/web/runs/{scalars}/export", params={"format": "jsonl"})
            assert_error(after, 400, "OversizedRequest", "jsonl export", "intake-broker export")
    finally:
        live_server.unmount(url)
    assert list(tmp_path.iterdir()) == []


def sse_events(lines):
    """The events of a text/event-stream, as they come: (name, data)."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            yield name, json.loads(line[6:])
            name = None


def test_a_live_run_pushes_its_progress(live_server, monkeypatch):
    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "LIVE_SECONDS", 20.0)  # (a failure ends in 20 s, not 300)
    docs = factories.scalar_run(n=9)
    store = MemoryStore(chunk_rows=4)
    events = [d for d in docs if d[0] == "event"]
    first_events = [d for d in docs if d[0] not in ("event", "stop")] + events[:3]
    insert_all(store, first_events)
    url = live_server.mount(store)
    uid = docs[0][1]["uid"]
    rest = [d for d in docs if d not in first_events]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            with http.stream("GET", f"/api/v1/web/runs/{uid}/live") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                found = sse_events(stream.iter_lines())
                name, first = next(found)
                assert name == "progress" and first["stopped"] is False
                assert first == http.get(f"/api/v1/web/runs/{uid}/progress").json()
                insert_all(store, rest)  # the remaining events (primary and baseline), the stop
                seen = [first]
                for name, data in found:
                    seen.append(data)
                    if name == "end":
                        break
                assert name == "end"
                assert seen[-2]["stopped"] is True and seen[-2]["exit_status"] == "success"
                counts = [s["streams"]["primary"] for s in seen[:-1]]
                assert counts == sorted(counts) and counts[-1] == 9 and counts[0] < 9
            assert actions._live == {}  # its slot is given back
            assert_error(http.get(f"/api/v1/web/runs/{'0' * 36}/live"), 404, "RunNotFound")
    finally:
        live_server.unmount(url)


def test_live_streams_are_limited_per_user(live_server, monkeypatch):
    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "LIVE_PER_USER", 2)
    store = MemoryStore()
    docs = factories.scalar_run(n=3, stop=False)
    insert_all(store, docs)
    url = live_server.mount(store)
    path = f"{url}/api/v1/web/runs/{docs[0][1]['uid']}/live"
    try:
        with httpx.Client(timeout=30) as http:
            with http.stream("GET", path) as one, http.stream("GET", path) as two:
                assert one.status_code == two.status_code == 200
                assert_error(http.get(path), 429, "TooManyRequests", "2 live streams")
    finally:
        live_server.unmount(url)


def hdf5_values(path):
    """Every dataset of an HDF5 file but times, as (shape, values)."""
    import h5py

    found = {}

    def keep(name, obj):  # (visititems stops at the first value returned)
        if isinstance(obj, h5py.Dataset) and "time" not in name.lower():
            found[name] = (np.shape(obj), repr(np.asarray(obj[()]).tolist()))

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    return found


def test_an_export_reads_assets_only_under_the_asset_roots(live_server, tmp_path):
    """A detector's HDF5 frames are exported from a server whose asset roots hold them, and
    refused by one without roots: the export reads no file the server may not."""
    pytest.importorskip("h5py")
    (tmp_path / "data").mkdir()
    docs, _ = factories.ad_hdf5_run(tmp_path / "data", n=3, shape=(4, 5))
    store = MemoryStore()
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    url = live_server.mount(store, asset_roots=[str(tmp_path / "data")])
    closed = live_server.mount(store)
    try:
        with httpx.Client(timeout=30) as http:
            fine = http.get(f"{url}/api/v1/web/runs/{uid}/export", params={"format": "nexus"})
            assert fine.status_code == 200, fine.text
            ours = tmp_path / "served.nxs"
            ours.write_bytes(fine.content)
            theirs = exported(store, uid, "nexus", tmp_path)  # (HDF5 holds write times)
            (tmp_path / "python.nxs").write_bytes(theirs[f"{uid}.nxs"])
            assert hdf5_values(ours) == hdf5_values(tmp_path / "python.nxs")
            assert any(shape == (3, 4, 5) for shape, _ in hdf5_values(ours).values())
            refused = http.get(f"{closed}/api/v1/web/runs/{uid}/export", params={"format": "nexus"})
            assert refused.status_code == 403 and refused.json()["error"] == "AssetOutsideRoots"
    finally:
        live_server.unmount(url)
        live_server.unmount(closed)


def test_a_live_stream_says_gone_when_the_run_is_no_longer_visible(
    live_server, tmp_path, monkeypatch
):
    """Every read of a live stream goes through the guard: a user who loses the run's proposal
    while watching gets ``gone``, as for a run removed."""
    from intake_broker.access import ProposalPolicy
    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider
    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "LIVE_SECONDS", 20.0)  # (a failure ends in 20 s, not 300)
    store = MemoryStore()
    docs = factories.scalar_run(n=3, stop=False, proposal_id="p-1")
    insert_all(store, docs)
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"ada": {"proposals": ["p-1"]}}}))
    keys = ApiKeyStore(tmp_path / "keys.json")
    config = AuthConfig(policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(users))
    url = live_server.mount(store, auth=config)
    ada = {"Authorization": f"Apikey {keys.create('ada', ['read'])[1]}"}
    uid = docs[0][1]["uid"]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get(f"/api/v1/web/runs/{uid}/live").status_code == 401
            with http.stream("GET", f"/api/v1/web/runs/{uid}/live", headers=ada) as stream:
                found = sse_events(stream.iter_lines())
                assert next(found)[0] == "progress"
                users.write_text(json.dumps({"users": {"ada": {"proposals": []}}}))
                later = time.time() + 5
                os.utime(users, (later, later))
                name, body = next(found)
                assert name == "gone" and body["error"] == "RunNotFound"
    finally:
        live_server.unmount(url)
