"""``NativeStore``: a SQL run index (SQLite or PostgreSQL) with event columns in zarr.

See the package README for the on-disk layout. In short::

    index (SQL)                         data (a folder or an fsspec URL such as s3://...)
      runs, descriptors, event_chunks,    <run uid>/<descriptor uid>/   one zarr group per
      event_segments, documents, datums       time, seq_num, uid,       descriptor: an array
                                              <key>, timestamps_<key>   per field, chunked
                                                                        along time
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from intake_broker.errors import DescriptorNotFound, ResourceNotFound, RunNotFound
from intake_broker.queries import (
    Query,
)
from intake_broker.store import (
    NEWEST_FIRST,
    Candidates,
    Chunk,
    DocumentStore,
    EventColumns,
    RunRecord,
    plan_count,
    plan_runs,
)

from . import docs as jsondocs
from . import reading, recovery, schema
from .annotation_journal import AnnotationJournal
from .annotations import AnnotationIndex, SQLAnnotations
from .columns import ColumnStore, array_specs
from .errors import CorruptIndex, ReadOnlyFolder
from .ingest import Ingester, write_summaries
from .journal import Journal
from .layout import Layout
from .packed import DEFAULT_PACK_BYTES
from .reading import DescriptorInfo
from .schema import (
    descriptors,
    documents,
    event_chunks,
    event_segments,
    runs,
    shown,
    write_transaction,
)
from .sqlquery import Cond, order_by, translate
from .wal import EventLog
from .writer import ChunkRow, group_attrs

if TYPE_CHECKING:
    from intake_broker.assets import RunAssets

#: Events per zarr chunk (at most; fewer when a row is wide, see ``chunk_bytes``).
DEFAULT_CHUNK_ROWS = 100_000
#: Bytes per chunk of the widest array of a descriptor (images get fewer rows per chunk).
DEFAULT_CHUNK_BYTES = 8 * 2**20
#: Seconds after which buffered live events are written even if no chunk is full.
DEFAULT_FLUSH_INTERVAL = 5.0
_STREAM_BATCH = 500
#: The parts of a run record the SQL index answers (descriptors.* queries are evaluated).
_INDEXED = frozenset({"start", "stop", "summary", "annotations"})


class _BadRow(ValueError):
    """A row of the index whose document text is not a JSON object."""


def _record(start: str, stop: str | None) -> RunRecord:
    try:
        start_doc = json.loads(start)
        stop_doc = None if stop is None else json.loads(stop)
    except (ValueError, TypeError) as err:
        raise _BadRow(str(err)) from None
    if not isinstance(start_doc, dict) or not isinstance(stop_doc, dict | None):
        raise _BadRow("not a JSON object")
    return RunRecord(start_doc, stop_doc)


def _records(rows: Iterable[Sequence[Any]], engine: sa.Engine, where: str) -> Iterator[RunRecord]:
    """Run records of ``(start_doc, stop_doc, ...)`` rows; a row whose documents cannot be
    read is skipped with a warning naming the index and the run (the rest still lists)."""
    for row in rows:
        try:
            yield _record(row[0], row[1])
        except _BadRow as err:
            warnings.warn(_bad_row_message(where, row[0], err, engine), BadRowWarning, stacklevel=3)


def _bad_row_message(where: str, start: Any, err: Exception, engine: sa.Engine) -> str:
    uid = None
    try:
        with engine.connect() as conn:
            uid = conn.execute(
                sa.select(runs.c.uid).where(runs.c.start_doc == start).limit(1)
            ).scalar()
    except sa.exc.SQLAlchemyError:
        pass
    which = f"the run {uid!r}" if uid else "a run"
    return (
        f"the run index {where} holds {which} whose start or stop document is not JSON "
        f"({err}); it is skipped. Rebuild the index from the data folder "
        "(intake-broker reindex) to restore it"
    )


def _flagged(
    rows: Iterable[Sequence[Any]], engine: sa.Engine, index: Any
) -> Generator[tuple[RunRecord, bool], None, None]:
    """``(record, sure)`` of ``(start_doc, stop_doc, sure)`` rows; a row whose documents
    cannot be read is skipped with a warning, as :func:`_records` does."""
    for row in rows:
        try:
            record = _record(row[0], row[1])
        except _BadRow as err:
            message = _bad_row_message(shown(index), row[0], err, engine)
            warnings.warn(message, BadRowWarning, stacklevel=4)
            continue
        yield record, bool(row[2])


class _Cursor:
    """Flagged rows of one SQL statement read in batches from an open cursor: what a planner
    reads up to its page's end. It owns the connection it reads from; closing it (the planner
    does, and so does the end of the rows) releases both."""

    def __init__(self, conn: sa.Connection, stmt: Any, engine: sa.Engine, index: Any):
        self._conn = conn  # now this cursor's: its close() closes it
        self._result = conn.execution_options(yield_per=_STREAM_BATCH).execute(stmt)
        self._rows: Generator[tuple[RunRecord, bool], None, None] = _flagged(
            self._result, engine, index
        )

    def __iter__(self) -> Iterator[tuple[RunRecord, bool]]:
        return self

    def __next__(self) -> tuple[RunRecord, bool]:
        try:
            return next(self._rows)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the cursor and the connection (again: nothing)."""
        self._rows.close()
        self._result.close()
        self._conn.close()


