"""The run index of a set of files: the start and stop document of each, read from its ends.

Opening a catalog reads only the first and last document of each file (never the events in
between), caches them by ``(path, size, mtime or ETag)`` and re-reads a file only when that key
changes. Listing re-globs at most every ``refresh_interval`` seconds. What was read is kept in
a sidecar file per folder (:mod:`.sidecar`), so that the next process opening the folder only
lists it.
"""

from __future__ import annotations

import fnmatch
import gc
import os
import re
import stat
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from intake_broker.errors import CorruptFile
from intake_broker.store import RunRecord

from . import sidecar
from .formats import FileFormat, Located, corrupt

_MAGIC = set("*?[")


class CorruptFileWarning(UserWarning):
    """A run file was left out of a listing because it cannot be read."""


def file_key(info: dict) -> tuple:
    """What identifies one version of a file: its size and its mtime (or ETag)."""
    stamp = next(
        (
            info[k]
            for k in ("mtime", "ETag", "etag", "LastModified", "created")
            if info.get(k) is not None
        ),
        None,
    )
    return (info.get("size"), str(stamp))


def local_key(st: os.stat_result) -> tuple:
    """The key of a local file from ``stat``: its size, and its mtime, ctime and inode (the
    ctime and inode change when a file is replaced or rewritten with its mtime set back)."""
    return (st.st_size, (st.st_mtime_ns, st.st_ctime_ns, st.st_ino))


def key_of(fs: Any, path: str, info: dict | None = None) -> tuple:
    """The key of a file as it is now (``stat`` on a local disk, else fsspec's ``info``)."""
    if sidecar.is_local(fs):
        return local_key(os.stat(path))
    return file_key(fs.info(path) if info is None else info)


