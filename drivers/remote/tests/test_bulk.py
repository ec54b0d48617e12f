"""Bulk event reads: columns received straight into their arrays (``wire.read_columns``), the
plain-socket reader (``rawhttp``) against httpx, and reads too large for one response split
into requests in flight at once, equal to the local read value for value."""

from __future__ import annotations

import socket

import event_model
import numpy as np
import pytest

from intake_broker.errors import RunNotFound
from intake_broker.store.memory import MemoryStore
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_remote import RemoteStore, ServiceUnavailable, rawhttp, wire
from intake_broker_remote.client import HTTPClient
from intake_broker_server import Limits, Service

#: data keys of many dtypes and shapes (dtype_numpy says what the core gives back)
KEYS = {
    "spectrum": {"dtype": "array", "shape": [7], "dtype_numpy": "<f8"},
    "image": {"dtype": "array", "shape": [3, 5], "dtype_numpy": "|u1"},
    "counts": {"dtype": "integer", "shape": [], "dtype_numpy": "<i2"},
    "big_endian": {"dtype": "integer", "shape": [], "dtype_numpy": ">i4"},
    "flag": {"dtype": "boolean", "shape": [], "dtype_numpy": "|b1"},
    "single": {"dtype": "array", "shape": [2], "dtype_numpy": "<f4"},
    "label": {"dtype": "string", "shape": []},
}


def odd_run(rows: int, page: int) -> list[tuple[str, dict]]:
    """A run whose primary stream has ``rows`` events of every key in KEYS, in event pages of
    ``page`` rows (seeded noise: nothing compresses)."""
    rng = np.random.default_rng(7)
    bundle = event_model.compose_run(time=1e9, metadata={"scan_id": 3})
    keys = {k: {**v, "source": "test"} for k, v in KEYS.items()}
    desc = bundle.compose_descriptor(name="primary", time=1e9, data_keys=keys)
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for lo in range(0, rows, page):
        n = min(page, rows - lo)
        data = {
            "spectrum": rng.normal(size=(n, 7)).tolist(),
            "image": rng.integers(0, 255, size=(n, 3, 5)).tolist(),
            "counts": rng.integers(-3000, 3000, size=n).tolist(),
            "big_endian": rng.integers(-(2**30), 2**30, size=n).tolist(),
            "flag": (rng.random(n) > 0.5).tolist(),
            "single": rng.normal(size=(n, 2)).astype("f4").tolist(),
            "label": [f"event {lo + i}" for i in range(n)],
        }
        docs.append(
            (
                "event_page",
                {
                    "descriptor": desc.descriptor_doc["uid"],
                    "uid": [f"{desc.descriptor_doc['uid']}-{lo + i}" for i in range(n)],
                    "seq_num": list(range(lo + 1, lo + n + 1)),
                    "time": [1e9 + lo + i for i in range(n)],
                    "data": data,
                    "timestamps": {k: [1e9 + lo + i for i in range(n)] for k in KEYS},
                    "filled": {},
                },
            )
        )
    docs.append(("stop", bundle.compose_stop(time=2e9)))
    return docs


@pytest.fixture
def bulk(live_server):
    """``(url, store, run uid, descriptor uid)``: 1,001 events in chunks of 37, served with
    a response limit that a quarter of them exceeds."""
    store = MemoryStore(chunk_rows=37, validate=False)
    docs = odd_run(1001, 37)
    for name, doc in docs:
        store.insert(name, doc)
    url = live_server.mount(Service(store, limits=Limits(response_bytes=40_000)))
    yield url, store, docs[0][1]["uid"], docs[1][1]["uid"]
    live_server.unmount(url)


@pytest.mark.parametrize("raw_reads", [True, False])
@pytest.mark.parametrize("parallel", [1, 3])
def test_a_split_read_equals_the_local_one(bulk, raw_reads, parallel):
    url, store, uid, _ = bulk
    remote = RemoteStore(
        url, raw_reads=raw_reads, parallel=parallel, request_bytes=9_000, codecs=["none"]
    )
    assert remote.http.client is not None and (remote.http._raw is not None) is raw_reads
    local = BrokerCatalog(store)[uid].primary
    run = BrokerCatalog(remote)[uid].primary
    expected = local.read()
    got = run.read()
    assert got.identical(expected)
    for key in KEYS:
        assert got[key].dtype == expected[key].dtype, key
    assert run.to_dask().load().identical(local.to_dask().load())
    assert run.timestamps.read().identical(local.timestamps.read())
    got["spectrum"].values[0, 0] = 1.0  # writable, as local arrays are


