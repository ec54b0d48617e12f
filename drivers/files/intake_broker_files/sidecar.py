"""The persistent run index of a folder: one sidecar file beside the run files.

Opening a folder of 10,000 run files would read the first and last document of each; the
sidecar keeps what that read found, so that a later open (in any process) only lists the
folder and compares each file's key with the one stored.

What it holds, for each run file of one format in one folder (by file name):

* the file's key: on a local disk ``(size, (mtime_ns, ctime_ns, inode))`` from ``stat``; on an
  object store ``(size, ETag)`` (or whatever fsspec reports: see :func:`.index.file_key`);
* the start uid, and the start and stop documents (msgpack, decoded only when a listing or
  search needs them), or the error that makes the file unreadable;
* for msgpack files, where the last object began (to skip a grown file faster).

It is never trusted beyond those keys: a file whose key differs is read again, a file that is
not listed any more is forgotten, a file not in the sidecar is read. A sidecar that cannot be
read (corrupt, cut short, another version, another format) is ignored and rewritten; a folder
that cannot be written keeps its sidecar in the user's cache folder instead
(``<user cache dir>/intake-broker/files-index/<hash of the folder URL>``), and if that fails
too the index lives in memory only: reading never fails because of the sidecar.

Written atomically (a temporary file then a rename; one ``put`` on an object store), so two
processes opening a folder at once each write a whole sidecar and the last one stays.

Files changed less than :data:`RACY_SECONDS` before they were looked at are not stored
(their mtime may not change on a write in the same clock tick, as git's "racily clean"
entries); they are read again by the next process, and stored once they are older.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zlib
from typing import Any

import msgpack
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from .formats import decode_msgpack_numpy

#: The sidecar's file name prefix (``.intake-broker-index-<format>``): no run-file extension,
#: so no glob of run files matches it.
SIDECAR = ".intake-broker-index"
#: Layout version; a sidecar of another version is ignored (and rewritten).
VERSION = 1
_MAGIC = "intake-broker-files-index"
#: Entries of files modified this recently (seconds) are not stored (see the module doc).
RACY_SECONDS = 2.0


def is_local(fs: Any) -> bool:
    return isinstance(fs, LocalFileSystem)


def persistable(fs: Any) -> bool:
    """Whether a filesystem outlives the process (not ``memory://``)."""
    return "memory" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def sidecar_path(folder: str, fmt_name: str) -> str:
    name = f"{SIDECAR}-{fmt_name}"
    return f"{folder.rstrip('/')}/{name}" if folder else name


def cache_path(fs: Any, folder: str, fmt_name: str) -> str:
    """Where the sidecar of a folder that cannot be written is kept (a local file)."""
    import platformdirs

    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    where = f"{protocol}://{folder}\n{fmt_name}".encode()
    name = hashlib.sha256(where).hexdigest()[:32]
    return os.path.join(
        platformdirs.user_cache_dir("intake-broker", appauthor=False), "files-index", name
    )


# -- documents in the sidecar ---------------------------------------------------------------


def _numpy(obj: Any) -> Any:
    """``default`` keeping numpy values as msgpack-numpy maps (decoded back by the formats'
    ``decode_msgpack_numpy``), so documents read from the sidecar equal those from the file."""
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind != "O":
        dtype = obj.dtype
        return {
            b"nd": isinstance(obj, np.ndarray),
            b"type": dtype.descr if dtype.fields else dtype.str,
            b"kind": dtype.kind.encode(),
            b"shape": list(np.shape(obj)),
            b"data": np.ascontiguousarray(obj).tobytes(),
        }
    raise TypeError(f"cannot keep a {type(obj).__name__} in the run index")


def pack_docs(start: dict, stop: dict | None) -> bytes:
    """The start and stop documents as bytes (raises TypeError/ValueError/OverflowError for
    values msgpack cannot hold: such an entry is simply not stored)."""
    return msgpack.packb([start, stop], default=_numpy, use_bin_type=True)


def unpack_docs(data: bytes) -> tuple[dict, dict | None]:
    start, stop = msgpack.unpackb(
        data, raw=False, strict_map_key=False, object_hook=decode_msgpack_numpy
    )
    return start, stop


# -- the file --------------------------------------------------------------------------------

#: One entry: (size, stamp, uid, docs, error, resume); stamp is the rest of the file's key;
#: docs are the packed start and stop documents (None for a file that cannot be read), error is
#: ``(message, where)`` or None, resume ``(offset, index)`` or None.
Row = tuple
_COLUMNS = 7  # name and the six fields of a row
_TYPES: list[set[type]] = [
    {str},
    {int, type(None)},
    {str, tuple},  # ETag-like text, or (mtime_ns, ctime_ns, inode) of a local file
    {str, type(None)},
    {bytes, type(None)},
    {tuple, type(None)},
    {tuple, type(None)},
]


def encode(fmt_name: str, rows: dict[str, Row]) -> bytes:
    """The sidecar's bytes: a header, a CRC-32 of the body, and the body (one msgpack array of
    columns: names, sizes, stamps, uids, documents, errors, resumes)."""
    columns = [list(rows), *([list(c) for c in zip(*rows.values(), strict=True)] or [[]] * 6)]
    body = msgpack.packb(columns, use_bin_type=True)
    return msgpack.packb([_MAGIC, VERSION, fmt_name, zlib.crc32(body)], use_bin_type=True) + body


def decode(data: bytes, fmt_name: str) -> dict[str, Row] | None:
    """The rows of a sidecar by file name, or None if it is not a sidecar of this version and
    format, or is damaged in any way (its checksum catches a damaged or cut body)."""
    try:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data[:1024])  # the header (the body is decoded at once below)
        head, version, name, crc = unpacker.unpack()
        if head != _MAGIC or version != VERSION or name != fmt_name:
            return None
        body = memoryview(data)[unpacker.tell() :]
        if zlib.crc32(body) != crc:
            return None
        columns = msgpack.unpackb(body, raw=False, use_list=False)
        if not (isinstance(columns, tuple) and len(columns) == _COLUMNS):
            return None
        names = columns[0]
        if len({len(c) for c in columns}) != 1 or "/" in "".join(names):
            return None
        for column, types in zip(columns, _TYPES, strict=True):
            if not set(map(type, column)) <= types:
                return None
        return dict(zip(names, zip(*columns[1:], strict=True), strict=True))
    except Exception:  # anything at all: a damaged sidecar is ignored, never an error
        return None


