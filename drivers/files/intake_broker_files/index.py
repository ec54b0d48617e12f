"""The run index of a set of files: the start and stop document of each, read from its ends.

Opening a catalog reads only the first and last document of each file (never the events in
between), caches them by ``(path, size, mtime or ETag)`` and re-reads a file only when that key
changes. Listing re-globs at most every ``refresh_interval`` seconds.
"""

from __future__ import annotations

import fnmatch
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from intake_broker.errors import CorruptFile
from intake_broker.store import RunRecord

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


@dataclass
class IndexEntry:
    """What the index knows of one file: its run, or why it cannot be read."""

    path: str
    fs: Any
    key: tuple
    uid: str | None = None
    record: RunRecord | None = None
    error: CorruptFile | None = None
    resume: tuple[int, int] | None = None


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

    def refresh(self, force: bool = False) -> None:
        """Re-glob (at most every ``refresh_interval`` s unless ``force``), index new and
        changed files and forget vanished ones."""
        now = time.monotonic()
        if not force and self._last is not None and now - self._last < self.refresh_interval:
            return
        found: dict[str, tuple[Any, dict]] = {}
        for fs, pattern in self.patterns():
            _forget_listings(fs, glob_base(pattern))
            listing = (
                fs.glob(pattern, detail=True)
                if has_magic(pattern)
                else ({pattern: fs.info(pattern)} if fs.exists(pattern) else {})
            )
            for path, info in listing.items():
                if info.get("type", "file") != "directory":
                    found.setdefault(path, (fs, info))
        for path in list(self.entries):
            if path not in found and path not in self.pinned:
                del self.entries[path]
                self._changed()
        for path, (fs, info) in sorted(found.items()):
            if path not in self.pinned:
                self.update(fs, path, info)
        self._last = time.monotonic()

    def update(self, fs: Any, path: str, info: dict | None = None) -> IndexEntry | None:
        """Index one file now unless its key is unchanged; None if it does not exist."""
        if info is None:
            try:
                info = fs.info(path)
            except FileNotFoundError:
                self.forget(path)
                return None
        key = file_key(info)
        entry = self.entries.get(path)
        if entry is not None and entry.key == key:
            return entry
        previous = entry
        entry = IndexEntry(path, fs, key)
        size = int(info.get("size") or 0)
        try:
            first = self.fmt.first(fs, path, size)
            if first.name == "start" and isinstance(first.doc.get("uid"), str):
                entry.uid = first.doc["uid"]
            last, entry.resume = self._last_pair(fs, path, size, previous)
            entry.record = record_from_ends(path, first, last)
        except CorruptFile as err:
            entry.error = err
            if (path, key) not in self._warned:
                self._warned.add((path, key))
                warnings.warn(
                    f"left a corrupt file out of the run listing: {err}",
                    CorruptFileWarning,
                    stacklevel=5,
                )
        except FileNotFoundError:  # removed between listing and reading
            self.forget(path)
            return None
        self.entries[path] = entry
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
        if self.entries.pop(path, None) is not None:
            self._changed()

    def put(self, entry: IndexEntry, pinned: bool = False) -> None:
        """Set an entry this process knows without reading the file (one it wrote); a pinned
        entry is kept as is by :meth:`refresh` (a run being written)."""
        self.entries[entry.path] = entry
        self._changed()
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
        # readable files first, then files named after their run, then by path
        ranked = sorted(
            self.entries.values(),
            key=lambda e: (
                e.record is None,
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