@pytest.mark.parametrize("codec", ["lz4", "zlib", "blosc"])
def test_a_split_read_with_compression(bulk, codec):
    if codec not in wire.available_codecs():
        pytest.skip(f"{codec} is not installed")
    url, store, uid, descriptor = bulk
    remote = RemoteStore(url, codecs=[codec], request_bytes=9_000)
    got = remote.read_events(descriptor, uids=True)
    expected = store.read_events(descriptor, uids=True)
    np.testing.assert_array_equal(got.seq_num, expected.seq_num)
    np.testing.assert_array_equal(got.time, expected.time)
    np.testing.assert_array_equal(got.uid, expected.uid)
    for key in KEYS:
        np.testing.assert_array_equal(got.data[key], np.asarray(expected.data[key]), key)
        np.testing.assert_array_equal(got.timestamps[key], expected.timestamps[key], key)


def test_a_split_range_that_cuts_chunks(bulk):
    url, store, _, descriptor = bulk
    remote = RemoteStore(url, request_bytes=9_000)
    for lo, hi in ((5, 990), (38, 75), (1, 2000), (700, 701)):
        got = remote.read_events(descriptor, seq_range=(lo, hi))
        expected = store.read_events(descriptor, seq_range=(lo, hi))
        np.testing.assert_array_equal(got.seq_num, expected.seq_num)
        np.testing.assert_array_equal(got.data["image"], np.asarray(expected.data["image"]))


def test_chunks_of_different_dtypes_are_joined(live_server):
    """Pages whose values changed type (integers, then floats): the parts of a split read
    cannot go into one array as they come, and are joined as numpy joins them."""
    store = MemoryStore(chunk_rows=10, validate=False)
    bundle = event_model.compose_run(time=1e9)
    desc = bundle.compose_descriptor(
        name="primary",
        time=1e9,
        data_keys={"x": {"dtype": "number", "shape": [], "source": "test"}},
    )
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    for lo in range(0, 60, 10):
        values = list(range(lo, lo + 10)) if lo < 30 else [v + 0.5 for v in range(lo, lo + 10)]
        store.insert(
            "event_page",
            {
                "descriptor": desc.descriptor_doc["uid"],
                "uid": [f"e{lo + i}" for i in range(10)],
                "seq_num": list(range(lo + 1, lo + 11)),
                "time": [1e9 + lo + i for i in range(10)],
                "data": {"x": values},
                "timestamps": {"x": [1e9] * 10},
                "filled": {},
            },
        )
    url = live_server.mount(Service(store, limits=Limits(response_bytes=300)))
    try:
        got = RemoteStore(url, request_bytes=150).read_events(desc.descriptor_doc["uid"])
        expected = store.read_events(desc.descriptor_doc["uid"])
        np.testing.assert_array_equal(got.data["x"], expected.data["x"])
        assert got.data["x"].dtype == np.asarray(expected.data["x"]).dtype
    finally:
        live_server.unmount(url)


# -- the columns envelope, read as it arrives --------------------------------------------------


def _reader(body: bytes):
    view, pos = memoryview(body), [0]

    def readinto(target: memoryview) -> None:
        n = len(target)
        if pos[0] + n > len(view):
            raise ConnectionError("the body ended")
        target[:] = view[pos[0] : pos[0] + n]
        pos[0] += n

    return readinto


COLUMNS = [
    ("index", "seq_num", np.arange(1, 12, dtype=np.int64)),
    ("data", "matrix", np.arange(11 * 6, dtype=">f4").reshape(11, 2, 3)),
    ("data", "record", np.zeros(11, dtype=[("a", "<i4"), ("b", "<f8", (2,))])),
    ("data", "text", np.array([f"s{i}" for i in range(11)], dtype="<U3")),
    ("data", "empty", np.empty((11, 0), dtype="<f8")),
    ("data", "zeros", np.zeros((11, 40_000), dtype="<u2")),  # large and compressible
    ("uid", None, np.array([f"u{i}" for i in range(11)], dtype=object)),
]


@pytest.mark.parametrize("codec", ["none", "zlib", "lz4"])
def test_read_columns_equals_decode_columns(codec):
    if codec not in wire.available_codecs():
        pytest.skip(f"{codec} is not installed")
    body = wire.encode_columns(COLUMNS, rows=11, codec=codec)
    header, expected = wire.decode_columns(bytearray(body))
    got_header, got = wire.read_columns(_reader(body), len(body))
    assert got_header == header and list(got) == list(expected)
    for key, array in expected.items():
        assert got[key].dtype == array.dtype and got[key].shape == array.shape
        np.testing.assert_array_equal(got[key], array)
        assert got[key].flags.writeable


