"""The write-ahead log of buffered events: what makes an acknowledged ``insert`` durable.

Events are buffered per descriptor and written to zarr a whole chunk at a time (see
:mod:`.writer`). So that an event survives ``kill -9`` of the writer from the moment ``insert``
returns, every store object that buffers events keeps a log of its own in the store's log
folder (``<data>/_wal`` for a local data folder)::

    <token>.lock    held (flock) by the writing process for as long as the store is open
    <token>.wal     the records of events buffered and not yet flushed

``token`` is ``<pid>-<random>``. Each accepted event page (after every check) is appended as
one record with one ``os.write`` before ``insert`` returns: the kernel holds it, so it survives
the death of the process (``durability="process"``, the default). With ``durability="fsync"``
it is also ``fsync``-ed before ``insert`` returns (survives power loss); concurrent inserts
from several threads share one ``fsync`` (group commit).

When buffered rows are flushed to zarr (and their chunk rows committed to the index), the log
is rewritten to hold only the rows still buffered (a *checkpoint*: written aside, then
renamed over), or emptied. A store that closes cleanly removes its files.

When a store is opened, the logs whose lock nobody holds (their writer died) are replayed:
under that lock, so exactly one process replays each log; events already in zarr are skipped
(replay is idempotent), the rest are flushed, and the files are removed.

A record is ``MAGIC | length (u32) | crc32c (u32) | payload``; the payload is a JSON header
(run, descriptor, insertion ordinal, rows, byte count) followed by the numeric columns' raw
little-endian bytes in layout order, then a JSON list of the string columns. A torn or damaged
record (the writer died inside ``write``) ends the log: it was never acknowledged.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import logging
import os
import secrets
import struct
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numpy as np

from .errors import StorageError
from .layout import Layout

log = logging.getLogger("intake_broker_native.wal")

MAGIC = b"IBW1"
_FRAME = struct.Struct("<4sII")
_HEAD = struct.Struct("<I")
#: The durability choices of :class:`~intake_broker_native.NativeStore`.
DURABILITY = ("process", "fsync")
#: Rewrite the log at a flush only when it has grown past this (else it is kept growing).
CHECKPOINT_BYTES = 1 << 20


def _numeric_columns(layout: Layout, cols: dict) -> Iterator[tuple[np.ndarray, str, tuple]]:
    yield cols["time"], "<f8", ()
    yield cols["seq_num"], "<i8", ()
    for key, spec in layout.fields.items():
        if spec.encoding == "numeric":
            yield cols["data"][key], spec.dtype, tuple(spec.shape)
        yield cols["timestamps"][key], "<f8", ()


def _string_columns(layout: Layout, cols: dict) -> Iterator[np.ndarray]:
    yield cols["uid"]
    for key, spec in layout.fields.items():
        if spec.encoding != "numeric":
            yield cols["data"][key]
        if spec.filled:
            yield cols["filled"][key]


def encode_rows(
    run_uid: str, descriptor_uid: str, ord_: int | None, layout: Layout, cols: dict
) -> bytes:
    """One log record of converted rows (see the module's docstring)."""
    numeric = b"".join(
        np.ascontiguousarray(a, dtype=dt).tobytes() for a, dt, _ in _numeric_columns(layout, cols)
    )
    strings = json.dumps([a.tolist() for a in _string_columns(layout, cols)]).encode()
    return frame(run_uid, descriptor_uid, ord_, cols["rows"], numeric, strings)


def frame(
    run_uid: str, descriptor_uid: str, ord_: int | None, rows: int, numeric: bytes, strings: bytes
) -> bytes:
    """A log record of ``rows`` rows: their numeric columns' bytes and string columns' JSON."""
    head = json.dumps(
        {"r": run_uid, "d": descriptor_uid, "o": ord_, "n": rows, "b": len(numeric)}
    ).encode()
    payload = b"".join((_HEAD.pack(len(head)), head, numeric, strings))
    return _FRAME.pack(MAGIC, len(payload), google_crc32c.value(payload)) + payload


@dataclass
class Record:
    """One decoded log record; ``columns(layout)`` gives its converted rows."""

    run_uid: str
    descriptor_uid: str
    ord: int | None
    rows: int
    numeric: bytes
    strings: bytes

    def columns(self, layout: Layout) -> dict:
        """The rows as converted columns of ``layout`` (the descriptor's)."""
        rows = self.rows
        cols: dict[str, Any] = {"rows": rows, "data": {}, "timestamps": {}, "filled": {}}
        offset = 0

        def take(dtype: str, shape: tuple) -> np.ndarray:
            nonlocal offset
            dt = np.dtype(dtype)
            count = rows * int(np.prod(shape, dtype=np.int64))
            array = np.frombuffer(self.numeric, dt, count, offset).reshape((rows, *shape))
            offset += count * dt.itemsize
            return array.copy()

        cols["time"] = take("<f8", ())
        cols["seq_num"] = take("<i8", ())
        for key, spec in layout.fields.items():
            if spec.encoding == "numeric":
                cols["data"][key] = take(spec.dtype, tuple(spec.shape))
            cols["timestamps"][key] = take("<f8", ())
        strings = iter(json.loads(self.strings))

        def text() -> np.ndarray:
            out = np.empty(rows, dtype=object)
            out[:] = next(strings)
            return out

        cols["uid"] = text()
        for key, spec in layout.fields.items():
            if spec.encoding != "numeric":
                cols["data"][key] = text()
            if spec.filled:
                cols["filled"][key] = text()
        return cols


def read_records(path: str) -> tuple[list[Record], int]:
    """The whole records of a log file and the byte count they span (a torn tail is not
    counted)."""
    with open(path, "rb") as f:
        raw = f.read()
    return parse_records(raw)


def parse_records(raw: bytes) -> tuple[list[Record], int]:
    """The whole records at the start of ``raw`` and the byte count they span (parsing stops
    at the first torn or damaged record)."""
    records, offset = [], 0
    while offset + _FRAME.size <= len(raw):
        magic, length, crc = _FRAME.unpack_from(raw, offset)
        start = offset + _FRAME.size
        payload = raw[start : start + length]
        if magic != MAGIC or len(payload) != length or google_crc32c.value(payload) != crc:
            break
        (head_len,) = _HEAD.unpack_from(payload, 0)
        head = json.loads(payload[_HEAD.size : _HEAD.size + head_len])
        body = _HEAD.size + head_len
        records.append(
            Record(
                head["r"],
                head["d"],
                head["o"],
                head["n"],
                payload[body : body + head["b"]],
                payload[body + head["b"] :],
            )
        )
        offset = start + length
    return records, offset


class EventLog:
    """The log of one store object: created on the first buffered event, locked while open.

    Parameters
    ----------
    folder : str
        The store's log folder (a local folder).
    durability : {"process", "fsync"}
        ``"process"``: each record is handed to the kernel (``os.write``) before ``insert``
        returns; survives the death of the writing process. ``"fsync"``: also ``fsync``-ed
        (group commit across threads); survives power loss, at the cost of a disk flush.
    """

    def __init__(self, folder: str, durability: str = "process"):
        if durability not in DURABILITY:
            raise ValueError(
                f"durability={durability!r} is not one of {DURABILITY}: 'process' survives "
                "kill -9 of the writer, 'fsync' also a power loss"
            )
        self.folder = folder
        self.durability = durability
        self.token = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.path = os.path.join(folder, f"{self.token}.wal")
        self.lock_path = os.path.join(folder, f"{self.token}.lock")
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._size = 0
        self._written = 0  # bytes handed to the kernel (monotonic across checkpoints)
        self._synced = 0
        self._sync_lock = threading.Lock()
        self._pid = os.getpid()
        _LOGS.add(self)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        try:
            os.makedirs(self.folder, exist_ok=True)
            self._lock_fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        except OSError as err:
            raise StorageError(
                f"cannot create the write-ahead log {self.path!r} of buffered events: "
                f"{err.strerror or err}; the log folder must be a writable local folder "
                "(give wal= to choose another)"
            ) from err
        if self.durability == "fsync":
            _fsync_folder(self.folder)
        return self._fd

    def append(self, record: bytes) -> int:
        """Hand a record to the kernel; returns its position for :meth:`sync`."""
        fd = self._open()
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as err:
            raise StorageError(
                f"cannot append to the write-ahead log {self.path!r}: {err.strerror or err}; "
                "the event was not stored"
            ) from err
        self._size += len(record)
        self._written += len(record)
        return self._written

    def sync(self, position: int) -> None:
        """With ``durability="fsync"``: make sure everything up to ``position`` is on disk.
        Threads waiting here share the ``fsync`` of whichever of them goes first."""
        if self.durability != "fsync" or self._synced >= position:
            return
        with self._sync_lock:
            if self._synced >= position:  # another thread's fsync covered it
                return
            target = self._written
            if self._fd is not None:
                os.fsync(self._fd)
            self._synced = max(self._synced, target)

    @property
    def size(self) -> int:
        return self._size

    @property
    def position(self) -> int:
        """Bytes handed to the kernel so far (what :meth:`sync` waits for)."""
        return self._written

    def checkpoint(self, records: list[bytes]) -> None:
        """Replace the log by ``records`` (the rows still buffered): nothing flushed is kept."""
        if self._fd is None:
            if not records:
                return
            self._open()
        if not records:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        temporary = f"{self.path}.tmp"
        data = b"".join(records)
        fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            if self.durability == "fsync":
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        old, self._fd = self._fd, os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.close(old)
        self._size = len(data)
        self._written += len(data)
        self._synced = self._written if self.durability == "fsync" else self._synced

    def close(self) -> None:
        """Remove the log (everything it held was flushed) and release its lock."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        for path in (self.path, self.lock_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


_LOGS: weakref.WeakSet[EventLog] = weakref.WeakSet()


def _forked() -> None:
    """In a forked child, every log is the parent's: the child starts logs of its own (and
    leaves the parent's files and lock alone)."""
    for log in list(_LOGS):
        for fd in (log._fd, log._lock_fd):
            if fd is not None:  # the parent's lock stays held by the parent
                os.close(fd)
        log._fd = log._lock_fd = None
        log.__init__(log.folder, log.durability)  # type: ignore[misc]


os.register_at_fork(after_in_child=_forked)


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Orphan:
    """The log of a writer that died, locked by us while we replay it."""

    path: str
    lock_path: str
    lock_fd: int

    def records(self) -> list[Record]:
        if not os.path.exists(self.path):
            return []
        return read_records(self.path)[0]

    def done(self) -> None:
        """Remove the replayed log and release its lock."""
        for path in (self.path, self.lock_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.release()

    def release(self) -> None:
        os.close(self.lock_fd)


def orphans(folder: str) -> Iterator[Orphan]:
    """The logs in ``folder`` whose writer is gone, each locked by this process (no other
    process replays it meanwhile); logs of live writers are skipped."""
    for lock_path in sorted(glob.glob(os.path.join(folder, "*.lock"))):
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:  # replayed and removed meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                continue  # its writer is alive
            raise
        if not os.path.exists(lock_path):  # removed by the replayer we waited for
            os.close(fd)
            continue
        yield Orphan(lock_path[: -len(".lock")] + ".wal", lock_path, fd)
