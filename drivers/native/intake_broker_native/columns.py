"""Event columns in zarr (format 3) on any fsspec URL: writing them, and reading them back fast.

Writing goes through zarr-python, so what is on disk is plain zarr that ``xarray.open_zarr``
reads. Reading decodes the chunk files directly (their codecs are the ones written here:
``bytes`` + ``crc32c`` for numbers, ``vlen-utf8`` + ``zstd`` + ``crc32c`` for strings, without
``zstd`` in small chunks) into the output arrays, with one read per chunk file and no per-row
Python for numbers; a chunk with other codecs is read through zarr-python. Readers never
trust array shapes: they read the rows the run index says were flushed, and a chunk that is
missing, of the wrong size or with a bad checksum is an error (zarr alone would return fill
values for a missing chunk).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numpy as np
from fsspec.core import url_to_fs

from . import packed
from .errors import CorruptChunk, MissingChunk, StorageError
from .layout import FieldSpec, Layout

#: Reads of at least this many bytes are spread over a few threads (local files).
_PARALLEL_BYTES = 4 * 2**20
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="intake-broker-native-read"
        )
    return _POOL


@dataclass(frozen=True)
class ArraySpec:
    """One zarr array of a descriptor group, as the writer creates it."""

    name: str
    role: str  # "index", "data", "timestamps" or "filled"
    key: str | None
    dtype: str  # numpy dtype string, or "str"
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    encoding: str = "numeric"


def array_specs(layout: Layout) -> Iterator[ArraySpec]:
    """Every array of a descriptor group: time, seq_num, uid, then each field's arrays."""
    yield ArraySpec("time", "index", None, "<f8", (), ("time",))
    yield ArraySpec("seq_num", "index", None, "<i8", (), ("time",))
    yield ArraySpec("uid", "index", None, "str", (), ("time",), "str")
    for spec in layout.fields.values():
        yield from field_arrays(spec)


def field_arrays(spec: FieldSpec) -> Iterator[ArraySpec]:
    yield ArraySpec(
        spec.array,
        "data",
        spec.key,
        spec.dtype,
        tuple(spec.shape),
        ("time", *spec.dims),
        spec.encoding,
    )
    yield ArraySpec(spec.timestamps, "timestamps", spec.key, "<f8", (), ("time",))
    if spec.filled:
        yield ArraySpec(spec.filled, "filled", spec.key, "str", (), ("time",), "json")


@dataclass(frozen=True)
class _Meta:
    """What a reader needs from an array's ``zarr.json``."""

    chunk_rows: int
    chunk_shape: tuple[int, ...]
    dtype: np.dtype  # object for strings
    serializer: str  # "bytes" or "vlen-utf8"
    tail: tuple[str, ...]  # bytes-to-bytes codecs, in writing order
    direct: bool  # decodable here (else read through zarr-python)
    nbytes: int = 0  # of a chunk's values (numbers)


def _parse_meta(obj: dict) -> _Meta:
    codecs = obj.get("codecs", [])
    names = tuple(c.get("name") for c in codecs)
    shape = tuple(obj["chunk_grid"]["configuration"]["chunk_shape"])
    data_type = obj.get("data_type")
    serializer = names[0] if names else ""
    endian = (codecs[0].get("configuration") or {}).get("endian", "little") if codecs else ""
    direct = (
        serializer in ("bytes", "vlen-utf8")
        and set(names[1:]) <= {"zstd", "crc32c"}
        and obj.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/") == "/"
        and endian == "little"
        and not obj.get("storage_transformers")
    )
    if serializer == "vlen-utf8" or not isinstance(data_type, str):
        dtype = np.dtype(object)
    else:
        try:
            dtype = np.dtype(data_type).newbyteorder("<")
        except TypeError:
            dtype, direct = np.dtype(object), False
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return _Meta(shape[0], shape, dtype, serializer, names[1:], direct, nbytes)


#: Chunks of at most this many strings are decoded here; larger ones by numcodecs (its import,
#: ~10 ms with its entry-point scan, is worth it only for large chunks).
_PY_VLEN_ITEMS = 4096