def _stamp_time(key: tuple) -> float | None:
    """The mtime (seconds) in a local key, None for other keys."""
    stamp = key[1] if len(key) == 2 else None
    if isinstance(stamp, tuple) and len(stamp) == 3 and isinstance(stamp[0], int):
        return stamp[0] / 1e9
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small objects are made (it would scan
    them repeatedly; none of them form cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def has_magic(path: str) -> bool:
    return bool(_MAGIC & set(path))


def glob_base(path: str) -> str:
    """The directory a glob searches: its part before the first wildcard, up to a ``/``."""
    if not has_magic(path):
        return path
    head = path[: min(path.index(c) for c in _MAGIC if c in path)]
    return head.rsplit("/", 1)[0] if "/" in head else ""


def _forget_listings(fs: Any, base: str) -> None:
    """Drop the filesystem's cached listings under ``base`` (s3fs caches them), so that files
    written by others are seen."""
    fs.invalidate_cache(base or None)
    cache = getattr(fs, "dircache", None)
    if base and cache:
        for key in [k for k in list(cache) if k.startswith(f"{base.rstrip('/')}/")]:
            cache.pop(key, None)


class IndexEntry:
    """What the index knows of one file: its run, or why it cannot be read.

    ``record`` is decoded from ``packed`` (the start and stop documents as kept in the
    sidecar) when first asked for, so that counting runs decodes no document.
    """

    __slots__ = ("_record", "error", "fs", "key", "packed", "path", "resume", "uid")

    def __init__(
        self,
        path: str,
        fs: Any,
        key: tuple,
        uid: str | None = None,
        record: RunRecord | None = None,
        error: CorruptFile | None = None,
        resume: tuple[int, int] | None = None,
        packed: bytes | None = None,
    ):
        self.path, self.fs, self.key, self.uid = path, fs, key, uid
        self._record, self.error, self.resume, self.packed = record, error, resume, packed

    @property
    def readable(self) -> bool:
        """Whether the file holds a run that can be listed."""
        return self._record is not None or self.packed is not None

    @property
    def record(self) -> RunRecord | None:
        if self._record is None and self.packed is not None:
            start, stop = sidecar.unpack_docs(self.packed)
            self._record = RunRecord(start, stop)
        return self._record

    @record.setter
    def record(self, value: RunRecord | None) -> None:
        self._record, self.packed = value, None

    def row(self) -> sidecar.Row | None:
        """This entry as a sidecar row (None if its documents cannot be kept there)."""
        size, stamp = self.key if len(self.key) == 2 else (None, None)
        if not (isinstance(stamp, str) or _stamp_time(self.key) is not None) or (
            size is not None and not isinstance(size, int)
        ):
            return None
        resume = tuple(self.resume) if self.resume else None
        if self.error is not None:
            error = (str(self.error), str(getattr(self.error, "where", "")))
            return (size, stamp, self.uid, None, error, resume)
        if self.packed is None:
            record = self._record
            if record is None:
                return None
            try:
                self.packed = sidecar.pack_docs(record.start, record.stop)
            except (TypeError, ValueError, OverflowError):
                return None
        return (size, stamp, self.uid, self.packed, None, resume)

    @classmethod
    def from_row(cls, path: str, fs: Any, row: sidecar.Row) -> IndexEntry | None:
        """The entry a sidecar row describes (None if the row does not make sense)."""
        size, stamp, uid, packed, error, resume = row
        entry = cls(path, fs, (size, stamp), uid, packed=packed)
        if error is None and resume is None and packed is not None and uid is not None:
            return entry  # the common case, checked by decode's column types
        try:
            if error is not None:
                err = CorruptFile(str(error[0]))
                err.path, err.where = path, str(error[1])  # type: ignore[attr-defined]
                entry.error = err
            elif packed is None or uid is None:
                return None
            entry.resume = (int(resume[0]), int(resume[1])) if resume else None
        except (TypeError, ValueError, IndexError):
            return None
        return entry


def record_from_ends(path: str, first: Located, last: Located) -> RunRecord:
    """Check the first and last pair of a file and make the run's record."""
    if first.name != "start":
        raise corrupt(
            path,
            first.where,
            f"the first document is a {first.name!r} document",
            "the run's start document first",
        )
    start = first.doc
    if not isinstance(start.get("uid"), str):
        raise corrupt(
            path,
            first.where,
            "the start document has no 'uid'",
            "a start document with a string uid",
        )
    stop = last.doc if last.name == "stop" and last is not first else None
    if stop is not None and stop.get("run_start") != start["uid"]:
        raise corrupt(
            path,
            last.where,
            f"the stop document belongs to run {stop.get('run_start')!r}",
            f"the stop document of run {start['uid']!r}, whose start opens the file",
        )
    return RunRecord(start, stop)


class FileIndex:
    """Start/stop of every file matching some glob patterns, kept up to date lazily.

    Parameters
    ----------
    patterns : list of (filesystem, path-or-glob)
        What to read: globs, files, or directories (every file of the format in them).
    fmt : FileFormat
        The layout of the files.
    refresh_interval : float
        Re-glob at most this often (seconds).
    """

    def __init__(
        self, patterns: Iterable[tuple[Any, str]], fmt: FileFormat, refresh_interval: float = 1.0
    ):
        self._raw = list(patterns)
        self._patterns: list[tuple[Any, str]] | None = None
        self.fmt = fmt
        self.refresh_interval = refresh_interval
        self.entries: dict[str, IndexEntry] = {}
        self.pinned: set[str] = set()  # files this process writes: listed, never re-read here
        self._last: float | None = None
        self._warned: set[tuple] = set()
        self._uids: dict[str, IndexEntry] | None = None
        self.generation = 0  # counts changes of the entries
        # the sidecar of each folder: (fs, folder) -> rows read from it (None: none usable);
        # folders whose entries changed since their sidecar was written; when the youngest
        # entry left out for being too recently modified may be stored
        self._sidecars: dict[tuple[int, str], dict[str, sidecar.Row] | None] = {}
        self._dirty: dict[tuple[int, str], Any] = {}  # (id(fs), folder) -> fs
        self._racy_until: dict[tuple[int, str], float] = {}
        self._folder_fs: dict[tuple[int, str], Any] = {}
        self._taken: dict[tuple[int, str], int] = {}  # rows used from each sidecar read
        self.persist = True

    def _changed(self) -> None:
        self._uids = None
        self.generation += 1

    def patterns(self) -> list[tuple[Any, str]]:
        """The patterns as globs: a path with no wildcard that does not end with the format's
        extension is a directory and becomes ``<dir>/*<ext>``."""
        if self._patterns is None:
            ext = self.fmt.extension
            self._patterns = [
                (
                    fs,
                    path if has_magic(path) or path.endswith(ext) else f"{path.rstrip('/')}/*{ext}",
                )
                for fs, path in self._raw
            ]
        return self._patterns

    def matches(self, path: str) -> bool:
        """Whether a path is one of the files the patterns select."""
        return any(fnmatch.fnmatchcase(path, pattern) for _, pattern in self.patterns())

    # -- refreshing ---------------------------------------------------------------------

    def _list(self, fs: Any, pattern: str, found: dict[str, tuple[Any, tuple, int]]) -> None:
        """Add the files a pattern selects to ``found``: path -> (fs, key, size)."""
        base = glob_base(pattern)
        name_glob = pattern[len(base) + 1 :] if base else pattern
        if sidecar.is_local(fs) and has_magic(name_glob) and "/" not in name_glob:
            # a folder of a local disk: one scandir and a stat per file (fsspec's glob stats
            # each file through several layers)
            suffix = name_glob[1:]
            simple = name_glob.startswith("*") and not has_magic(suffix)
            match = re.compile(fnmatch.translate(name_glob)).match
            prefix = f"{base}/" if base else ""
            isdir = stat.S_ISDIR
            try:
                with os.scandir(base or ".") as entries:
                    for item in entries:
                        name = item.name
                        if name.endswith(suffix) if simple else match(name):
                            try:
                                st = item.stat()
                            except FileNotFoundError:
                                continue
                            if not isdir(st.st_mode):
                                key = (st.st_size, (st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                                found.setdefault(prefix + name, (fs, key, st.st_size))
            except (FileNotFoundError, NotADirectoryError):
                pass
            return
        _forget_listings(fs, base)
        listing = (
            fs.glob(pattern, detail=True)
            if has_magic(pattern)
            else ({pattern: fs.info(pattern)} if fs.exists(pattern) else {})
        )
        for path, info in listing.items():
            if info.get("type", "file") != "directory" and path not in found:
                try:
                    key = key_of(fs, path, info)
                except FileNotFoundError:
                    continue
                found[path] = (fs, key, int(info.get("size") or 0))

    def refresh(self, force: bool = False) -> None:
        """Re-glob (at most every ``refresh_interval`` s unless ``force``), index new and
        changed files and forget vanished ones."""
        now = time.monotonic()
        if not force and self._last is not None and now - self._last < self.refresh_interval:
            return
        with _gc_paused():
            self._refresh()
        self._last = time.monotonic()

    def _refresh(self) -> None:
        wall = time.time()
        found: dict[str, tuple[Any, tuple, int]] = {}
        for fs, pattern in self.patterns():
            self._list(fs, pattern, found)
        entries, pinned = self.entries, self.pinned
        for path in [p for p in entries if p not in found and p not in pinned]:
            self.forget(path)
        loaded = set(self._sidecars)
        before = len(entries)
        todo = []
        for path, (fs, key, size) in found.items():
            entry = entries.get(path)
            if entry is not None and entry.key == key or path in pinned:
                continue
            if entry is not None or not self._from_sidecar(fs, path, key):
                todo.append((path, fs, key, size))
        for path, fs, key, size in sorted(todo, key=lambda item: item[0]):
            self._update(fs, path, key, size)
        if len(entries) != before:
            self._changed()
        for where in set(self._sidecars) - loaded:  # rows of files gone since it was written
            folder, rows = where[1], self._sidecars[where] or {}
            if self._taken.get(where, 0) == len(rows):
                continue  # every row was a listed file's
            for name in rows:
                path = f"{folder}/{name}" if folder else name
                if path not in found and self.matches(path):
                    self._dirty[where] = self._folder_fs[where]
                    break
        self.save(wall)

    # -- the sidecar ------------------------------------------------------------------------

    @staticmethod
    def _folder(path: str) -> tuple[str, str]:
        folder, _, name = path.rpartition("/")
        return folder, name

    def _touch(self, fs: Any, path: str) -> None:
        if self.persist and sidecar.persistable(fs):
            where = (id(fs), self._folder(path)[0])
            self._dirty[where] = self._folder_fs[where] = fs

    def _from_sidecar(self, fs: Any, path: str, key: tuple) -> bool:
        """Take a file's entry from its folder's sidecar if the key stored there is its key."""
        folder, _, name = path.rpartition("/")
        where = (id(fs), folder)
        if where in self._sidecars:
            rows = self._sidecars[where]
        else:
            if not (self.persist and sidecar.persistable(fs)):
                return False
            rows = self._sidecars[where] = sidecar.read(fs, folder, self.fmt.name)
            self._folder_fs[where] = fs
            if rows is None:
                self._dirty[where] = fs
        row = None if rows is None else rows.get(name)
        entry = None
        if row is not None and (row[0], row[1]) == key:
            entry = IndexEntry.from_row(path, fs, row)
        if entry is None:
            if rows is not None:
                self._dirty[where] = fs
            return False
        self.entries[path] = entry
        self._uids = None
        self._taken[where] = self._taken.get(where, 0) + 1
        if entry.error is not None:
            self._warn(entry)
        return True

    def save(self, wall: float | None = None) -> None:
        """Write the sidecar of each folder whose entries changed (errors ignored: the index
        then lives in memory)."""
        wall = time.time() if wall is None else wall
        ripe = [w for w, until in self._racy_until.items() if until <= wall]
        for where in ripe:
            del self._racy_until[where]
        todo = set(self._dirty) | set(ripe)
        if not todo:
            return
        by_folder: dict[tuple[int, str], dict[str, sidecar.Row]] = {w: {} for w in todo}
        racy: dict[tuple[int, str], float] = {}
        for path, entry in self.entries.items():
            folder, _, name = path.rpartition("/")
            where = (id(entry.fs), folder)
            rows = by_folder.get(where)
            if rows is None or path in self.pinned:
                continue
            mtime = _stamp_time(entry.key)
            if mtime is not None and mtime > wall - sidecar.RACY_SECONDS:
                racy[where] = max(racy.get(where, 0.0), mtime + sidecar.RACY_SECONDS)
                continue
            row = entry.row()
            if row is not None:
                rows[name] = row
        for where, rows in by_folder.items():
            self._dirty.pop(where, None)
            fs = self._folder_fs.get(where)
            if fs is None:
                continue
            for name, row in (self._sidecars.get(where) or {}).items():
                # files of this folder that other patterns select
                if name not in rows and not self.matches(f"{where[1]}/{name}"):
                    rows[name] = row
            sidecar.write(fs, where[1], self.fmt.name, rows)
            self._sidecars[where] = rows
            if where in racy:
                self._racy_until[where] = racy[where]

    # -- one file ---------------------------------------------------------------------------

    def _warn(self, entry: IndexEntry) -> None:
        if (entry.path, entry.key) not in self._warned:
            self._warned.add((entry.path, entry.key))
            warnings.warn(
                f"left a corrupt file out of the run listing: {entry.error}",
                CorruptFileWarning,
                stacklevel=6,
            )

    def update(self, fs: Any, path: str, info: dict | None = None) -> IndexEntry | None:
        """Index one file now unless its key is unchanged; None if it does not exist."""
        try:
            key = key_of(fs, path, info)
            size = (
                key[0] if isinstance(key[0], int) else int((info or fs.info(path)).get("size") or 0)
            )
        except FileNotFoundError:
            self.forget(path)
            return None
        if (
            path not in self.entries
            and path not in self.pinned
            and self._from_sidecar(fs, path, key)
        ):
            self._changed()
            return self.entries[path]
        return self._update(fs, path, key, size)

    def _update(self, fs: Any, path: str, key: tuple, size: int) -> IndexEntry | None:
        entry = self.entries.get(path)
        if entry is not None and entry.key == key:
            return entry
        previous = entry
        entry = IndexEntry(path, fs, key)
        try:
            first = self.fmt.first(fs, path, size)
            if first.name == "start" and isinstance(first.doc.get("uid"), str):
                entry.uid = first.doc["uid"]
            last, entry.resume = self._last_pair(fs, path, size, previous)
            entry.record = record_from_ends(path, first, last)
        except CorruptFile as err:
            entry.error = err
            self._warn(entry)
        except FileNotFoundError:  # removed between listing and reading
            self.forget(path)
            return None
        self.entries[path] = entry
        self._touch(fs, path)
        self._changed()
        return entry

    def _last_pair(
        self, fs: Any, path: str, size: int, previous: IndexEntry | None
    ) -> tuple[Located, Any]:
        resume = None
        if previous is not None and previous.resume and previous.key[0] is not None:
            if size > previous.key[0]:  # grown: skip on from the last object seen
                resume = previous.resume
        if resume is not None:
            try:
                return self.fmt.last(fs, path, size, resume)
            except CorruptFile:
                pass  # rewritten rather than appended to: read from the beginning
        return self.fmt.last(fs, path, size, None)

    # -- lookups ------------------------------------------------------------------------

    def forget(self, path: str) -> None:
        entry = self.entries.pop(path, None)
        if entry is not None:
            self._touch(entry.fs, path)
            self._changed()

    def put(self, entry: IndexEntry, pinned: bool = False) -> None:
        """Set an entry this process knows without reading the file (one it wrote); a pinned
        entry is kept as is by :meth:`refresh` (a run being written)."""
        self.entries[entry.path] = entry
        self._changed()
        if not pinned:
            self._touch(entry.fs, entry.path)
        if pinned:
            self.pinned.add(entry.path)
        else:
            self.pinned.discard(entry.path)

    def by_uid(self) -> dict[str, IndexEntry]:
        """Entries by run uid: readable runs and corrupt files whose start could be read.

        When two files hold the same run, the first path wins and a warning names both.
        """
        if self._uids is not None:
            return self._uids
        out: dict[str, IndexEntry] = {}
        for entry in self.entries.values():
            if entry.uid is not None:
                if entry.uid in out:
                    break  # two files hold one run: rank them below
                out[entry.uid] = entry
        else:
            self._uids = out
            return out
        out = {}
        # readable files first, then files named after their run, then by path
        ranked = sorted(
            self.entries.values(),
            key=lambda e: (
                not e.readable,
                not e.path.endswith(f"/{e.uid}{self.fmt.extension}"),
                e.path,
            ),
        )
        for entry in ranked:
            if entry.uid is None:
                continue
            other = out.get(entry.uid)
            if other is None:
                out[entry.uid] = entry
            elif (entry.path, entry.key, "dup") not in self._warned:
                self._warned.add((entry.path, entry.key, "dup"))
                warnings.warn(
                    f"{entry.path} holds run {entry.uid!r} which {other.path} holds "
                    f"too; listing {other.path} only",
                    CorruptFileWarning,
                    stacklevel=4,
                )
        self._uids = out
        return out
