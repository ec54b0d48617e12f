"""Bad input gives a clear BrokerError naming what and where; never a silent empty result, never
a half-written run index."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from intake_broker.errors import BrokerError
from intake_broker.testing import factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import (
    SCHEMA_VERSION,
    CorruptChunk,
    IndexUnavailable,
    MissingChunk,
    NativeStore,
    SchemaVersionError,
    StorageError,
)
from intake_broker_native.columns import ColumnStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_database(tmp_path):
    port = _closed_port()
    url = f"postgresql://broker:s3cret@127.0.0.1:{port}/runs"
    with pytest.raises(IndexUnavailable) as info:
        NativeStore(url, str(tmp_path))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "cannot reach the run index" in message
    assert "s3cret" not in message and isinstance(info.value, BrokerError)


@pytest.mark.parametrize(
    "url, match",
    [
        ("mysql://root@localhost/runs", "SQLite .* or PostgreSQL"),
        ("not a url", "not a database URL"),
    ],
)
def test_index_urls_we_do_not_speak(url, match):
    with pytest.raises(IndexUnavailable, match=match):
        NativeStore(url)


def test_index_in_a_place_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="file"):
        NativeStore(f"sqlite:///{tmp_path}/file/index.sqlite")
    with pytest.raises(StorageError, match="data folder"):
        NativeStore(f"sqlite:///{tmp_path}/ok.sqlite", str(tmp_path / "file" / "data"))


def _as_nobody(func) -> str:
    """Run ``func()`` in a forked child as user nobody when we are root (permissions mean
    nothing to root); return what it returned (a string)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = func()
        except BaseException as err:  # noqa: BLE001 (reported to the parent)
            result = f"child failed: {err!r}"
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_folder_without_write_permission(tmp_path):
    base = Path("/tmp") / f"ib-readonly-{os.getpid()}"
    (base / "locked").mkdir(parents=True, exist_ok=True)
    (base / "open").mkdir(exist_ok=True)
    os.chmod(base, 0o755)
    os.chmod(base / "locked", 0o555)
    os.chmod(base / "open", 0o777)
    NativeStore.in_folder(tmp_path / "warm").close()  # imports done before dropping privileges

    def check() -> str:
        lines = []
        for index, data in [
            (f"sqlite:///{base}/locked/index.sqlite", None),
            (f"sqlite:///{base}/open/index.sqlite", f"{base}/locked/data"),
        ]:
            try:
                NativeStore(index, data)
                lines.append("no error")
            except StorageError as err:
                lines.append(f"StorageError: {err}")
        return "\n".join(lines)

    try:
        lines = _as_nobody(check).splitlines()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert len(lines) == 2, lines
    assert f"{base}/locked" in lines[0] and "not writable" in lines[0]
    assert f"{base}/locked/data" in lines[1] and "cannot create the data folder" in lines[1]


def test_schema_version_newer_than_the_code(tmp_path):
    index = f"sqlite:///{tmp_path}/index.sqlite"
    NativeStore(index).close()
    engine = sa.create_engine(index)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError) as info:
        NativeStore(index)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)
    assert "index.sqlite" in str(info.value) and "upgrade" in str(info.value)


@pytest.fixture
def written(tmp_path):
    """A store with one run of 25 events in chunks of 10, and the run's primary descriptor."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    docs = factories.scalar_run(n=25)
    insert_all(store, docs)
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    return store, primary["uid"], docs[0][1]["uid"]


def _chunk(store: NativeStore, descriptor: str, array: str, index: int) -> Path:
    with store.engine.connect() as conn:
        path = conn.exec_driver_sql(
            "SELECT path FROM descriptors WHERE uid = ?", (descriptor,)
        ).scalar()
    return Path(store.data) / path / array / "c" / str(index)


def _fresh(store):
    return NativeStore(store.index, store.data)


def test_missing_chunk_is_an_error_not_fill_values(written):
    store, primary, run_uid = written
    _chunk(store, primary, "det", 1).unlink()
    reader = _fresh(store)
    with pytest.raises(MissingChunk) as info:
        BrokerCatalog(reader)[-1].primary.read()
    message = str(info.value)
    assert "det/c/1" in message and primary in message and run_uid in message
    assert "missing" in message
    with pytest.raises(MissingChunk):
        list(reader.documents(run_uid))
    # what does not touch that chunk still reads
    assert reader.read_events(primary, fields=["motor"]).data["motor"].shape == (25,)
    assert reader.read_events(primary, fields=["det"], seq_range=(1, 11)).data["det"].shape == (10,)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_chunk_is_an_error(written, damage):
    store, primary, run_uid = written
    path = _chunk(store, primary, "det", 0)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-9]
    elif damage == "flip":
        raw[17] ^= 0x40
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunk) as info:
        _fresh(store).read_events(primary, fields=["det"])
    assert "det/c/0" in str(info.value) and primary in str(info.value)
    assert ("checksum" in str(info.value)) == (damage == "flip")


def test_corrupt_string_chunk_is_an_error(written):
    store, primary, _ = written
    path = _chunk(store, primary, "uid", 2)
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunk, match="uid/c/2"):
        _fresh(store).read_events(primary, uids=True)


def test_missing_data_folder_is_named(written, tmp_path):
    store, primary, _ = written
    shutil.move(store.data, tmp_path / "moved")
    with pytest.raises(MissingChunk, match="data= points to the wrong place|missing"):
        _fresh(store).read_events(primary)


def test_a_failed_flush_leaves_the_index_as_it_was(tmp_path, monkeypatch):
    """If writing the zarr columns fails, no chunk row, no segment and no stop is recorded:
    the run stays readable up to its last good chunk, and a later flush succeeds."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    docs = factories.scalar_run(n=25)
    stop = docs.pop()
    insert_all(store, docs)  # 20 of the 25 primary events are flushed (two whole chunks)
    real_write = ColumnStore.write

    def broken(self, *args, **kwargs):
        raise StorageError(f"cannot write the zarr columns at {self.url}: disk full")

    monkeypatch.setattr(ColumnStore, "write", broken)
    with pytest.raises(StorageError, match="disk full"):
        store.insert(*stop)
    reader = _fresh(store)
    run = BrokerCatalog(reader)[-1]
    assert not run.complete
    np.testing.assert_array_equal(
        run.primary(seq_num=True).read()["seq_num"].values, np.arange(1, 21)
    )
    monkeypatch.setattr(ColumnStore, "write", real_write)
    store.insert(*stop)  # the buffered events were kept: now they are written
    run = BrokerCatalog(_fresh(store))[-1]
    assert run.complete and run.primary.read()["det"].shape == (25,)


def test_bucket_that_does_not_exist(tmp_path, s3_server):
    store = NativeStore(
        f"sqlite:///{tmp_path}/index.sqlite",
        "s3://no-such-bucket/runs",
        storage_options=s3_server["storage_options"],
    )
    docs = factories.scalar_run(n=2)
    with pytest.raises(StorageError, match="s3://no-such-bucket/runs"):
        insert_all(store, docs)
    assert not store.runs()[0].complete  # the stop was not recorded