def _vlen_utf8(data: Any) -> np.ndarray:
    """Decode zarr's ``vlen-utf8``: a little-endian uint32 count, then each item as a uint32
    byte length and its UTF-8 bytes."""
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise ValueError(f"{len(view)} bytes hold no vlen-utf8 header")
    count = int.from_bytes(view[:4], "little")
    if count > _PY_VLEN_ITEMS:
        from numcodecs.vlen import VLenUTF8

        return VLenUTF8().decode(data)
    out = np.empty(count, dtype=object)
    items, pos, end = [], 4, len(view)
    for _ in range(count):
        size = int.from_bytes(view[pos : pos + 4], "little")
        pos += 4
        if pos + size > end:
            raise ValueError("vlen-utf8 data ends inside an item")
        items.append(str(view[pos : pos + size], "utf-8"))
        pos += size
    if pos != end:
        raise ValueError(f"vlen-utf8 data has {end - pos} bytes after its {count} items")
    out[:] = items
    return out


#: Chunk files modified less than this long ago are checksummed on every read (see _Verified).
_RACY_NS = 2_000_000_000


class _Verified:
    """The chunk files whose checksum this process has verified, with the version of each
    (inode, device, size, modification and change times) that was verified; the most
    recent 65,536.

    A re-read of the same version needs no second checksum pass: that is what makes a
    repeated read a copy from the page cache. A file written again (a partial last chunk
    when events are appended, a file changed by hand) has new times and is checked again;
    a file modified in the last two seconds is not recorded (as git treats "racily clean"
    files: a second write within the same tick of the file system's clock keeps the times).
    What this gives up: damage to the disk under a file this process has already verified,
    with no write through the file system, is caught by the next process, not this one."""

    def __init__(self, size: int = 1 << 16):
        self.size = size
        self._items: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> tuple[int, ...] | None:
        return self._items.get(path)

    def put(self, path: str, version: tuple[int, ...]) -> None:
        with self._lock:
            self._items.pop(path, None)
            self._items[path] = version
            while len(self._items) > self.size:
                del self._items[next(iter(self._items))]


