"""The JSON / msgpack API over a real socket: listing, search, pagination, runs, descriptors,
chunks, binary event columns, document replay, inserting."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from intake_broker.queries import Comparison, Eq
from intake_broker.testing import factories
from intake_broker_remote import wire


def uids(store):
    return [r.uid for r in store.runs()]


def test_health_info_and_openapi(http):
    assert http.get("/healthz").json()["status"] == "ok"
    info = http.get("/api/v1").json()
    assert info["store"] == "MemoryStore" and info["writable"] is True
    assert "zlib" in info["codecs"] and info["limits"]["page"] == 1000
    spec = http.get("/openapi.json").json()
    assert "/api/v1/runs" in spec["paths"] and "/api/v1/descriptors/{uid}/events" in spec["paths"]


def test_listing_pages_with_next_links(http, store):
    first = http.get("/api/v1/runs", params={"limit": 2}).json()
    assert [r["uid"] for r in first["data"]] == uids(store)[:2]
    assert first["skip"] == 0 and first["limit"] == 2 and first["next"]
    second = http.get(first["next"]).json()
    assert [r["uid"] for r in second["data"]] == uids(store)[2:3] and second["next"] is None
    oldest = http.get("/api/v1/runs", params={"sort": "time", "limit": 1}).json()["data"]
    assert oldest[0]["uid"] == uids(store)[-1]


def test_search_with_encoded_queries_get_and_post(http, store):
    query = Eq("plan_name", "count") & Comparison("gt", "scan_id", 7)
    got = http.get("/api/v1/runs", params={"query": json.dumps(query.encode())}).json()
    assert [r["start"]["scan_id"] for r in got["data"]] == [9]
    posted = http.post("/api/v1/runs/search", json={"query": query.encode(), "limit": 5})
    assert posted.json()["data"] == got["data"]
    count = http.get("/api/v1/runs/count", params={"query": json.dumps(query.encode())})
    assert count.json() == {"count": 1}
    assert http.get("/api/v1/runs/count").json() == {"count": 3}


def test_metadata_in_json_and_msgpack(http, store):
    uid = uids(store)[0]
    as_json = http.get(f"/api/v1/runs/{uid}").json()
    packed = http.get(f"/api/v1/runs/{uid}", headers={"Accept": "application/x-msgpack"})
    assert packed.headers["content-type"] == "application/x-msgpack"
    assert msgpack.unpackb(packed.content) == as_json
    assert as_json["start"] == store.run(uid).start and as_json["stop"] == store.run(uid).stop


def test_descriptors_and_chunks(http, store):
    uid = next(r.uid for r in store.runs() if r.start["scan_id"] == 1)
    descriptors = http.get(f"/api/v1/runs/{uid}/descriptors").json()["data"]
    assert [d["uid"] for d in descriptors] == [d["uid"] for d in store.descriptors(uid)]
    primary = next(d for d in descriptors if d["name"] == "primary")
    chunks = http.get(f"/api/v1/descriptors/{primary['uid']}/chunks").json()["data"]
    assert [(c["seq_start"], c["seq_stop"], c["rows"]) for c in chunks] == [
        (1, 5, 4),
        (5, 9, 4),
        (9, 11, 2),
    ]
    paged = http.get(f"/api/v1/descriptors/{primary['uid']}/chunks", params={"limit": 2})
    assert len(paged.json()["data"]) == 2 and paged.json()["next"]


@pytest.mark.parametrize("codec", ["none", "zlib", "lz4", "blosc"])
def test_event_columns_are_binary_and_equal_the_store(http, store, codec):
    if codec not in wire.available_codecs():
        pytest.skip(f"{codec} is not installed")
    uid = next(r.uid for r in store.runs() if r.start["scan_id"] == 7)
    descriptor = store.descriptors(uid)[0]["uid"]
    response = http.get(
        f"/api/v1/descriptors/{descriptor}/events",
        params={
            "seq_start": 2,
            "seq_stop": 5,
            "groups": "index,uid,data,timestamps",
            "codec": codec,
        },
    )
    assert response.headers["content-type"] == wire.COLUMNS
    header, columns = wire.decode_columns(bytearray(response.content))
    expected = store.read_events(descriptor, seq_range=(2, 5), uids=True)
    assert header["rows"] == 3
    np.testing.assert_array_equal(columns["index", "seq_num"], [2, 3, 4])
    np.testing.assert_array_equal(columns["index", "time"], expected.time)
    np.testing.assert_array_equal(columns["data", "image"], expected.data["image"])
    assert columns["data", "image"].dtype == np.uint16
    assert columns["data", "image"].shape == (3, 4, 5)
    np.testing.assert_array_equal(columns["timestamps", "image"], expected.timestamps["image"])
    assert list(columns["uid", None]) == list(expected.uid)


def test_documents_replay_as_ndjson_and_msgpack(http, store):
    uid = uids(store)[0]
    expected = [[name, doc] for name, doc in store.documents(uid)]
    lines = http.get(f"/api/v1/runs/{uid}/documents")
    assert lines.headers["content-type"] == "application/x-ndjson"
    got = [json.loads(line) for line in lines.text.splitlines()]
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert got[0][1] == expected[0][1]
    packed = http.get(f"/api/v1/runs/{uid}/documents", headers={"Accept": "application/x-msgpack"})
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(packed.content)
    assert [item[0] for item in unpacker] == [name for name, _ in expected]
    page = http.get(f"/api/v1/runs/{uid}/documents", params={"skip": 1, "limit": 2})
    assert [json.loads(line)[0] for line in page.text.splitlines()] == [
        name for name, _ in expected[1:3]
    ]


def test_insert_documents_and_conflicts(http, store):
    docs = factories.scalar_run(n=2, scan_id=50)
    for name, doc in docs:
        response = http.post("/api/v1/documents", json=[name, doc])
        assert response.status_code == 200, response.text
    uid = docs[0][1]["uid"]
    assert store.run(uid).start["scan_id"] == 50
    assert http.post("/api/v1/documents", json=list(docs[0])).status_code == 200  # no-op
    changed = {**docs[0][1], "time": docs[0][1]["time"] + 1}
    body = http.post("/api/v1/documents", json=["start", changed]).json()
    assert body["error"] == "DocumentConflict" and "time" in body["message"]
    packed = msgpack.packb(["start", docs[0][1]])
    response = http.post(
        "/api/v1/documents", content=packed, headers={"Content-Type": "application/x-msgpack"}
    )
    assert response.status_code == 200


def test_catalog_resolution_and_memory_with_workers(tmp_path, monkeypatch):
    from intake_broker_server import app_from_env, open_served_catalog, serve

    catalog = open_served_catalog(None, data=str(tmp_path))  # the embedded default catalog
    assert str(tmp_path) in catalog.name and len(catalog) == 0
    monkeypatch.setenv("INTAKE_BROKER_SERVER_DATA", str(tmp_path))
    monkeypatch.delenv("INTAKE_BROKER_SERVER_CATALOG", raising=False)
    app = app_from_env()
    assert app.state.service.store is not None
    with pytest.raises(ValueError, match="one process"):
        serve("memory", workers=2)


def test_a_catalog_filter_is_applied_on_every_path(live_server, store):
    from intake_broker.views.catalog import BrokerCatalog

    narrowed = BrokerCatalog(store).search({"scan_id": 7})
    url = live_server.mount(narrowed)
    try:
        import httpx

        with httpx.Client(base_url=url) as http:
            listed = http.get("/api/v1/runs").json()["data"]
            assert [r["start"]["scan_id"] for r in listed] == [7]
            assert http.get("/api/v1/runs/count").json() == {"count": 1}
            hidden = next(r.uid for r in store.runs() if r.start["scan_id"] == 1)
            assert http.get(f"/api/v1/runs/{hidden}").status_code == 404
            assert http.get(f"/api/v1/runs/{hidden}/documents").status_code == 404
    finally:
        live_server.unmount(url)