class _ReadOnlyIngest:
    """What a read-only store writes with: every write refused before anything is written."""

    def __init__(self, reason: str):
        self.reason = reason

    def put(self, kind: str, doc: dict) -> Any:
        raise ReadOnlyFolder(schema.read_only_message(f"store a {kind} document", self.reason))

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to close."""

    def replay(self) -> int:
        return 0


class BadRowWarning(UserWarning):
    """A row of the run index could not be read and was skipped."""


class NativeStore(SQLAnnotations, DocumentStore):
    """Runs in a SQL index (SQLite by default, PostgreSQL by URL) with event columns in zarr.

    Parameters
    ----------
    index : str
        The run index: ``"sqlite:///path/to/index.sqlite"`` (created if missing; WAL mode) or
        ``"postgresql://user:password@host:port/database"``.
    data : str, optional
        Where the zarr columns live: a local folder or an fsspec URL (``"s3://bucket/runs"``).
        Default: the one the index recorded when it was created, else for a SQLite index a
        folder beside it, ``<index file name>-data``. A new index records it.
    storage_options : dict, optional
        fsspec options for ``data`` (s3fs: ``key``, ``secret``, ``client_kwargs``).
    chunk_rows, chunk_bytes : int
        Events per zarr chunk: ``chunk_rows``, or fewer so that a chunk of the widest array
        holds at most ``chunk_bytes``.
    flush_interval : float or None
        Seconds after which a live run's buffered events are written although no chunk is
        full (None: only whole chunks, and everything at stop / :meth:`flush`). This is about
        when other processes see them: they are durable from the moment :meth:`insert`
        returns, whatever this is (see ``durability``).
    validate : bool
        Check inserted documents against event-model's schemas.
    durability : {"process", "fsync"}
        When :meth:`insert` returns, the document is stored for good: events not yet in zarr
        are in this store's write-ahead log, every other document is committed to the index
        and appended to its run's journal in the data folder. ``"process"`` (the default):
        handed to the kernel, so it survives ``kill -9`` (or any crash) of the writing
        process; ``"fsync"``: also flushed to disk before ``insert`` returns (log, journals,
        and SQLite ``synchronous=FULL``), so it survives a power loss, at the cost of a disk
        flush per insert (shared by concurrent inserts).
    pack_bytes : int
        When a run stops, each stream of it that has had nothing written yet and whose events
        take at most this many bytes (default 1 MiB) is written as one file of all its
        columns instead of a zarr group of an array per column (a small run then takes a
        millisecond or two, not the tens a zarr group costs; see :mod:`.packed`). 0: always
        zarr groups. :meth:`zarr_url` writes a packed stream's zarr group when asked.
    wal : str, optional
        The local folder of the write-ahead logs: ``<data>/_wal`` for a local data folder;
        beside a SQLite index (``<index>-wal``) for remote data; else a folder in the user's
        state directory. Logs of writers that died are replayed when a store is opened.
    read_only : bool, optional
        Open an existing index only to list, search and read: every write raises
        :class:`~.errors.ReadOnlyFolder` ("this data folder is read-only: ...; copy it or ask its
        owner") and writes nothing; no write-ahead log is replayed. By default a SQLite index
        whose file or folder this user cannot write (a shared copy) is opened so, see
        :func:`.schema.create_engine`.

    Notes
    -----
    One process writes a run at a time (many may write different runs); any number of
    processes read. A run being written is readable up to its last flushed chunk (other
    processes) or every inserted event (this store) and reported incomplete until its stop
    document arrives.

    Raises
    ------
    IndexMissing
        When the index is new (a SQLite file that is not there, an empty database) but the
        data folder holds runs: the index was lost; rebuild it with :func:`reindex`.
    CorruptIndex
        When the SQLite index file is damaged (naming it).
    """

    writable: ClassVar[bool] = True

    def __init__(
        self,
        index: str,
        data: str | os.PathLike | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
        validate: bool = True,
        durability: str = "process",
        wal: str | os.PathLike | None = None,
        pack_bytes: int = DEFAULT_PACK_BYTES,
        read_only: bool | None = None,
        _rebuilding: bool = False,
    ):
        self.index = str(index)
        self.storage_options = dict(storage_options or {})
        self.chunk_rows = int(chunk_rows)
        self.chunk_bytes = int(chunk_bytes)
        self.flush_interval = flush_interval
        self.validate = validate
        self.durability = durability
        self.pack_bytes = int(pack_bytes)
        reason = schema.sqlite_read_only_reason(self.index)
        if read_only and reason is None:
            reason = "it was opened with read_only=True"
        #: why this store is read-only (None: it is writable)
        self.read_only: str | None = None if read_only is False or _rebuilding else reason
        if self.read_only is not None:
            self._open_read_only(data)
            return
        if not _rebuilding:
            recovery.refuse_lost_index(self.index, data, self.storage_options)
        self.engine = schema.create_engine(self.index, fsync=durability == "fsync")
        if not _rebuilding:
            recovery.refuse_lost_index(self.index, data, self.storage_options, self.engine)
        schema.ensure_schema(self.engine, shown(self.index))
        self.data = self._resolve_data(data)
        self.columns = ColumnStore(self.data, self.storage_options)
        self.columns.check_writable()
        self.wal = recovery.wal_folder(self.index, self.data, self.columns.local, wal)
        self._ingest = Ingester(
            self.engine,
            self.columns,
            chunk_rows=self.chunk_rows,
            chunk_bytes=self.chunk_bytes,
            flush_interval=flush_interval,
            log=EventLog(self.wal, durability),
            journal=Journal(self.columns, fsync=durability == "fsync"),
            pack_bytes=self.pack_bytes,
        )
        self._annotation_journal = AnnotationJournal(self.columns, fsync=durability == "fsync")
        self._infos: dict[str, DescriptorInfo] = {}
        #: events recovered from the logs of writers that died, when this store was opened
        self.recovered = 0 if _rebuilding else self._ingest.replay()

    def _open_read_only(self, data: str | os.PathLike | None) -> None:
        """List, search and read only: no schema change, no log replay, no folder made."""
        self.engine = schema.create_engine(self.index, read_only=self.read_only)
        schema.ensure_schema(self.engine, shown(self.index))
        self.data = self._resolve_data(data)
        self.columns = ColumnStore(self.data, self.storage_options)
        self.wal = ""
        self._ingest = _ReadOnlyIngest(self.read_only or "")  # type: ignore[assignment]
        self._infos = {}
        self.recovered = 0

    @classmethod
    def annotation_index(cls, index: str) -> AnnotationIndex:
        """An index keeping only annotations (of runs held elsewhere): what
        ``annotations: sqlite:///~/notes.db`` attaches to a read-only catalog."""
        return AnnotationIndex(index)

    def _journal_change(self, entry: dict) -> None:
        """Each annotation change is also kept in the data folder (``_annotations/``), so
        that ``reindex`` restores it (see :mod:`.annotation_journal`)."""
        self._annotation_journal.write(entry)

    def _annotated_run(self, run_uid: str) -> None:
        """RunNotFound unless this index holds ``run_uid``."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(runs.c.uid).where(runs.c.uid == run_uid)).first()
        if found is None:
            raise RunNotFound(f"no run with uid {run_uid!r} in this store")

    @classmethod
    def in_folder(cls, folder: str | os.PathLike, **kwargs: Any) -> NativeStore:
        """A store kept in one local folder: ``<folder>/index.sqlite`` and ``<folder>/data``."""
        folder = os.path.abspath(os.fspath(folder))
        return cls(f"sqlite:///{folder}/index.sqlite", f"{folder}/data", **kwargs)

    def _index_folder(self) -> str | None:
        url = sa.make_url(self.index)
        path = schema.sqlite_path(url) if url.get_backend_name() == "sqlite" else None
        return None if path is None else os.path.dirname(os.path.abspath(path))

    def _resolve_data(self, data: str | os.PathLike | None) -> str:
        folder = self._index_folder()
        recorded = schema.get_setting(self.engine, "data_url")
        if recorded is not None and recorded.startswith("./") and folder is not None:
            recorded = os.path.join(folder, recorded[2:])
        if data is None:
            data = recorded
        if data is None:
            url = sa.make_url(self.index)
            path = schema.sqlite_path(url) if url.get_backend_name() == "sqlite" else None
            if path is None:
                raise ValueError(
                    f"the run index {shown(self.index)} records no data URL; give "
                    "data= (a folder or an fsspec URL such as s3://bucket/runs) "
                    "for the zarr columns"
                )
            data = os.path.splitext(os.path.abspath(path))[0] + "-data"
        data = os.fspath(data)
        if "://" not in data:
            data = os.path.abspath(data)
        if recorded is None:
            record = data
            if (
                folder is not None
                and "://" not in data
                and (os.path.commonpath([folder, data]) == folder)
            ):
                record = "./" + os.path.relpath(data, folder)
            schema.set_setting(self.engine, "data_url", record)
        return data

    def __repr__(self) -> str:
        return f"NativeStore({shown(self.index)!r}, {self.data!r})"

    def __getstate__(self) -> dict:
        return {
            "index": self.index,
            "data": self.data,
            "storage_options": self.storage_options,
            "chunk_rows": self.chunk_rows,
            "chunk_bytes": self.chunk_bytes,
            "flush_interval": self.flush_interval,
            "validate": self.validate,
            "durability": self.durability,
            "wal": self.wal,
            "pack_bytes": self.pack_bytes,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(state.pop("index"), state.pop("data"), **state)  # type: ignore[misc]

    def __enter__(self) -> NativeStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        summarized = self._ingest.put(kind, doc)
        if kind == "stop" and not summarized:  # the run is whole: its summaries are searched
            self._index_summary(doc["run_start"])

    # -- data summaries -------------------------------------------------------------------

    def descriptor_run(self, descriptor_uid: str) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(descriptors.c.run_uid).where(descriptors.c.uid == descriptor_uid)
            ).first()
        if row is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r} in this store")
        return row[0]

    def resource_run(self, resource_uid: str) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(documents.c.run_uid).where(
                    documents.c.space == "resource", documents.c.uid == resource_uid
                )
            ).first()
        if row is None:
            raise ResourceNotFound(f"no resource with uid {resource_uid!r} in this store")
        return row[0]

    def _stored_summary(self, run_uid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(runs.c.summary_q, runs.c.summary_doc).where(runs.c.uid == run_uid)
            ).first()
        if row is None:
            raise RunNotFound(f"no run with uid {run_uid!r} in this store")
        return row[0] if row[1] is None else json.loads(row[1])

    def _write_summary(self, run_uid: str, summary: dict) -> None:
        self.index_summaries({run_uid: summary})

    def index_summaries(self, summaries: Mapping[str, dict]) -> None:
        """Keep the data summaries ``{stream: {field: {stat: number}}}`` of many runs, keyed by
        run uid, in one transaction (what a stop document does for its run), replacing any
        summary they had. Queries on ``summary.*`` answer from these."""
        uids = list(summaries)
        with write_transaction(self.engine) as conn:
            for start in range(0, len(uids), 500):
                some = uids[start : start + 500]
                held = set(
                    conn.execute(sa.select(runs.c.uid).where(runs.c.uid.in_(some))).scalars()
                )
                missing = [uid for uid in some if uid not in held]
                if missing:
                    raise RunNotFound(
                        f"no run with uid {missing[0]!r} in this store; no summary was changed"
                    )
            write_summaries(conn, summaries)

    def _index_summary(self, run_uid: str) -> None:
        if self._stored_summary(run_uid) is None:
            self._write_summary(run_uid, super().summary(run_uid))

    def summary(self, run_uid: str) -> dict[str, dict[str, dict]]:
        """Indexed at stop (``runs.summary_q``); computed from the flushed columns while a run
        is acquiring."""
        stored = self._stored_summary(run_uid)
        return stored if stored is not None else super().summary(run_uid)

    def set_summary(self, run_uid: str, stream: str, field: str, stats: dict) -> None:
        summary = self.summary(run_uid)
        summary.setdefault(stream, {})[field] = dict(stats)
        self._write_summary(run_uid, summary)

    def flush(self) -> None:
        """Write every buffered event now (partial chunks too), so other readers see them."""
        self._ingest.flush()

    def close(self) -> None:
        """Flush buffered events, remove this store's (now empty) event log and release
        database connections."""
        self._ingest.close()
        self.engine.dispose()

    def bulk_insert_runs(self, records: Iterable[RunRecord], *, batch: int = 10_000) -> int:
        """Add runs to the index only (start and stop documents, no events), many rows per
        statement: the fast way to build a large index. Runs already held are skipped.

        Returns the number of runs added.
        """
        added, rows = 0, []

        def write() -> int:
            uids = [r["uid"] for r in rows]
            with schema.write_transaction(self.engine) as conn:
                held = set(
                    conn.execute(sa.select(runs.c.uid).where(runs.c.uid.in_(uids))).scalars()
                )
                new = [r for r in rows if r["uid"] not in held]
                if new:
                    conn.execute(runs.insert(), new)
            rows.clear()
            return len(new)

        for record in records:
            row = jsondocs.start_columns(record.start)
            exact, query, lossy = jsondocs.encode("start", record.start)
            row.update(
                start_doc=exact,
                start_q=query,
                stop_doc=None,
                stop_q=None,
                stop_time=None,
                exit_status=None,
            )
            row["irregular"] = row["irregular"] or lossy
            if record.stop is not None:
                exact, query, lossy = jsondocs.encode("stop", record.stop)
                row.update(stop_doc=exact, stop_q=query, **jsondocs.stop_columns(record.stop))
                row["irregular"] = row["irregular"] or lossy
            rows.append(row)
            if len(rows) >= batch:
                added += write()
        if rows:
            added += write()
        return added

    # -- which runs -----------------------------------------------------------------------

    def _irregular_rows(self, conn: sa.Connection) -> bool:
        return (
            conn.execute(
                sa.select(runs.c.uid).where(runs.c.irregular == sa.true()).limit(1)
            ).first()
            is not None
        )

    def _condition(self, conn: sa.Connection, query: Query | None) -> tuple[Cond, bool]:
        irregular = self._irregular_rows(conn)
        return translate(query, conn.dialect.name, irregular), irregular

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return plan_runs(self, query, sort, skip, limit)

    def count(self, query: Query | None = None) -> int:
        return plan_count(self, query)

    # -- the QueryIndex ability: what the planner asks the SQL index ------------------------

    def index_documents(self) -> frozenset[str]:
        """Start and stop documents, and data summaries (``descriptors.*`` is evaluated)."""
        return _INDEXED

    def index_runs(
        self,
        query: Query | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int | None,
    ) -> Candidates:
        """One SQL query: the rows its conditions may match, ordered by their columns (paged
        in SQL when the translation is exact), streamed with the SQL's sure/unsure flag."""
        conn, streaming = self.engine.connect(), False
        try:
            cond, irregular = self._condition(conn, query)
            order = order_by(sort, irregular)
            if cond.exact and order is not None:
                page = sa.select(runs.c.start_doc, runs.c.stop_doc).where(cond.yes)
                page = page.order_by(*order).offset(skip)
                if limit is not None:
                    page = page.limit(limit)
                found = _records(conn.execute(page).all(), self.engine, shown(self.index))
                return Candidates(((r, True) for r in found), paged=True)
            sure = sa.true() if cond.exact else sa.func.coalesce(cond.yes, sa.false())
            stmt = sa.select(runs.c.start_doc, runs.c.stop_doc, sure.label("sure"))
            stmt = stmt.where(cond.maybe)
            if order is None:  # a sort key without a column: the planner sorts
                rows = conn.execute(stmt).all()
                return Candidates(_flagged(rows, self.engine, self.index), ordered=False)
            cursor = _Cursor(conn, stmt.order_by(*order), self.engine, self.index)
            streaming = True
            return Candidates(cursor)
        finally:
            if not streaming:  # else the cursor releases it
                conn.close()

    def index_count(self, query: Query | None) -> Candidates:
        """``COUNT`` of the rows the SQL is sure of, and the unsure rows for the evaluator."""
        conn, streaming = self.engine.connect(), False
        try:
            cond, _ = self._condition(conn, query)
            count = sa.select(sa.func.count()).select_from(runs).where(cond.yes)
            total = conn.execute(count).scalar() or 0
            if cond.exact:
                return Candidates((), counted=total)
            unsure = sa.select(runs.c.start_doc, runs.c.stop_doc, sa.false()).where(
                cond.maybe, sa.not_(sa.func.coalesce(cond.yes, sa.false()))
            )
            cursor = _Cursor(conn, unsure, self.engine, self.index)
            streaming = True
            return Candidates(cursor, counted=total)
        finally:
            if not streaming:  # else the cursor releases it
                conn.close()

    def run(self, uid: str) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(runs.c.start_doc, runs.c.stop_doc).where(runs.c.uid == uid)
            ).first()
        if row is None:
            raise RunNotFound(f"no run with uid {uid!r} in this store")
        try:
            return _record(*row)
        except _BadRow as err:
            raise CorruptIndex(
                _bad_row_message(shown(self.index), row[0], err, self.engine)
            ) from None

    # -- what is in a run -----------------------------------------------------------------

    def descriptors(self, run_uid: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(descriptors.c.doc)
                    .where(descriptors.c.run_uid == run_uid)
                    .order_by(descriptors.c.time, descriptors.c.ord)
                )
                .scalars()
                .all()
            )
            if (
                not rows
                and conn.execute(sa.select(runs.c.uid).where(runs.c.uid == run_uid)).first() is None
            ):
                raise RunNotFound(f"no run with uid {run_uid!r} in this store")
        found = []
        for text in rows:
            try:
                found.append(json.loads(text))
            except ValueError as err:
                warnings.warn(
                    f"the run index {shown(self.index)} holds a descriptor of run {run_uid!r} "
                    f"that is not JSON ({err}); it is skipped. Rebuild the index from the data "
                    "folder (intake-broker reindex) to restore it",
                    BadRowWarning,
                    stacklevel=2,
                )
        return found

    def _info(self, descriptor_uid: str, chunks: list[ChunkRow] | None = None) -> DescriptorInfo:
        """What a reader needs about a descriptor. Kept once the descriptor has rows (its
        layout is fixed by its first chunk); ``chunks``: its chunk rows, read now -- a kept
        packed layout that does not hold them all (the stream was turned into a zarr group
        since) is read again."""
        info = self._infos.get(descriptor_uid)
        if info is not None and info.layout.packed and chunks is not None:
            if sum(c.rows for c in chunks) != info.layout.chunk_rows:
                info = None
        if info is None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(
                        descriptors.c.run_uid,
                        descriptors.c.path,
                        descriptors.c.layout,
                        sa.exists()
                        .where(event_chunks.c.descriptor_uid == descriptor_uid)
                        .label("written"),
                    ).where(descriptors.c.uid == descriptor_uid)
                ).first()
            if row is None:
                raise KeyError(f"no descriptor with uid {descriptor_uid!r} in this store")
            info = DescriptorInfo(
                descriptor_uid, row.run_uid, row.path, Layout.from_json(row.layout)
            )
            if row.written:  # before its first rows, a stream's layout may still change
                self._infos[descriptor_uid] = info
            else:
                self._infos.pop(descriptor_uid, None)
        return info

    def _chunk_rows(self, conn: sa.Connection, descriptor_uid: str) -> list[ChunkRow]:
        rows = conn.execute(
            sa.select(event_chunks)
            .where(event_chunks.c.descriptor_uid == descriptor_uid)
            .order_by(event_chunks.c.idx)
        )
        names = ChunkRow.__dataclass_fields__
        return [ChunkRow(**{k: r[k] for k in names}) for r in rows.mappings()]

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        self._info(descriptor_uid)  # KeyError for a descriptor not held
        with self.engine.connect() as conn:
            chunks = self._chunk_rows(conn, descriptor_uid)
        return reading.chunk_list(self._info(descriptor_uid, chunks), chunks)

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        self._info(descriptor_uid)  # KeyError for a descriptor not held
        with self.engine.connect() as conn:
            chunks = self._chunk_rows(conn, descriptor_uid)
        info = self._info(descriptor_uid, chunks)
        return reading.read_events(self.columns, info, chunks, fields, seq_range, uids)

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(runs.c.start_doc, runs.c.stop_doc).where(runs.c.uid == run_uid)
            ).first()
            if row is None:
                raise RunNotFound(f"no run with uid {run_uid!r} in this store")
            descs = conn.execute(
                sa.select(descriptors).where(descriptors.c.run_uid == run_uid)
            ).all()
            others = conn.execute(
                sa.select(documents.c.ord, documents.c.kind, documents.c.doc).where(
                    documents.c.run_uid == run_uid
                )
            ).all()
            segments = conn.execute(
                sa.select(event_segments).where(
                    event_segments.c.descriptor_uid.in_([d.uid for d in descs])
                )
            ).all()
        infos = {
            d.uid: DescriptorInfo(d.uid, run_uid, d.path, Layout.from_json(d.layout)) for d in descs
        }
        items: list[tuple[int, int, str, Any]] = [(d.ord, 0, "descriptor", d.doc) for d in descs]
        items += [(o.ord, 0, o.kind, o.doc) for o in others]
        for s in segments:
            rows = infos[s.descriptor_uid].layout.chunk_rows
            start = s.row_start
            while start < s.row_stop:
                stop = min(s.row_stop, (start // rows + 1) * rows)
                items.append((s.ord, start, "event_page", (s.descriptor_uid, start, stop)))
                start = stop
        items.sort(key=lambda item: (item[0], item[1]))
        start_doc, stop_doc = row
        yield "start", json.loads(start_doc)
        for _, _, kind, payload in items:
            if kind == "event_page":
                uid, start, stop = payload
                info = infos[uid]
                cols = reading.raw_rows(self.columns, info, start, stop)
                yield kind, reading.build_page(info.layout, uid, cols)
            else:
                yield kind, json.loads(payload)
        if stop_doc is not None:
            yield "stop", json.loads(stop_doc)

    # -- assets ---------------------------------------------------------------------------

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        with self.engine.connect() as conn:
            doc = conn.execute(
                sa.select(documents.c.doc).where(
                    documents.c.space == "resource",
                    documents.c.uid == resource_uid,
                    documents.c.run_uid == run_uid,
                )
            ).scalar()
        if doc is None:
            raise KeyError(f"run {run_uid!r} has no resource {resource_uid!r}")
        return json.loads(doc)

    def _asset_documents(self, run_uid: str, kinds: Sequence[str]) -> list[tuple[str, Any]]:
        """``(kind, doc)`` of the run's stored documents of these kinds, in insertion order,
        each JSON text decoded (all at once: one parse for the lot)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(documents.c.kind, documents.c.doc)
                .where(documents.c.run_uid == run_uid, documents.c.kind.in_(list(kinds)))
                .order_by(documents.c.ord)
            ).all()
            if (
                not rows
                and conn.execute(sa.select(runs.c.uid).where(runs.c.uid == run_uid)).first() is None
            ):
                raise RunNotFound(f"no run with uid {run_uid!r} in this store")
        if not rows:
            return []
        # One json.loads of the documents joined into a JSON array: many small documents
        # (a datum page per datum) decode about twice as fast as with one call each.
        docs = json.loads("[" + ",".join(r.doc for r in rows) + "]")
        return [(r.kind, doc) for r, doc in zip(rows, docs, strict=True)]

    def run_assets(self, run_uid: str) -> RunAssets:
        """The run's resources, datums, stream_resources and stream_datums, straight from the
        ``documents`` table (no event is read or decoded): what the core default gathers from
        :meth:`documents`, in the same order."""
        from intake_broker.assets import RunAssets

        return RunAssets.from_documents(
            self._asset_documents(
                run_uid, ("resource", "stream_resource", "stream_datum", "datum_page")
            )
        )

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        return iter([doc for _, doc in self._asset_documents(run_uid, ("datum_page",))])

    # -- where the zarr groups are --------------------------------------------------------

    def zarr_url(self, descriptor_uid: str) -> str:
        """The URL of a descriptor's zarr group (``xarray.open_zarr(store.zarr_url(uid))``).

        A packed stream (a small stream of a stopped run, kept as one file) gets its zarr
        group written first, once: a copy for other readers; this store keeps reading the
        packed file."""
        info = self._info(descriptor_uid)
        if info.layout.packed:
            self._write_zarr_copy(info)
        return self.columns.url_of(info.path)

    def _write_zarr_copy(self, info: DescriptorInfo) -> None:
        layout = Layout(info.layout.chunk_rows, info.layout.fields, compress_strings=False)
        last = list(array_specs(layout))[-1].name
        if self.columns.fs.exists(self.columns.path(info.path, last, "c", "0")):
            return  # written before (arrays are written in order: the last one is whole)
        if self.read_only is not None:
            raise ReadOnlyFolder(
                schema.read_only_message(
                    f"write the zarr group of the packed stream {info.uid!r}", self.read_only
                )
            )
        with self.engine.connect() as conn:
            doc = conn.execute(
                sa.select(descriptors.c.doc).where(descriptors.c.uid == info.uid)
            ).scalar_one()
        descriptor = json.loads(doc)
        rows = info.layout.chunk_rows
        cols = self.columns.packed_columns(info.path, info.layout, rows, info.where("events"))
        attrs = group_attrs(info.run_uid, info.uid, str(descriptor.get("name", "primary")), rows)
        self.columns.write(info.path, layout, descriptor, attrs, 0, cols)
        self.columns.forget(info.path)