class ColumnStore:
    """The zarr groups of a data URL: ``<data>/<path of a descriptor group>/<array>``.

    Parameters
    ----------
    url : str
        A local folder or an fsspec URL (``s3://bucket/prefix``).
    storage_options : dict, optional
        fsspec options (for s3fs: ``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``).
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, root = url_to_fs(self.url, **self.storage_options)
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        self._meta: dict[tuple[str, str], _Meta] = {}
        self._stores: dict[str, Any] = {}
        self._writing: dict[tuple[str, str], Any] = {}  # zarr arrays opened for writing
        self._lock = threading.RLock()
        self._packed = packed.PackedCache()
        self._verified = _Verified()

    def __repr__(self) -> str:
        return f"ColumnStore({self.url!r})"

    def check_writable(self) -> None:
        """Create the data folder (local) and check that it can be written.

        Raises
        ------
        StorageError
            Naming the folder and why.
        """
        if not self.local:
            return
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the data folder {self.root!r} for the zarr "
                f"columns: {err.strerror or err}"
            ) from err
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(
                f"the data folder {self.root!r} is not writable by this user; "
                "choose a folder you can write to (data=...)"
            )

    def path(self, rel: str, *names: str) -> str:
        return "/".join((self.root, rel, *names))

    def url_of(self, rel: str) -> str:
        """The URL of a descriptor group, for ``xarray.open_zarr``."""
        return f"{self.url}/{rel}"

    # -- writing ------------------------------------------------------------------------

    def _zarr_store(self, rel: str) -> Any:
        with self._lock:
            if rel not in self._stores:
                import zarr.storage

                if self.local:
                    self._stores[rel] = zarr.storage.LocalStore(self.path(rel))
                else:
                    self._stores[rel] = zarr.storage.FsspecStore.from_url(
                        self.url_of(rel), storage_options=self.storage_options
                    )
            return self._stores[rel]

    @staticmethod
    def _array_kwargs(spec: ArraySpec, layout: Layout, attrs: dict) -> dict[str, Any]:
        from zarr.codecs import Crc32cCodec, ZstdCodec

        chunk_rows = layout.chunk_rows
        if spec.dtype == "str":
            compressors = (
                [ZstdCodec(level=1), Crc32cCodec()] if layout.compress_strings else [Crc32cCodec()]
            )
            kind: dict[str, Any] = {"dtype": str, "fill_value": "", "compressors": compressors}
        else:
            dtype = np.dtype(spec.dtype)
            fill = np.nan if dtype.kind == "f" else (False if dtype.kind == "b" else 0)
            kind = {
                "dtype": dtype,
                "fill_value": fill,
                "compressors": [Crc32cCodec()],
                "filters": None,
            }
        # a chunk that is all fill values is still written: readers check every chunk exists
        return {
            "chunks": (chunk_rows, *spec.shape),
            "dimension_names": spec.dims,
            "attributes": attrs,
            "config": {"write_empty_chunks": True},
            **kind,
        }

    def _local_array(
        self, rel: str, spec: ArraySpec, rows: int, layout: Layout, attrs: dict, fresh: bool
    ) -> Any:
        import zarr

        cached = self._writing.get((rel, spec.name))
        if cached is None:
            store = self._zarr_store(rel)
            if fresh:
                cached = zarr.create_array(
                    store,
                    name=spec.name,
                    shape=(rows, *spec.shape),
                    overwrite=True,
                    **self._array_kwargs(spec, layout, attrs),
                )
            else:
                cached = zarr.open_array(store, path=spec.name, mode="r+").with_config(
                    {"write_empty_chunks": True}
                )
            self._writing[(rel, spec.name)] = cached
        return cached

    def forget(self, rel: str) -> None:
        """Drop the arrays of a group kept open for writing (its run has ended)."""
        with self._lock:
            for key in [k for k in self._writing if k[0] == rel]:
                del self._writing[key]

    def write(
        self,
        rel: str,
        layout: Layout,
        descriptor: dict,
        group_attrs: dict,
        row_start: int,
        columns: dict,
    ) -> None:
        """Write converted rows at ``row_start``; the arrays end at the last row written.

        ``row_start == 0`` creates the group (replacing whatever a writer that died before
        recording anything may have left).

        Raises
        ------
        StorageError
            When the data URL cannot be written (naming it).
        """
        rows = row_start + columns["rows"]
        fresh = row_start == 0
        data_keys = descriptor.get("data_keys", {})
        arrays = []
        for spec in array_specs(layout):
            if spec.role == "index":
                values = columns[spec.name]
            else:
                values = columns[spec.role][spec.key]
            attrs: dict[str, Any] = {
                "intake_broker": {"role": spec.role, "key": spec.key, "encoding": spec.encoding}
            }
            dk = data_keys.get(spec.key, {}) if spec.role == "data" else {}
            attrs.update(
                {k: dk[k] for k in ("units", "source", "object_name") if isinstance(dk.get(k), str)}
            )
            arrays.append((spec, values, attrs))
        try:
            if self.local:
                self._write_local(rel, layout, group_attrs, row_start, rows, arrays, fresh)
            else:
                self._write_remote(rel, layout, group_attrs, row_start, rows, arrays, fresh)
        except (OSError, PermissionError) as err:
            raise StorageError(
                f"cannot write the zarr columns at {self.url_of(rel)}: {err}"
            ) from err

    def _write_local(self, rel, layout, group_attrs, row_start, rows, arrays, fresh) -> None:
        import zarr

        if fresh:
            self.forget(rel)
            zarr.create_group(self._zarr_store(rel), attributes=group_attrs, overwrite=True)
        for spec, values, attrs in arrays:
            array = self._local_array(rel, spec, rows, layout, attrs, fresh)
            if array.shape[0] != rows:
                array.resize((rows, *spec.shape))
            if len(values):
                array[row_start:rows] = values

    def _write_remote(self, rel, layout, group_attrs, row_start, rows, arrays, fresh) -> None:
        """Encode the new chunks and metadata with zarr in memory, then upload them all at
        once (object stores take many concurrent puts well, and many sequential ones badly)."""
        import zarr
        from zarr.core.buffer import default_buffer_prototype

        buffers: dict[str, Any] = {}
        chunk_rows = layout.chunk_rows
        first, last = row_start // chunk_rows, (rows - 1) // chunk_rows
        if row_start % chunk_rows:  # the partial last chunk: merge into what is stored
            keys = [f"{spec.name}/c/{first}" + "/0" * len(spec.shape) for spec, _, _ in arrays]
            stored = self.fs.cat([self.path(rel, k) for k in keys], on_error="return")
            for key in keys:
                raw = stored.get(self.path(rel, key))
                if isinstance(raw, bytes):
                    buffers[key] = default_buffer_prototype().buffer.from_bytes(raw)
        memory = zarr.storage.MemoryStore(buffers)
        upload: dict[str, bytes] = {}
        if fresh:
            zarr.create_group(memory, attributes=group_attrs, overwrite=True)
            upload["zarr.json"] = buffers["zarr.json"].to_bytes()
        for spec, values, attrs in arrays:
            array = zarr.create_array(
                memory,
                name=spec.name,
                shape=(rows, *spec.shape),
                **self._array_kwargs(spec, layout, attrs),
            )
            if len(values):
                array[row_start:rows] = values
            upload[f"{spec.name}/zarr.json"] = buffers[f"{spec.name}/zarr.json"].to_bytes()
            for index in range(first, last + 1):
                key = f"{spec.name}/c/{index}" + "/0" * len(spec.shape)
                upload[key] = buffers[key].to_bytes()
        self.fs.pipe({self.path(rel, k): v for k, v in upload.items()})

    # -- packed streams (see :mod:`.packed`) --------------------------------------------

    def write_packed(
        self, rel: str, descriptor_uid: str, rows: int, record: bytes, *, fsync: bool = False
    ) -> list[int] | None:
        """Write a packed stream's record: locally, appended to its run's journal (returns
        ``[offset, length]`` of the line); on an object store, as its own file (returns None).

        Raises
        ------
        StorageError
            When the data URL cannot be written (naming the file).
        """
        if not self.local:
            path = self.path(packed.file_of(rel))
            self._packed.drop(path)
            try:
                self.fs.pipe_file(path, record)
            except OSError as err:
                raise StorageError(
                    f"cannot write the packed events at {self.url_of(packed.file_of(rel))}: {err}"
                ) from err
            return None
        from .journal import JOURNAL

        path = self.path(rel.rsplit("/", 1)[0], JOURNAL)
        data = packed.journal_line(descriptor_uid, rows, record)
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                end = os.lseek(fd, 0, os.SEEK_CUR)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise StorageError(f"cannot append packed events to {path!r}: {err}") from err
        return [end - len(data), len(data)]

    def remove_packed(self, rel: str) -> None:
        """Remove a packed stream's file (its rows are now in the zarr group); a record in
        the journal stays (``reindex`` takes the zarr group, which holds more rows)."""
        if self.local:
            return
        path = self.path(packed.file_of(rel))
        self._packed.drop(path)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def packed_columns(self, rel: str, layout: Layout, rows: int, where: str) -> dict:
        """The converted columns of a packed stream of ``rows`` rows (decoded once, kept).

        Raises
        ------
        MissingChunk, CorruptChunk
            Naming the file.
        """
        from .journal import JOURNAL

        at = layout.packed_at
        if at is not None:
            path = self.path(rel.rsplit("/", 1)[0], JOURNAL)
            key = (f"{path}@{at[0]}", rows)
        else:
            path = self.path(packed.file_of(rel))
            key = (path, rows)
        cols = self._packed.get(key)
        if cols is not None:
            return cols
        try:
            if at is None:
                raw = self.fs.cat_file(path)
            elif self.local:
                with open(path, "rb") as f:
                    f.seek(at[0])
                    raw = f.read(at[1])
            else:
                raw = self.fs.cat_file(path, start=at[0], end=at[0] + at[1])
        except FileNotFoundError:
            raise MissingChunk(
                f"packed events {path!r} ({where}) are missing although the run index records "
                "them as written; the data folder is incomplete, or data= points to the wrong "
                "place"
            ) from None
        if at is not None:
            if len(raw) != at[1]:
                raise CorruptChunk(
                    f"packed events in {path!r} at byte {at[0]} ({where}) are truncated: "
                    f"{len(raw)} of {at[1]} bytes"
                )
            raw = packed.record_of_line(raw, path, where)
        cols = packed.decode(raw, layout, path, where, rows)
        self._packed.put(key, cols)
        return cols

    def _read_packed(
        self, rel: str, layout: Layout, names: list[str], start: int, stop: int, where: dict
    ) -> dict[str, np.ndarray]:
        first = where[names[0]] if names else rel
        cols = self.packed_columns(rel, layout, layout.chunk_rows, first)
        by_name = packed.arrays(cols, layout)
        return {n: by_name[n][start:stop].copy() for n in names}

    # -- reading ------------------------------------------------------------------------

    def meta(self, rel: str, name: str, where: str) -> _Meta:
        key = (rel, name)
        if key not in self._meta:
            path = self.path(rel, name, "zarr.json")
            try:
                obj = json.loads(self.fs.cat_file(path))
            except FileNotFoundError:
                raise MissingChunk(
                    f"the zarr array {path!r} ({where}) is missing although the "
                    "run index records flushed rows; the data folder is "
                    "incomplete, or data= points to the wrong place"
                ) from None
            except (ValueError, KeyError) as err:
                raise CorruptChunk(
                    f"the zarr metadata {path!r} ({where}) cannot be read: {err}"
                ) from None
            self._meta[key] = _parse_meta(obj)
        return self._meta[key]

    def _chunk_path(self, rel: str, name: str, meta: _Meta, index: int) -> str:
        return self.path(rel, name, "c", str(index), *("0" * (len(meta.chunk_shape) - 1)))

    def read(
        self,
        rel: str,
        names: list[str],
        start: int,
        stop: int,
        where: dict[str, str],
        layout: Layout | None = None,
    ) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of several arrays of one group (``layout``: the descriptor's;
        a packed stream is read from its file).

        Raises
        ------
        MissingChunk, CorruptChunk
            Naming the chunk file and the field, descriptor and run it belongs to.
        """
        if layout is not None and layout.packed:
            return self._read_packed(rel, layout, names, start, stop, where)
        metas = {n: self.meta(rel, n, where[n]) for n in names}
        fetched: dict[str, Any] = {}
        if not self.local and stop > start:
            paths = [
                self._chunk_path(rel, n, m, i)
                for n, m in metas.items()
                if m.direct
                for i in range(start // m.chunk_rows, (stop - 1) // m.chunk_rows + 1)
            ]
            fetched = self.fs.cat(paths, on_error="return") if paths else {}
            if len(paths) == 1 and not isinstance(fetched, dict):
                fetched = {paths[0]: fetched}
        out: dict[str, np.ndarray] = {}
        tasks = []
        for name, meta in metas.items():
            if not meta.direct:
                out[name] = self._read_with_zarr(rel, name, meta, start, stop, where[name])
                continue
            array = np.empty((stop - start, *meta.chunk_shape[1:]), meta.dtype)
            rows = meta.chunk_rows
            for index in range(start // rows, (stop - 1) // rows + 1 if stop > start else 0):
                lo, hi = max(start, index * rows), min(stop, (index + 1) * rows)
                path = self._chunk_path(rel, name, meta, index)
                tasks.append(
                    (
                        path,
                        meta,
                        array[lo - start : hi - start],
                        lo - index * rows,
                        fetched.get(path),
                        where[name],
                    )
                )
            out[name] = array
        nbytes = sum(t[2].nbytes for t in tasks)
        if self.local and len(tasks) > 1 and nbytes >= _PARALLEL_BYTES:
            # reading from the page cache is bound by copying: two cores copy twice as fast
            # (one job per worker, each a share of the chunks: no future per chunk)
            workers = min(len(tasks), _pool()._max_workers)
            shares = [tasks[i::workers] for i in range(workers)]
            for _ in _pool().map(lambda share: [self._chunk_into(*t) for t in share], shares):
                pass
        else:
            for task in tasks:
                self._chunk_into(*task)
        return out

    def _chunk_into(
        self, path: str, meta: _Meta, target: np.ndarray, offset: int, raw: Any, where: str
    ) -> None:
        whole = offset == 0 and len(target) == meta.chunk_rows
        try:
            if raw is None and self.local:
                if meta.serializer == "bytes" and meta.tail in ((), ("crc32c",)):
                    if whole:
                        self._read_into(path, meta, target, where)
                        return
                    chunk = np.empty(meta.chunk_shape, meta.dtype)  # a part of a chunk
                    self._read_into(path, meta, chunk, where)
                    target[...] = chunk[offset : offset + len(target)]
                    return
                with open(path, "rb") as f:
                    raw = f.read()
            elif raw is None:
                raw = self.fs.cat_file(path)
        except FileNotFoundError:
            raise MissingChunk(
                f"zarr chunk {path!r} ({where}) is missing although the run "
                "index records it as written; the data folder is incomplete "
                "or was changed by hand"
            ) from None
        if isinstance(raw, FileNotFoundError):
            raise MissingChunk(
                f"zarr chunk {path!r} ({where}) is missing although the run "
                "index records it as written"
            ) from None
        if isinstance(raw, BaseException):
            raise StorageError(f"cannot read zarr chunk {path!r} ({where}): {raw}") from raw
        values = self._decode(path, meta, raw, where)
        target[...] = values[offset : offset + len(target)]

    def _read_into(self, path: str, meta: _Meta, target: np.ndarray, where: str) -> None:
        """An uncompressed chunk straight into ``target`` (one ``preadv`` of the values
        and the checksum trailer; a byte more shows a chunk that is too long). The checksum
        is computed the first time this process reads a version of the file (its inode,
        size and modification time) and not again while that version is what is on disk."""
        want = 4 if meta.tail else 0
        trailer = bytearray(want + 1)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            view = memoryview(target).cast("B")
            got = os.preadv(fd, [view, trailer], 0)
        finally:
            os.close(fd)
        if got != meta.nbytes + want:
            size = f"more than {got - 1}" if got > meta.nbytes + want else str(got)
            raise CorruptChunk(
                f"zarr chunk {path!r} ({where}) has {size} bytes, expected "
                f"{meta.nbytes + want}"
                + (" (values and crc32c trailer)" if want else "")
                + ": it is truncated or damaged"
            )
        if not want:
            return
        version = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._verified.get(path) == version:
            return
        # a file written in the last seconds may be written again within the same tick of
        # the file system's clock (same times): it is verified on every read until then
        racy = time.time_ns() - st.st_mtime_ns < _RACY_NS
        body = target.reshape(-1).view(np.uint8)  # (google_crc32c takes no writable views)
        if google_crc32c.value(body) != int.from_bytes(trailer[:4], "little"):
            raise CorruptChunk(
                f"zarr chunk {path!r} ({where}) fails its crc32c checksum: it is damaged"
            )
        if not racy:
            self._verified.put(path, version)

    @staticmethod
    def _decode(path: str, meta: _Meta, raw: bytes, where: str) -> np.ndarray:
        data: Any = raw
        try:
            for codec in reversed(meta.tail):
                if codec == "crc32c":
                    body, stored = data[:-4], data[-4:]
                    if len(data) < 4 or google_crc32c.value(bytes(body)) != int.from_bytes(
                        stored, "little"
                    ):
                        raise CorruptChunk(
                            f"zarr chunk {path!r} ({where}) fails its crc32c "
                            "checksum: it is damaged"
                        )
                    data = body
                else:
                    from numcodecs.zstd import Zstd

                    data = Zstd().decode(data)
            if meta.serializer == "vlen-utf8":
                values = _vlen_utf8(data)
            else:
                if len(data) != meta.nbytes:
                    raise CorruptChunk(
                        f"zarr chunk {path!r} ({where}) holds {len(data)} bytes "
                        f"of values, expected {meta.nbytes}: it is damaged"
                    )
                values = np.frombuffer(data, meta.dtype)
        except CorruptChunk:
            raise
        except Exception as err:
            raise CorruptChunk(f"zarr chunk {path!r} ({where}) cannot be decoded: {err}") from None
        if values.size != int(np.prod(meta.chunk_shape, dtype=np.int64)):
            raise CorruptChunk(
                f"zarr chunk {path!r} ({where}) holds {values.size} values, "
                f"expected {int(np.prod(meta.chunk_shape))}"
            )
        return values.reshape(meta.chunk_shape)

    def _read_with_zarr(
        self, rel: str, name: str, meta: _Meta, start: int, stop: int, where: str
    ) -> np.ndarray:
        import zarr

        for index in range(start // meta.chunk_rows, (stop - 1) // meta.chunk_rows + 1):
            path = self._chunk_path(rel, name, meta, index)
            if not self.fs.exists(path):
                raise MissingChunk(
                    f"zarr chunk {path!r} ({where}) is missing although the run "
                    "index records it as written"
                )
        try:
            array = zarr.open_array(self._zarr_store(rel), path=name, mode="r")
            values = array[start:stop]
        except Exception as err:
            raise CorruptChunk(
                f"zarr array {self.path(rel, name)!r} ({where}) cannot be read "
                f"rows {start}..{stop}: {err}"
            ) from err
        return np.asarray(values, dtype=object) if meta.dtype.kind == "O" else values
