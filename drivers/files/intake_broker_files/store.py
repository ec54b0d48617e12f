"""``FilesStore``: runs kept one per file, as suitcase-jsonl or suitcase-msgpack write them."""

from __future__ import annotations

import os
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fsspec.core import url_to_fs

from intake_broker.errors import (
    CorruptFile,
    DescriptorNotFound,
    DocumentConflict,
    InvalidDocument,
    ResourceNotFound,
    RunNotFound,
)
from intake_broker.queries import Query
from intake_broker.store import (
    NEWEST_FIRST,
    DocumentStore,
    RecentMatches,
    RunRecord,
)
from intake_broker.store.documents import doc_label, normalize
from intake_broker.store.memory import DEFAULT_CHUNK_ROWS, RunDocuments, TableReads
from intake_broker.store.validation import safe_uid

from .formats import FORMATS, Located, corrupt, get_format
from .index import FileIndex, IndexEntry, glob_base, has_magic, key_of
from .writer import RunWriter, can_append

if TYPE_CHECKING:
    from intake_broker.store.memory import EventTable

#: The document each kind of page refers to, and the field naming it.
_PARENT = {"event_page": "descriptor", "datum_page": "resource", "stream_datum": "stream_resource"}


#: Events read from a file are packed into pages of at most this many rows.
_EVENTS_PER_PAGE = 1000


def _event_shape(doc: dict) -> tuple | None:
    """What events must share to be packed into one page (descriptor and keys), or None for an
    event that is to be put on its own (anything unusual: the checks then name its line)."""
    try:
        data, stamps, filled = doc["data"], doc["timestamps"], doc.get("filled", {})
        if not (
            isinstance(doc["descriptor"], str)
            and isinstance(doc["uid"], str)
            and isinstance(data, dict)
            and isinstance(stamps, dict)
            and isinstance(filled, dict)
            and "seq_num" in doc
            and "time" in doc
            and "run_start" not in doc
        ):
            return None
        return (doc["descriptor"], tuple(data), tuple(stamps), tuple(filled))
    except (KeyError, TypeError):
        return None


def _page_of(events: list[dict]) -> dict:
    """Events that share a shape (:func:`_event_shape`) as one event page: what
    ``event_model.pack_event_page`` makes of them."""
    first = events[0]
    return {
        "time": [e["time"] for e in events],
        "uid": [e["uid"] for e in events],
        "seq_num": [e["seq_num"] for e in events],
        "descriptor": first["descriptor"],
        "filled": {k: [e["filled"][k] for e in events] for k in first.get("filled", {})},
        "data": {k: [e["data"][k] for e in events] for k in first["data"]},
        "timestamps": {k: [e["timestamps"][k] for e in events] for k in first["timestamps"]},
    }


@contextmanager
def _as_corrupt(path: str, name: str, where: str) -> Iterator[None]:
    """Problems of a document read from a file as :class:`CorruptFile` naming the place."""
    try:
        yield
    except CorruptFile:
        raise
    except (InvalidDocument, DocumentConflict) as err:
        raise corrupt(
            path, where, str(err), "each document after those it refers to, uids unique"
        ) from None
    except KeyError as err:
        raise corrupt(
            path,
            where,
            f"the {name} document lacks the field {err.args[0]!r}",
            "a document following the event-model schema",
        ) from None
    except (TypeError, ValueError, AttributeError) as err:
        raise corrupt(
            path,
            where,
            f"the {name} document is malformed ({type(err).__name__}: {err})",
            "a document following the event-model schema",
        ) from None


def _restore(cls: type[FilesStore], arguments: dict, owners: dict[str, str]) -> FilesStore:
    store = cls.__new__(cls)
    FilesStore.__init__(store, **arguments)
    store._owner.update(owners)
    return store


