"""The persistent run index of a folder (``.intake-broker-index-<format>``): a later open reads
no run file, and the sidecar is never trusted when it is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
import zlib

import msgpack
import numpy as np
import pytest

from intake_broker.testing import factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_files import (
    CorruptFileWarning,
    FilesStore,
    JSONLCatalog,
    JSONLFormat,
    MsgpackFormat,
    sidecar,
)

FORMATS = {"jsonl": JSONLFormat, "msgpack": MsgpackFormat}


def _write_runs(folder, count, fmt="jsonl", first_scan=1):
    store = FilesStore(str(folder), format=fmt)
    runs = [
        factories.scalar_run(n=2, time=1_600_000_000 + 60 * i, scan_id=first_scan + i)
        for i in range(count)
    ]
    for docs in runs:
        insert_all(store, docs)
    store.close()
    return runs


def _age(folder, seconds=600, only=None):
    """Set the run files' mtime (or only those named) in the past (a file modified in the last
    seconds is never stored in the sidecar: its mtime might not change on a write in the same
    clock tick). This changes their ctime: a file aged after the sidecar was written is read
    again."""
    past = time.time() - seconds
    for path in folder.iterdir():
        if not path.name.startswith(".") and (only is None or path.name in only):
            os.utime(path, (past, past))


@pytest.fixture
def reads(monkeypatch):
    """The files whose ends the index reads (``first`` of each format), in order."""
    seen: list[str] = []
    for cls in FORMATS.values():
        original = cls.first

        def first(self, fs, path, size, original=original):
            seen.append(path.rsplit("/", 1)[-1])
            return original(self, fs, path, size)

        monkeypatch.setattr(cls, "first", first)
    return seen


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A user cache folder of the test's own (where read-only folders keep their index)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


def _uids(store):
    return sorted(r.uid for r in store.runs())


def _name(docs, fmt="jsonl"):
    return f"{docs[0][1]['uid']}.{fmt}"


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_a_second_open_reads_no_file(tmp_path, reads, fmt):
    folder = tmp_path / "runs"
    folder.mkdir()
    runs = _write_runs(folder, 5, fmt)
    _age(folder)
    first = FilesStore(str(folder), format=fmt)
    assert first.count() == 5
    assert len(reads) == 5
    assert (folder / f".intake-broker-index-{fmt}").exists()
    reads.clear()
    second = FilesStore(str(folder), format=fmt)
    assert second.count() == 5 and reads == []
    assert _uids(second) == sorted(d[0][1]["uid"] for d in runs)
    for docs in runs:  # the same start and stop documents as read from the file
        record = second.run(docs[0][1]["uid"])
        assert record == first.run(docs[0][1]["uid"])
        assert record.stop is not None and record.stop["uid"] == docs[-1][1]["uid"]
    cat = BrokerCatalog(second)
    assert [r.metadata["start"]["scan_id"] for r in cat.values()] == [5, 4, 3, 2, 1]
    assert len(cat.search({"scan_id": {"$gt": 3}})) == 2
    assert reads == []
    assert len(cat[-1].primary.read()["time"]) == 2  # contents are still read from the file


def test_an_added_file_appears_and_only_it_is_read(tmp_path, reads):
    _write_runs(tmp_path, 3)
    _age(tmp_path)
    assert FilesStore(str(tmp_path)).count() == 3
    (added,) = _write_runs(tmp_path, 1, first_scan=10)
    _age(tmp_path, only=[_name(added)])
    reads.clear()
    store = FilesStore(str(tmp_path))
    assert store.count() == 4 and reads == [_name(added)]
    assert store.run(added[0][1]["uid"]).start["scan_id"] == 10
    reads.clear()
    assert FilesStore(str(tmp_path)).count() == 4 and reads == []  # stored for the next open


def _rewrite_same_size(path, old: str, new: str):
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))


def test_a_file_changed_to_the_same_size_with_a_new_mtime_is_read_again(tmp_path, reads):
    runs = _write_runs(tmp_path, 3)
    _age(tmp_path)
    assert FilesStore(str(tmp_path)).count() == 3
    path = tmp_path / _name(runs[1])
    size = path.stat().st_size
    _rewrite_same_size(path, '"scan_id": 2', '"scan_id": 7')
    _age(tmp_path, 300, only=[path.name])  # a new mtime, long enough ago to be stored
    assert path.stat().st_size == size
    reads.clear()
    store = FilesStore(str(tmp_path))
    assert store.count() == 3  # a listing stores what it read
    assert store.run(runs[1][0][1]["uid"]).start["scan_id"] == 7
    assert reads == [_name(runs[1])]
    reads.clear()
    assert FilesStore(str(tmp_path)).run(runs[1][0][1]["uid"]).start["scan_id"] == 7
    assert reads == []


def test_a_file_rewritten_with_its_old_size_and_mtime_is_read_again(tmp_path, reads):
    """``cp -p`` over a file: same size, same mtime; its ctime (and maybe inode) tell."""
    runs = _write_runs(tmp_path, 2)
    _age(tmp_path)
    path = tmp_path / _name(runs[0])
    before = path.stat()
    assert FilesStore(str(tmp_path)).count() == 2
    time.sleep(0.01)  # a later ctime than the one stored
    _rewrite_same_size(path, '"scan_id": 1', '"scan_id": 9')
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reads.clear()
    assert FilesStore(str(tmp_path)).run(runs[0][0][1]["uid"]).start["scan_id"] == 9
    assert reads == [_name(runs[0])]


def test_a_file_changed_to_a_new_size_is_read_again(tmp_path, reads):
    """A run that was acquiring when the sidecar was written, finished since."""
    done = _write_runs(tmp_path, 2)
    acquiring = factories.scalar_run(n=2, time=1_700_000_000, scan_id=50)
    writer = FilesStore(str(tmp_path))
    insert_all(writer, acquiring[:-1])
    writer.close()
    _age(tmp_path)
    store = FilesStore(str(tmp_path))
    assert store.run(acquiring[0][1]["uid"]).stop is None
    insert_all(FilesStore(str(tmp_path)), acquiring[-1:])
    _age(tmp_path, 300, only=[_name(acquiring)])
    reads.clear()
    again = FilesStore(str(tmp_path))
    assert again.run(acquiring[0][1]["uid"]).stop == acquiring[-1][1]
    assert reads == [_name(acquiring)]
    assert again.count() == 3 and done


def test_a_deleted_file_disappears(tmp_path, reads):
    runs = _write_runs(tmp_path, 3)
    _age(tmp_path)
    assert FilesStore(str(tmp_path)).count() == 3
    (tmp_path / _name(runs[0])).unlink()
    reads.clear()
    store = FilesStore(str(tmp_path))
    assert store.count() == 2 and reads == []
    assert runs[0][0][1]["uid"] not in _uids(store)
    rows = sidecar.decode((tmp_path / ".intake-broker-index-jsonl").read_bytes(), "jsonl")
    assert rows is not None and _name(runs[0]) not in rows and len(rows) == 2  # rewritten


@pytest.mark.parametrize(
    "damage",
    ["garbage", "cut", "flipped", "other version", "other format", "empty", "a directory"],
)
def test_a_damaged_or_foreign_sidecar_is_ignored_and_rewritten(tmp_path, reads, damage):
    runs = _write_runs(tmp_path, 3)
    _age(tmp_path)
    assert FilesStore(str(tmp_path)).count() == 3
    path = tmp_path / ".intake-broker-index-jsonl"
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\xc1not a sidecar" * 50)
    elif damage == "cut":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # one byte changed inside a document
        at = data.index(b"scan_id") + 2
        path.write_bytes(data[:at] + b"X" + data[at + 1 :])
    elif damage == "other version":  # a well-formed sidecar of a later layout
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data[:1024])
        magic, version, fmt, _ = unpacker.unpack()
        body = data[unpacker.tell() :]
        head = msgpack.packb([magic, version + 1, fmt, zlib.crc32(body)])
        path.write_bytes(head + body)
    elif damage == "other format":
        rows = sidecar.decode(data, "jsonl")
        assert rows is not None
        path.write_bytes(sidecar.encode("msgpack", rows))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    reads.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, no error
        store = FilesStore(str(tmp_path))
        assert store.count() == 3
        assert _uids(store) == sorted(d[0][1]["uid"] for d in runs)
    assert sorted(reads) == sorted(_name(d) for d in runs)  # every file read again
    if damage != "a directory":  # then it stays in memory (and the user cache)
        assert sidecar.decode(path.read_bytes(), "jsonl") is not None  # rewritten
        reads.clear()
        assert FilesStore(str(tmp_path)).count() == 3 and reads == []


def test_sidecar_rows_that_lie_about_a_file_are_not_used(tmp_path, reads):
    """A sidecar copied from another folder (other files, same names): the keys differ."""
    runs = _write_runs(tmp_path / "a", 2)
    _age(tmp_path / "a")
    assert FilesStore(str(tmp_path / "a")).count() == 2
    other = tmp_path / "b"
    other.mkdir()
    for docs in runs:  # the same file names, other contents
        text = (tmp_path / "a" / _name(docs)).read_text().replace('"scan_id": ', '"scan_id": 10')
        (other / _name(docs)).write_text(text)
    _age(other)
    data = (tmp_path / "a" / ".intake-broker-index-jsonl").read_bytes()
    (other / ".intake-broker-index-jsonl").write_bytes(data)
    reads.clear()
    store = FilesStore(str(other))
    assert sorted(store.run(d[0][1]["uid"]).start["scan_id"] for d in runs) == [101, 102]
    assert len(reads) == 2


def test_a_read_only_folder_keeps_its_index_in_the_user_cache(tmp_path, reads, monkeypatch):
    folder = tmp_path / "runs"
    folder.mkdir()
    _write_runs(folder, 3)
    _age(folder)
    original = sidecar.write_file

    def refuse_in_folder(fs, path, data):  # as a read-only mount or folder would
        if str(path).startswith(str(folder)):
            raise PermissionError(13, "Permission denied", path)
        return original(fs, path, data)

    monkeypatch.setattr(sidecar, "write_file", refuse_in_folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FilesStore(str(folder)).count() == 3
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    cached = list((tmp_path / "user-cache" / "intake-broker" / "files-index").iterdir())
    assert len(cached) == 1 and not cached[0].name.endswith(".tmp")
    reads.clear()
    assert FilesStore(str(folder)).count() == 3 and reads == []
    # nowhere to write at all: the index lives in memory, reads still work
    monkeypatch.setattr(
        sidecar, "write_file", lambda fs, path, data: (_ for _ in ()).throw(OSError(30, "ro"))
    )
    cached[0].unlink()
    assert FilesStore(str(folder)).count() == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_folder_without_write_permission(tmp_path, reads):
    folder = tmp_path / "runs"
    folder.mkdir()
    _write_runs(folder, 2)
    _age(folder)
    folder.chmod(0o555)
    try:
        assert FilesStore(str(folder)).count() == 2
        reads.clear()
        assert FilesStore(str(folder)).count() == 2 and reads == []
    finally:
        folder.chmod(0o755)


def test_a_corrupt_file_is_remembered_and_still_left_out_with_a_warning(tmp_path, reads):
    _write_runs(tmp_path, 2)
    (tmp_path / "broken.jsonl").write_text('["descriptor", {"uid": "d"}]\n')
    _age(tmp_path)
    with pytest.warns(CorruptFileWarning, match="broken.jsonl"):
        assert FilesStore(str(tmp_path)).count() == 2
    reads.clear()
    with pytest.warns(CorruptFileWarning, match="broken.jsonl: line 1"):
        assert FilesStore(str(tmp_path)).count() == 2
    assert reads == []


def test_recently_modified_files_are_not_stored_until_they_are_older(tmp_path, reads):
    runs = _write_runs(tmp_path, 2)  # just written: their mtime is now
    assert FilesStore(str(tmp_path)).count() == 2
    rows = sidecar.decode((tmp_path / ".intake-broker-index-jsonl").read_bytes(), "jsonl")
    assert rows == {}
    _age(tmp_path)
    reads.clear()
    assert FilesStore(str(tmp_path)).count() == 2 and len(reads) == 2
    rows = sidecar.decode((tmp_path / ".intake-broker-index-jsonl").read_bytes(), "jsonl")
    assert rows is not None and sorted(rows) == sorted(_name(d) for d in runs)


def test_numpy_values_in_a_start_document_survive_the_sidecar(tmp_path, reads):
    """suitcase-msgpack files may hold msgpack-numpy arrays: the sidecar keeps them as such."""
    (docs,) = [factories.scalar_run(n=1, time=1_600_000_000)]
    start = dict(
        docs[0][1],
        positions={
            b"nd": True,
            b"type": "<f8",
            b"kind": b"",
            b"shape": [3],
            b"data": np.arange(3.0).tobytes(),
        },
    )
    path = tmp_path / f"{start['uid']}.msgpack"
    with open(path, "wb") as file:
        file.write(msgpack.packb(["start", start], use_bin_type=True))
        for name, doc in docs[1:]:
            file.write(msgpack.packb([name, doc], use_bin_type=True))
    _age(tmp_path)
    store = FilesStore(str(tmp_path), format="msgpack")
    assert store.count() == 1
    first = store.run(start["uid"]).start
    reads.clear()
    second = FilesStore(str(tmp_path), format="msgpack").run(start["uid"]).start
    assert reads == []
    assert isinstance(second["positions"], np.ndarray)
    np.testing.assert_array_equal(second["positions"], first["positions"])


_OPEN = """
import sys
from intake_broker_files import JSONLCatalog
print(len(JSONLCatalog(sys.argv[1])))
"""


def test_two_processes_opening_a_folder_at_once(tmp_path, reads):
    _write_runs(tmp_path, 40)
    _age(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [out.strip() for out, _ in outs] == ["40", "40"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    rows = sidecar.decode((tmp_path / ".intake-broker-index-jsonl").read_bytes(), "jsonl")
    assert rows is not None and len(rows) == 40
    assert len(JSONLCatalog(str(tmp_path))) == 40 and reads == []


def test_a_writer_updates_the_sidecar_for_other_readers(tmp_path, reads):
    store = FilesStore(str(tmp_path), refresh_interval=0)
    (docs,) = [factories.scalar_run(n=2, time=1_600_000_000)]
    insert_all(store, docs)
    store.close()
    _age(tmp_path)
    assert store.count() == 1  # a refresh after the file aged: stored now
    reads.clear()
    assert FilesStore(str(tmp_path)).count() == 1 and reads == []
    data = json.loads((tmp_path / _name(docs)).read_text().splitlines()[0])
    assert data[1]["uid"] == docs[0][1]["uid"]


def test_a_bucket_keeps_its_index_beside_the_objects(s3_server, s3_prefix, reads):
    options = s3_server["storage_options"]
    writer = FilesStore(s3_prefix, storage_options=options)
    runs = [factories.scalar_run(n=2, time=1_600_000_000 + i, scan_id=i + 1) for i in range(3)]
    for docs in runs:
        insert_all(writer, docs)
    writer.close()
    assert FilesStore(s3_prefix, storage_options=options).count() == 3
    reads.clear()
    store = FilesStore(s3_prefix, storage_options=options)
    assert store.count() == 3 and reads == []  # keyed by ETag: never racy
    assert store.run(runs[0][0][1]["uid"]).start["scan_id"] == 1
    # an object replaced (a new ETag) is read again
    fs = store._wfs
    path = f"{s3_prefix.removeprefix('s3://')}/{_name(runs[0])}"
    fs.pipe_file(path, fs.cat_file(path).replace(b'"scan_id": 1', b'"scan_id": 4'))
    reads.clear()
    assert (
        FilesStore(s3_prefix, storage_options=options).run(runs[0][0][1]["uid"]).start["scan_id"]
        == 4
    )
    assert reads == [_name(runs[0])]


def test_memory_filesystems_get_no_sidecar(reads):
    folder = f"memory://sidecar-{time.time_ns()}"
    store = FilesStore(folder)
    insert_all(store, factories.scalar_run(n=1, time=1_600_000_000))
    store.close()
    assert FilesStore(folder).count() == 1
    assert [p for p in store._wfs.ls(folder.removeprefix("memory://")) if ".intake" in p] == []
