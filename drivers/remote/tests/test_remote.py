"""The remote catalog beyond the conformance suite: intake entry points and YAML, errors as
local classes, laziness, pickles that reconnect in another process, retries and timeouts,
codecs, oversized reads split by chunks."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from intake_broker.errors import (
    AmbiguousUID,
    DocumentConflict,
    InvalidDocument,
    ReadOnlyStore,
    RunNotFound,
    StreamNotFound,
)
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_remote import RemoteCatalog, RemoteStore, ServiceUnavailable, wire
from intake_broker_server import Limits, Service
from intake_broker_server.testing import free_port


@pytest.fixture
def filled(served):
    url, store = served
    docs = factories.scalar_run(n=25)
    insert_all(store, docs)
    insert_all(store, factories.image_run(n=4))
    return url, store, docs


def test_intake_driver_and_yaml(filled, tmp_path):
    import intake

    url, store, docs = filled
    cat = intake.open_catalog(url, driver="bluesky-remote-catalog")
    assert isinstance(cat, RemoteCatalog) and len(cat) == 2
    path = tmp_path / "remote.yml"
    path.write_text(
        textwrap.dedent(f"""
        sources:
          facility:
            driver: bluesky-remote-catalog
            args: {{url: "{url}", timeout: 5}}
    """)
    )
    from intake_broker import open_catalog

    entry = open_catalog(str(path))["facility"]
    uid = docs[0][1]["uid"]
    np.testing.assert_array_equal(entry[uid].primary.read()["det"], cat[uid].primary.read()["det"])


def test_errors_come_back_as_the_local_classes(served):
    url, store = served
    for i, uid in enumerate(
        ["abcd1234-0000-4000-8000-000000000001", "abcd9999-0000-4000-8000-000000000002"]
    ):
        insert_all(store, factories.scalar_run(uid=uid, time=1e9 + i, n=1))
    cat = RemoteCatalog(url)
    with pytest.raises(RunNotFound, match="nope"):
        cat["nope"]
    with pytest.raises(KeyError):
        cat["nope"]
    with pytest.raises(AmbiguousUID) as info:
        cat["abcd"]
    assert len(info.value.candidates) == 2
    with pytest.raises(StreamNotFound):
        cat[-1]["nope"]
    docs = factories.scalar_run(n=1)
    insert_all(cat, docs)
    with pytest.raises(DocumentConflict, match="time"):
        cat.insert("start", {**docs[0][1], "time": 1.0})
    with pytest.raises(InvalidDocument, match="expected one of"):
        cat.insert("evnet", {})


def test_read_only_server(live_server):
    class ReadOnly(MemoryStore):
        writable = False

    url = live_server.mount(ReadOnly())
    try:
        with pytest.raises(ReadOnlyStore):
            RemoteStore(url).insert("start", factories.scalar_run()[0][1])
    finally:
        live_server.unmount(url)


def test_nothing_is_read_until_computed(live_server):
    class Counting(MemoryStore):
        reads = 0

        def read_events(self, descriptor_uid, *, fields=None, seq_range=None, uids=False):
            if fields != []:
                type(self).reads += 1
            return super().read_events(
                descriptor_uid, fields=fields, seq_range=seq_range, uids=uids
            )

    store = Counting(chunk_rows=10)
    docs = factories.scalar_run(n=25)
    insert_all(store, docs)
    url = live_server.mount(store)
    try:
        ds = RemoteCatalog(url)[-1].primary.to_dask()
        assert Counting.reads == 0 and ds["det"].chunks == ((10, 10, 5),)
        expected = [
            d["data"]["det"]
            for n, d in docs
            if n == "event" and d["descriptor"] == docs[2][1]["uid"]
        ]
        np.testing.assert_array_equal(ds["det"].values, expected)
        assert Counting.reads == 3  # one per chunk, all fields of a chunk in one request
    finally:
        live_server.unmount(url)


def test_pickled_run_reads_in_another_process(filled):
    url, store, docs = filled
    run = RemoteCatalog(url)[docs[0][1]["uid"]]
    payload = pickle.dumps(run.primary)
    assert b"httpx" not in payload  # no connection travels, only the URL
    code = textwrap.dedent("""
        import pickle, sys
        stream = pickle.loads(sys.stdin.buffer.read())
        sys.stdout.buffer.write(pickle.dumps(stream.read()["det"].values))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, check=True, timeout=60
    ).stdout
    np.testing.assert_array_equal(pickle.loads(out), run.primary.read()["det"].values)