def test_read_columns_into_given_arrays():
    body = wire.encode_columns(COLUMNS, rows=11)
    whole = np.full((20, 2, 3), -1, dtype=">f4")

    def place(spec, dtype, shape):
        return whole[5:16] if spec["key"] == "matrix" else None

    _, got = wire.read_columns(_reader(body), len(body), place)
    assert got["data", "matrix"].base is whole
    np.testing.assert_array_equal(whole[5:16], COLUMNS[1][2])
    assert (whole[:5] == -1).all() and (whole[16:] == -1).all()


def test_read_columns_refuses_a_short_or_foreign_body():
    body = wire.encode_columns(COLUMNS, rows=11)
    with pytest.raises(ConnectionError):
        wire.read_columns(_reader(body[:-3]), len(body))
    with pytest.raises(ValueError, match="ends after"):
        wire.read_columns(_reader(body + b"xx"), len(body) + 2)
    with pytest.raises(ValueError, match="not an intake-broker columns body"):
        wire.read_columns(_reader(b"HTTP" + body[4:]), len(body))


# -- the plain-socket reader ---------------------------------------------------------------------


def test_raw_reads_only_where_no_proxy_intercepts(monkeypatch):
    import httpx

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert rawhttp.usable(httpx.URL("http://127.0.0.1:8000/x"))
    assert not rawhttp.usable(httpx.URL("https://127.0.0.1:8000/x"))
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert not rawhttp.usable(httpx.URL("http://broker.invalid:8000/x"))
    monkeypatch.setenv("NO_PROXY", "broker.invalid")
    assert rawhttp.usable(httpx.URL("http://broker.invalid:8000/x"))


def _consume(readinto, size):
    out = bytearray(size)
    readinto(memoryview(out))
    return bytes(out)


def test_raw_and_httpx_reads_agree_and_errors_come_back_as_classes(bulk):
    url, _, _, descriptor = bulk
    path = f"/api/v1/descriptors/{descriptor}/events"
    params = {"seq_start": 1, "seq_stop": 30}
    raw, plain = HTTPClient(url), HTTPClient(url, raw_reads=False)
    assert raw.client is not None and raw._raw is not None and plain._raw is None
    assert raw.fetch(path, _consume, accept=wire.COLUMNS, params=params) == plain.fetch(
        path, _consume, accept=wire.COLUMNS, params=params
    )
    for client in (raw, plain):
        with pytest.raises(RunNotFound):
            client.fetch("/api/v1/runs/nope", _consume, accept=wire.COLUMNS)


def test_raw_reads_retry_503_read_chunked_bodies_and_replace_closed_connections(
    live_server, monkeypatch
):
    calls = []

    async def flaky(scope, receive, send):  # no Content-Length: chunked bodies
        calls.append(scope["path"])
        status = 503 if len(calls) <= 2 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": b"busy" if status == 503 else b"ok",
                "more_body": status == 200,
            }
        )
        if status == 200:
            await send({"type": "http.response.body", "body": b"!"})

    token = "flaky000"
    live_server._dispatcher.apps[token] = flaky
    try:
        client = HTTPClient(f"{live_server.url}/s/{token}", retries=3, backoff=0.01)
        assert client.fetch("/x", _consume, accept="*/*") == b"ok!"
        assert len(calls) == 3
        # the pooled connection dies (as when the server closes an idle one): a new one
        assert client._raw is not None and len(client._raw._idle) == 1
        client._raw._idle[0].sock.shutdown(socket.SHUT_RDWR)
        assert client.fetch("/x", _consume, accept="*/*") == b"ok!"
        # ... also when it is found out only on sending
        client._raw._idle[0].sock.shutdown(socket.SHUT_RDWR)
        with monkeypatch.context() as patch:
            patch.setattr(rawhttp.Connection, "alive", lambda self: True)
            assert client.fetch("/x", _consume, accept="*/*") == b"ok!"
        calls.clear()
        with pytest.raises(ServiceUnavailable, match="503"):
            HTTPClient(f"{live_server.url}/s/{token}", retries=1, backoff=0.01).fetch(
                "/x", _consume, accept="*/*"
            )
        assert len(calls) == 2
    finally:
        live_server._dispatcher.apps.pop(token)