class FilesStore(TableReads, DocumentStore):
    """Runs stored one per file: ``<start uid>.jsonl`` (suitcase-jsonl) or
    ``<start uid>.msgpack`` (suitcase-msgpack), on any fsspec filesystem.

    Listing reads only the first and last document of each file (cached by path, size and
    mtime or ETag; files are re-globbed at most every ``refresh_interval`` seconds), and keeps
    what it read in a sidecar file per folder (:mod:`intake_broker_files.sidecar`) so that the
    next process opening the folder reads no run file whose key is unchanged. A run's file is
    parsed in full only when its contents are read (line by line, events packed into pages as
    they are read), and kept in a small LRU cache.

    Writing appends each document to ``<directory>/<start uid>.<ext>`` and flushes it, so a
    crashed writer leaves a readable, incomplete run. On filesystems that cannot append (S3 and
    other object stores) the documents of a run being written stay in memory and the object is
    written when the stop document arrives and on :meth:`flush` / :meth:`close`: **an S3 run
    becomes visible to other readers at its stop, or at flush**.

    Parameters
    ----------
    paths : str or list of str
        Files, globs or directories to read, as local paths or fsspec URLs
        (``"/data/*.jsonl"``, ``"s3://bucket/runs/*.msgpack"``, ``"memory://runs"``).
        A path with no wildcard that does not end with ``.jsonl`` / ``.msgpack`` is a
        directory: every file of the format in it.
    format : {"jsonl", "msgpack"}
        The file layout.
    directory : str, optional
        Where new run files are written (default: the directory of the first of ``paths``).
        When given, its run files are read too.
    storage_options : dict, optional
        Passed to fsspec, e.g. for s3fs ``{"key": ..., "secret": ...,
        "client_kwargs": {"endpoint_url": ...}}`` or ``{"endpoint_url": ...}``.
    validate : bool
        Check inserted documents against event-model's schemas (files are not re-validated
        when read; only their structure is checked).
    refresh_interval : float
        Seconds between re-globs when listing runs.
    chunk_rows : int
        Events per dask chunk when a stream is read.
    cache_size : int
        How many parsed runs to keep in memory.
    """

    writable = True

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        format: str = "jsonl",
        directory: str | os.PathLike | None = None,
        storage_options: dict[str, Any] | None = None,
        validate: bool = True,
        refresh_interval: float = 1.0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        cache_size: int = 8,
    ):
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        self.directory = None if directory is None else os.fspath(directory)
        if not self.paths and self.directory is None:
            raise ValueError(
                "FilesStore needs at least one path, glob or directory to read "
                "(or a directory to write to)"
            )
        self.file_format = get_format(format)
        self.storage_options = dict(storage_options or {})
        self.validate = validate
        self.refresh_interval = refresh_interval
        self.chunk_rows = chunk_rows
        self.cache_size = cache_size

        patterns = [url_to_fs(p, **self.storage_options) for p in self.paths]
        ext = self.file_format.extension
        if self.directory is not None:
            self._wfs, wdir = url_to_fs(self.directory, **self.storage_options)
            patterns.append((self._wfs, f"{wdir.rstrip('/')}/*{ext}"))
        else:
            self._wfs, first = patterns[0]
            wdir = glob_base(first)
            if not has_magic(first) and first.endswith(ext):
                wdir = first.rsplit("/", 1)[0] if "/" in first else ""
        self._wdir = wdir.rstrip("/")
        self._lock = threading.RLock()
        self._index = FileIndex(patterns, self.file_format, refresh_interval)
        self._open: dict[str, RunWriter] = {}
        self._cache: OrderedDict[tuple, RunDocuments] = OrderedDict()
        # path -> (file version, data summary) of finished runs: summary.* searches read each
        # file once, not at every search
        self._summaries: dict[str, tuple[tuple, dict]] = {}
        self._writes = 0  # documents put: kept search answers are for one index and count
        self._matches = RecentMatches()
        self._owner: dict[str, str] = {}  # descriptor / resource uid -> run uid

    def _arguments(self) -> dict[str, Any]:
        return {
            "paths": self.paths,
            "format": self.file_format.name,
            "directory": self.directory,
            "storage_options": self.storage_options,
            "validate": self.validate,
            "refresh_interval": self.refresh_interval,
            "chunk_rows": self.chunk_rows,
            "cache_size": self.cache_size,
        }

    def __reduce__(self):
        # By arguments, plus where the descriptors of recently read runs are, so that a dask
        # worker reading a stream goes straight to the run's file.
        with self._lock:
            runs = [w.docs for w in self._open.values()] + list(self._cache.values())
            owners = {
                uid: docs.start["uid"] for docs in runs for uid in (*docs.tables, *docs.resources)
            }
        return (_restore, (type(self), self._arguments(), owners))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.paths!r}, format={self.file_format.name!r})"

    def __enter__(self) -> FilesStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- finding runs ---------------------------------------------------------------------

    def _records(self, refresh: bool = True) -> dict[str, RunRecord]:
        with self._lock:
            if refresh:
                self._index.refresh()
            records = {
                uid: e.record for uid, e in self._index.by_uid().items() if e.record is not None
            }
            records.update({uid: w.docs.record for uid, w in self._open.items()})
        return records

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        with self._lock:
            self._index.refresh()
            version = (self._index.generation, self._writes)
        return self._matches.select(
            version, lambda: self._records(refresh=False).values(), query, sort, skip, limit, self
        )

    def count(self, query: Query | None = None) -> int:
        if query is None:  # no document decoded: the index knows which files hold runs
            with self._lock:
                self._index.refresh()
                uids = {uid for uid, e in self._index.by_uid().items() if e.readable}
                uids.update(self._open)
            return len(uids)
        return len(self.runs(query))

    def _run_path(self, uid: str) -> str:
        name = f"{uid}{self.file_format.extension}"
        return f"{self._wdir}/{name}" if self._wdir else name

    @staticmethod
    def _inside(fs: Any, base: str, path: str) -> bool:
        """Whether ``path`` lies inside the folder ``base`` once resolved (symbolic links
        followed on a local disk, ``..`` removed elsewhere)."""
        if can_append(fs):  # a local disk
            root = os.path.realpath(base or ".")
            target = os.path.realpath(path)
            return target != root and os.path.commonpath([root, target]) == root
        root = posixpath.normpath(base) if base else ""
        target = posixpath.normpath(path)
        if not root or root == ".":
            return not (target.startswith("../") or target == ".." or target.startswith("/"))
        return target.startswith(root.rstrip("/") + "/")

    def _confined_path(self, uid: Any, doc: dict) -> str:
        """The file of a new run: named after its start uid, which must be safe to name a file
        with, and inside the store's folder (refused otherwise, nothing created)."""
        if not safe_uid(uid):
            raise InvalidDocument(
                f"{doc_label('start', doc)}: field 'uid' cannot name a run file "
                f"({str(uid)[:60]!r}); a uid is a non-empty string of printable characters "
                "without '/' or '\\' and not starting with '.'"
            )
        path = self._run_path(uid)
        if not self._inside(self._wfs, self._wdir, path):
            raise InvalidDocument(
                f"{doc_label('start', doc)}: its run file {path} would lie outside the store's "
                f"folder {self._wdir or '.'}; run files are kept inside it"
            )
        return path

    def _candidates(self, uid: str) -> Iterator[tuple[Any, str]]:
        """Files that would hold run ``uid`` if named after it (checked before any glob); none
        for a uid that cannot name a file, and none outside the folders read."""
        if not safe_uid(uid):
            return
        seen = {self._run_path(uid)}
        if self._inside(self._wfs, self._wdir, self._run_path(uid)):
            yield self._wfs, self._run_path(uid)
        for fs, pattern in self._index.patterns():
            base = glob_base(pattern)
            name = f"{uid}{self.file_format.extension}"
            path = f"{base}/{name}" if base else name
            if path not in seen and self._index.matches(path) and self._inside(fs, base, path):
                seen.add(path)
                yield fs, path

    def _find(self, uid: str) -> IndexEntry:
        """The index entry of run ``uid``: known, else its file by name, else after a glob."""
        entry = self._index.by_uid().get(uid)
        if entry is None:
            for fs, path in self._candidates(uid):
                found = self._index.update(fs, path)
                if found is not None and (found.uid == uid or found.uid is None):
                    return found
            self._index.refresh()
            entry = self._index.by_uid().get(uid)
        if entry is None:
            raise RunNotFound(f"no run with uid {uid!r} in {self!r}")
        return entry

    def _precise_error(self, entry: IndexEntry) -> CorruptFile:
        """The error of a corrupt file with a line number (the index read only its ends)."""
        try:
            self._parse(entry.fs, entry.path)
        except CorruptFile as err:
            return err
        except FileNotFoundError:
            pass
        return entry.error  # type: ignore[return-value]

    def run(self, uid: str) -> RunRecord:
        with self._lock:
            if uid in self._open:
                return self._open[uid].docs.record
            entry = self._find(uid)
            if entry.error is not None:
                raise self._precise_error(entry)
            assert entry.record is not None
            return entry.record

    # -- a run's contents -----------------------------------------------------------------

    def _parse(self, fs: Any, path: str) -> RunDocuments:
        """Read a whole run file into a :class:`RunDocuments`, checking its structure.

        Consecutive events of one descriptor (suitcase files hold one ``event`` per line or
        object) are packed into pages of up to :data:`_EVENTS_PER_PAGE` as they are read, so
        that no per-event page is made and the events' dicts are freed page by page.
        """
        docs: RunDocuments | None = None
        batch: list[dict] = []
        batch_uids: set[str] = set()
        batch_where = ""
        batch_shape: tuple | None = None
        for item in self.file_format.parse_file(fs, path):
            if docs is not None and item.name == "event":
                shape = _event_shape(item.doc)
                if shape is not None and item.doc["uid"] in docs.event_uids:
                    shape = None  # seen before: put alone, as a re-insert is checked
                if shape is not None and (
                    shape == batch_shape
                    and item.doc["uid"] not in batch_uids
                    and len(batch) < _EVENTS_PER_PAGE
                ):
                    batch.append(item.doc)
                    batch_uids.add(item.doc["uid"])
                    continue
                if batch:
                    self._put_read(docs, path, "event_page", _page_of(batch), batch_where)
                    batch, batch_uids = [], set()
                if shape is not None:
                    batch, batch_uids = [item.doc], {item.doc["uid"]}
                    batch_where, batch_shape = item.where, shape
                    continue
            elif batch:
                assert docs is not None
                self._put_read(docs, path, "event_page", _page_of(batch), batch_where)
                batch, batch_uids, batch_shape = [], set(), None
            if docs is None:
                kind, doc = self._checked(path, item.name, item.doc, item.where)
                if kind != "start":
                    raise corrupt(
                        path,
                        item.where,
                        f"the first document is a {kind!r} document",
                        "the run's start document first",
                    )
                docs = RunDocuments(doc)
                continue
            self._put_read(docs, path, item.name, item.doc, item.where)
        if batch:
            assert docs is not None
            self._put_read(docs, path, "event_page", _page_of(batch), batch_where)
        assert docs is not None  # parse() raises for an empty file
        return docs

    @staticmethod
    def _checked(path: str, name: str, doc: dict, where: str) -> tuple[str, dict]:
        with _as_corrupt(path, name, where):
            return normalize(name, doc, check=False)

    def _put_read(self, docs: RunDocuments, path: str, name: str, doc: dict, where: str) -> None:
        """Put one document read from a file (or a page of its events) into ``docs``; what is
        wrong is a :class:`CorruptFile` naming ``where``."""
        with _as_corrupt(path, name, where):
            kind, doc = normalize(name, doc, check=False)
            owner = doc.get("run_start") if kind != "start" else doc.get("uid")
            if owner is not None and owner != docs.start["uid"]:
                raise corrupt(
                    path,
                    where,
                    f"{doc_label(kind, doc)} belongs to run {owner!r}",
                    f"documents of run {docs.start['uid']!r} only (one run per file)",
                )
            docs.put(kind, doc)

    def _register(self, docs: RunDocuments) -> None:
        uid = docs.start["uid"]
        for key in (*docs.tables, *docs.resources):
            self._owner[key] = uid

    def _contents(self, uid: str) -> RunDocuments:
        """The documents of run ``uid``: of a run being written, cached, or parsed now."""
        writer = self._open.get(uid)
        if writer is not None:
            return writer.docs
        entry = self._find(uid)
        if entry.error is not None:
            raise self._precise_error(entry)
        cache_key = (entry.path, entry.key)
        docs = self._cache.get(cache_key)
        if docs is None:
            try:
                docs = self._parse(entry.fs, entry.path)
            except FileNotFoundError:
                self._index.forget(entry.path)
                raise RunNotFound(f"run {uid!r} was in {entry.path}, which is gone") from None
            self._cache_put(cache_key, docs)
        else:
            self._cache.move_to_end(cache_key)
        self._register(docs)
        return docs

    def summary(self, run_uid: str) -> dict[str, dict[str, dict]]:
        """Computed from the run's events; kept for each version of a finished run's file."""
        with self._lock:
            entry = None if run_uid in self._open else self._find(run_uid)
            kept = None if entry is None else self._summaries.get(entry.path)
        if kept is None or entry is None or kept[0] != entry.key:
            summary = super().summary(run_uid)
            if entry is None or entry.record is None or entry.record.stop is None:
                return summary
            kept = (entry.key, summary)
            with self._lock:
                self._summaries[entry.path] = kept
        return {
            stream: {field: dict(stats) for field, stats in fields.items()}
            for stream, fields in kept[1].items()
        }

    def _cache_put(self, cache_key: tuple, docs: RunDocuments) -> None:
        for stale in [k for k in self._cache if k[0] == cache_key[0]]:
            del self._cache[stale]
        self._cache[cache_key] = docs
        while len(self._cache) > max(self.cache_size, 1):
            self._cache.popitem(last=False)

    def _search(self, found: Callable[[RunDocuments], bool]) -> RunDocuments | None:
        """The first run (being written, cached, then every file newest first) for which
        ``found`` is true. Reads every file in the worst case: only for lookups by a
        descriptor or resource uid that no recently read run holds."""
        for docs in [w.docs for w in self._open.values()] + list(reversed(self._cache.values())):
            if found(docs):
                return docs
        for record in self.runs():
            try:
                docs = self._contents(record.uid)
            except (CorruptFile, RunNotFound):
                continue
            if found(docs):
                return docs
        return None

    def _holder(self, descriptor_uid: str) -> RunDocuments:
        """The documents of the run holding a descriptor (by the uid map, else searched)."""
        run_uid = self._owner.get(descriptor_uid)
        docs = None
        if run_uid is not None:
            try:
                docs = self._contents(run_uid)
            except RunNotFound:
                docs = None
        if docs is None or descriptor_uid not in docs.tables:
            docs = self._search(lambda d: descriptor_uid in d.tables)
        if docs is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r} in {self!r}")
        return docs

    def _table(self, descriptor_uid: str) -> EventTable:
        return self._holder(descriptor_uid).tables[descriptor_uid]

    def descriptor_run(self, descriptor_uid: str) -> str:
        with self._lock:
            return self._holder(descriptor_uid).start["uid"]

    def resource_run(self, resource_uid: str) -> str:
        with self._lock:
            run_uid = self._owner.get(resource_uid)
            try:
                docs = None if run_uid is None else self._contents(run_uid)
            except RunNotFound:
                docs = None
            if docs is None or resource_uid not in docs.resources:
                docs = self._search(lambda d: resource_uid in d.resources)
            if docs is None:
                raise ResourceNotFound(f"no resource with uid {resource_uid!r} in {self!r}")
            return docs.start["uid"]

    def descriptors(self, run_uid: str) -> list[dict]:
        with self._lock:
            return self._contents(run_uid).descriptors()

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        with self._lock:
            return iter(self._contents(run_uid).replay())

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        with self._lock:
            resources = self._contents(run_uid).resources
        try:
            return resources[resource_uid]
        except KeyError:
            raise ResourceNotFound(f"run {run_uid!r} has no resource {resource_uid!r}") from None

    # -- writing --------------------------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        try:
            data = self.file_format.encode(kind, doc)
        except (TypeError, ValueError, OverflowError) as err:
            raise InvalidDocument(
                f"{doc_label(kind, doc)} cannot be written to a {self.file_format.name} file: {err}"
            ) from None
        with self._lock:
            self._writes += 1
            if kind == "start":
                self._put_start(doc, data)
                return
            writer = self._writer_for(kind, doc)
            try:
                writer.docs.check_open(kind, doc)
                if writer.docs.put(kind, doc):
                    self._register(writer.docs)
                    writer.write(kind, data)
            finally:
                self._settle(writer)

    def _put_start(self, doc: dict, data: bytes) -> None:
        uid = doc["uid"]  # a checked uid (validation.checked)
        path = self._confined_path(uid, doc)
        if uid in self._open:
            self._open[uid].docs.put("start", doc)
            return
        try:
            stored = self._contents(uid)
        except RunNotFound:
            stored = None
        if stored is not None:
            stored.put("start", doc)  # identical: nothing to do; different: DocumentConflict
            return
        writer = RunWriter(RunDocuments(doc), self._wfs, path, self.file_format)
        writer.create(data)
        self._open[uid] = writer
        self._index.put(
            IndexEntry(writer.path, self._wfs, ("open",), uid, writer.docs.record), pinned=True
        )

    def _writer_for(self, kind: str, doc: dict) -> RunWriter:
        """The writer of the run a document belongs to (reopening a stored run if needed)."""
        if kind in _PARENT:
            field = _PARENT[kind]
            parent = doc.get(field)
            run_uid = self._owner.get(parent) if isinstance(parent, str) else None
            if run_uid is None:
                group = "tables" if field == "descriptor" else "resources"
                docs = self._search(lambda d: parent in getattr(d, group))
                if docs is None:
                    raise InvalidDocument(
                        f"{doc_label(kind, doc)} refers to {field} {parent!r}, which no run in "
                        f"this store holds; insert the {field} (and its run's start) first"
                    )
                run_uid = docs.start["uid"]
        else:
            run_uid = doc.get("run_start")
        if run_uid in self._open:
            return self._open[run_uid]
        try:
            docs = self._contents(run_uid) if isinstance(run_uid, str) else None
        except RunNotFound:
            docs = None
        if docs is None or not isinstance(run_uid, str):
            raise InvalidDocument(
                f"{doc_label(kind, doc)} refers to run_start {run_uid!r}, which this store does "
                "not hold; insert the run's start document first"
            )
        entry = self._find(run_uid)
        self._cache.pop((entry.path, entry.key), None)
        writer = RunWriter(docs, entry.fs, entry.path, self.file_format, key=entry.key)
        self._open[run_uid] = writer
        self._index.put(
            IndexEntry(entry.path, entry.fs, entry.key, run_uid, docs.record), pinned=True
        )
        return writer

    def _settle(self, writer: RunWriter, force: bool = False) -> None:
        """Hand a run whose file is complete (or, with ``force``, any run) back to the index
        and the read cache."""
        if not (force or writer.settled):
            return
        writer.close()
        del self._open[writer.uid]
        key = writer.key
        if writer.written or key is None:
            try:
                key = key_of(writer.fs, writer.path)
            except FileNotFoundError:  # never written (no flush on a non-appendable fs)
                self._index.forget(writer.path)
                return
        self._index.put(IndexEntry(writer.path, writer.fs, key, writer.uid, writer.docs.record))
        self._cache_put((writer.path, key), writer.docs)

    def flush(self) -> None:
        """Write what is held in memory: runs being written become visible to other readers
        (on filesystems that cannot append, this rewrites each open run's file)."""
        with self._lock:
            for writer in list(self._open.values()):
                writer.flush()

    def close(self) -> None:
        """Flush and close every run being written (a later document reopens its run)."""
        with self._lock:
            for writer in list(self._open.values()):
                self._settle(writer, force=True)