def test_dask_processes_scheduler(filled):
    dask = pytest.importorskip("dask")
    url, store, docs = filled
    ds = RemoteCatalog(url)[-1].primary.to_dask()
    with dask.config.set(scheduler="processes", num_workers=2):
        image = ds["image"].values
    assert image.shape == (4, 4, 5) and image.dtype == np.uint16


@pytest.mark.parametrize("codec", ["none", "zlib", "lz4", "blosc", "zstd"])
def test_every_codec_reads_the_same_values(filled, codec):
    if codec not in wire.available_codecs():
        pytest.skip(f"{codec} is not installed")
    url, store, docs = filled
    uid = docs[0][1]["uid"]
    expected = RemoteCatalog(url)[uid].primary.read()
    got = RemoteCatalog(url, codecs=[codec])[uid].primary.read()
    assert got.identical(expected)
    got["det"].values[0] = 42.0  # arrays are writable, as local ones are


def test_oversized_reads_are_split_by_chunks(live_server):
    store = MemoryStore(chunk_rows=10)
    docs = factories.scalar_run(n=45)
    insert_all(store, docs)
    url = live_server.mount(Service(store, limits=Limits(response_bytes=1000)))
    try:
        remote = RemoteStore(url)
        descriptor = docs[2][1]["uid"]
        got = remote.read_events(descriptor)  # 45 rows x 3 fields > 1000 bytes
        expected = store.read_events(descriptor)
        np.testing.assert_array_equal(got.data["det"], expected.data["det"])
        np.testing.assert_array_equal(got.seq_num, expected.seq_num)
    finally:
        live_server.unmount(url)


class Flaky:
    """An ASGI app answering 503 to the first ``failures`` requests, then as ``app`` does."""

    def __init__(self, app, failures: int):
        self.app, self.failures, self.calls = app, failures, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.calls += 1
        if self.calls <= self.failures:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        await self.app(scope, receive, send)


def test_retries_with_back_off_on_503_but_never_on_4xx(live_server, filled):
    url, store, _ = filled
    token = url.rsplit("/", 1)[-1]
    flaky = Flaky(live_server.app(url), failures=2)
    live_server._dispatcher.apps[token] = flaky
    remote = RemoteStore(url, retries=3, backoff=0.01)
    assert remote.count() == 2 and flaky.calls == 3
    with pytest.raises(RunNotFound):
        remote.run("nope")
    assert flaky.calls == 4  # a 404 is an answer: asked once
    flaky.calls, flaky.failures = 0, 10
    with pytest.raises(ServiceUnavailable, match="503"):
        RemoteStore(url, retries=2, backoff=0.01).count()
    assert flaky.calls == 3


def test_unreachable_server_and_timeouts(live_server):
    with pytest.raises(ServiceUnavailable, match="3 tries") as info:
        RemoteStore(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01).count()
    assert isinstance(info.value, ConnectionError)

    async def slow(scope, receive, send):
        if scope["type"] == "http":
            await asyncio.sleep(2)

    token = "slow0000"
    live_server._dispatcher.apps[token] = slow
    try:
        with pytest.raises(ServiceUnavailable, match="Timeout"):
            RemoteStore(
                f"{live_server.url}/s/{token}", timeout=0.2, retries=1, backoff=0.01
            ).count()
    finally:
        live_server._dispatcher.apps.pop(token)