def read(fs: Any, folder: str, fmt_name: str) -> dict[str, Row] | None:
    """The sidecar of a folder (beside the files, or in the user cache: the newer of the two
    that can be used), None if neither is usable."""
    found: list[tuple[float, dict[str, Row]]] = []
    local = LocalFileSystem()
    for where_fs, path in (
        (fs, sidecar_path(folder, fmt_name)),
        (local, cache_path(fs, folder, fmt_name)),
    ):
        try:
            if is_local(where_fs):
                with open(path, "rb") as file:
                    when = os.fstat(file.fileno()).st_mtime
                    data = file.read()
            else:
                when = float("inf")  # an object store: its own sidecar is preferred
                data = where_fs.cat_file(path)
        except Exception:  # missing, unreadable, a network error: ignored
            continue
        rows = decode(data, fmt_name)
        if rows is not None:
            found.append((when, rows))
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def _write_local(path: str, data: bytes) -> None:
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_file(fs: Any, path: str, data: bytes) -> None:
    """Write a whole file atomically (temporary file and rename; one put on object stores)."""
    if is_local(fs):
        _write_local(path, data)
    else:
        fs.pipe_file(path, data)


def write(fs: Any, folder: str, fmt_name: str, rows: dict[str, Row]) -> str | None:
    """Store the sidecar beside the files, else in the user cache; the path written, or None
    if neither could be written (the index then stays in memory)."""
    data = encode(fmt_name, rows)
    try:
        path = sidecar_path(folder, fmt_name)
        write_file(fs, path, data)
        return path
    except Exception:  # read-only folder or bucket, quota, network: try the cache
        pass
    try:
        path = cache_path(fs, folder, fmt_name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(LocalFileSystem(), path, data)
        return path
    except Exception:
        return None