class _OneFormatStore(FilesStore):
    _format: str

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], **kwargs: Any):
        fmt = kwargs.pop("format", self._format)
        if fmt != self._format:
            raise ValueError(
                f"{type(self).__name__} reads {self._format!r} files, not {fmt!r}; "
                "use FilesStore(paths, format=...) for another format"
            )
        super().__init__(paths, format=fmt, **kwargs)

    @classmethod
    def in_folder(cls, folder: str | os.PathLike, **kwargs: Any) -> _OneFormatStore:
        """A store keeping its run files in ``folder`` (read and written there)."""
        folder = os.fspath(folder)
        return cls([f"{folder.rstrip('/')}/*.{cls._format}"], directory=folder, **kwargs)

    @classmethod
    def parse_documents(cls, data: bytes, label: str) -> Iterator[Located]:
        """The ``[name, doc]`` pairs of one file of this format, each with where it stands
        (what ``intake-broker ingest`` reads)."""
        return FORMATS[cls._format].parse(data, label)


class JSONLStore(_OneFormatStore):
    """A :class:`FilesStore` of suitcase-jsonl files (``<uid>.jsonl``); store ``jsonl`` of the
    ``intake_broker.stores`` entry points."""

    _format = "jsonl"


class MsgpackStore(_OneFormatStore):
    """A :class:`FilesStore` of suitcase-msgpack files (``<uid>.msgpack``); store ``msgpack``
    of the ``intake_broker.stores`` entry points."""

    _format = "msgpack"
