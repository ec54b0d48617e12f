"""Bad input is a 4xx with a JSON body that says what is wrong, and the server keeps serving."""

from __future__ import annotations

import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker_server import Limits, Service
from intake_broker_server.testing import assert_error


@pytest.fixture(autouse=True)
def still_healthy(http):
    yield
    assert http.get("/healthz").json()["status"] == "ok"
    assert http.get("/api/v1/runs/count").status_code == 200


def primary(store):
    run = next(r for r in store.runs() if r.start["scan_id"] == 1)
    return run.uid, next(d for d in store.descriptors(run.uid) if d["name"] == "primary")


@pytest.mark.parametrize(
    "query, words",
    [
        ("{not json", ["not valid JSON"]),
        ('{"type": "nope"}', ["unknown query type", "eq"]),
        ('{"type": "eq", "key": "", "value": 1}', ["bad query key"]),
        ('{"type": "comparison", "operator": "zz", "key": "a", "value": 1}', ["operator"]),
        ('{"type": "regex", "key": "a", "pattern": "("}', ["regular expression"]),
        ("[1, 2]", ["must be a dict"]),
    ],
)
def test_malformed_query(http, query, words):
    assert_error(http.get("/api/v1/runs", params={"query": query}), 400, "BadQuery", *words)
    assert_error(http.get("/api/v1/runs/count", params={"query": query}), 400, "BadQuery")


def test_bad_sort_and_paging(http):
    assert_error(http.get("/api/v1/runs", params={"sort": "time,,uid"}), 400, "BadQuery", "key")
    assert_error(http.get("/api/v1/runs", params={"skip": -1}), 400, "InvalidRequest", "skip")
    assert_error(http.get("/api/v1/runs", params={"limit": "many"}), 400, "InvalidRequest", "limit")


def test_unknown_run_descriptor_resource_and_path(http, store):
    assert_error(http.get("/api/v1/runs/no-such-run"), 404, "RunNotFound", "no-such-run")
    assert_error(http.get("/api/v1/runs/no-such-run/descriptors"), 404, "RunNotFound")
    assert_error(http.get("/api/v1/runs/no-such-run/documents"), 404, "RunNotFound")
    assert_error(http.get("/api/v1/descriptors/nope/chunks"), 404, "DescriptorNotFound", "nope")
    assert_error(http.get("/api/v1/descriptors/nope/events"), 404, "DescriptorNotFound")
    uid, _ = primary(store)
    assert_error(http.get(f"/api/v1/runs/{uid}/resources/nope"), 404, "ResourceNotFound")
    assert_error(http.get(f"/zarr/v3/runs/{uid}/nope/zarr.json"), 404, "StreamNotFound", "primary")
    assert_error(http.get("/api/v2/runs"), 404, "NotFound", "/openapi.json")
    assert_error(http.delete("/api/v1/runs"), 405, "MethodNotAllowed")


def test_slices_out_of_range(http, store):
    uid, descriptor = primary(store)
    events = f"/api/v1/descriptors/{descriptor['uid']}/events"
    assert_error(
        http.get(events, params={"seq_start": 5, "seq_stop": 2}),
        400,
        "InvalidRequest",
        "seq_stop=2 is before seq_start=5",
    )
    assert_error(http.get(events, params={"seq_start": -3}), 400, "InvalidRequest", "seq_start")
    assert_error(http.get(events, params={"groups": "data,bogus"}), 400, "InvalidRequest", "bogus")
    chunk = f"/zarr/v3/runs/{uid}/primary/det/c"
    assert http.get(f"{chunk}/2").status_code == 200
    assert_error(http.get(f"{chunk}/3"), 404, "ChunkNotFound", "outside the chunk grid", "3 chunks")
    assert_error(http.get(f"{chunk}/0/0"), 404, "ChunkNotFound", "1 indices")
    assert_error(
        http.get(f"/zarr/v3/runs/{uid}/primary/nope/zarr.json"),
        404,
        "ChunkNotFound",
        "no array 'nope'",
    )


def test_oversized_requests(http, live_server, store):
    assert_error(
        http.get("/api/v1/runs", params={"limit": 1001}),
        400,
        "OversizedRequest",
        "at most 1000",
        "skip and limit",
    )
    huge = b"[" + b" " * (65 << 20) + b"]"
    assert_error(
        http.post("/api/v1/documents", content=huge, headers={"Content-Type": "application/json"}),
        413,
        "OversizedRequest",
        "bytes",
    )
    small = live_server.mount(Service(store, limits=Limits(response_bytes=100)))
    try:
        _, descriptor = primary(store)
        response = http.get(f"{small}/api/v1/descriptors/{descriptor['uid']}/events")
        assert_error(response, 400, "OversizedRequest", "smaller seq_num range")
    finally:
        live_server.unmount(small)


def test_bad_documents(http, live_server):
    assert_error(
        http.post(
            "/api/v1/documents", content=b"{oops", headers={"Content-Type": "application/json"}
        ),
        400,
        "InvalidRequest",
        "not valid JSON",
    )
    assert_error(
        http.post("/api/v1/documents", json={"name": "start"}),
        400,
        "InvalidRequest",
        "[name, document]",
    )
    assert_error(
        http.post("/api/v1/documents", json=["evnet", {}]),
        422,
        "InvalidDocument",
        "expected one of",
    )
    assert_error(
        http.post("/api/v1/documents", json=["start", {"uid": 5}]), 422, "InvalidDocument", "schema"
    )
    assert_error(http.post("/api/v1/documents", json=["start", [1]]), 422, "InvalidDocument")


def test_read_only_store_answers_405(http, live_server):
    class ReadOnly(MemoryStore):
        writable = False

    url = live_server.mount(ReadOnly())
    try:
        assert_error(
            http.post(f"{url}/api/v1/documents", json=["start", {}]),
            405,
            "ReadOnlyStore",
            "read-only",
        )
    finally:
        live_server.unmount(url)


def test_msgpack_errors_when_asked(http):
    import msgpack

    response = http.get("/api/v1/runs/nope", headers={"Accept": "application/x-msgpack"})
    assert response.status_code == 404
    assert msgpack.unpackb(response.content)["error"] == "RunNotFound"
