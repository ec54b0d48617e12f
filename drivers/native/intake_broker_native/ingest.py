"""Putting documents into the native store: checks first, then one transaction per document.

The integrity rules of the store contract hold for every kind: an identical re-insert does
nothing, a different document with a stored uid raises
:class:`~intake_broker.errors.DocumentConflict`, a document referring to something the store
does not hold raises :class:`~intake_broker.errors.InvalidDocument`, and all of it is decided
before anything is written. Event pages are buffered (see :mod:`.writer`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlalchemy as sa

from intake_broker.errors import BrokerError, InvalidDocument
from intake_broker.store.documents import (
    check_reinsert,
    datum_page_rows,
    doc_label,
    event_page_rows,
)
from intake_broker.store.summary import run_summary

from . import docs as jsondocs
from . import packed as packmod
from . import wal as walmod
from .columns import ColumnStore
from .journal import Journal, line
from .layout import Layout, concat_columns, convert_page, make_layout, slice_columns
from .reading import DescriptorInfo, decode, event_doc, raw_rows, same_columns, take_rows
from .rows import RowPlan
from .schema import (
    datums,
    descriptors,
    documents,
    event_chunks,
    event_segments,
    runs,
    summary_rows,
    summary_values,
)
from .schema import write_transaction as write
from .writer import ROW_CODE, ChunkRow, DescriptorWriter, RunWriter, Written, group_attrs

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_LIVE = weakref.WeakSet()  # ingesters with buffers to flush at exit


def node_name(uid: str) -> str:
    """A uid as a folder name: itself when safe, else a hash of it."""
    if _SAFE.fullmatch(uid):
        return uid
    return "h" + hashlib.sha1(uid.encode()).hexdigest()


@atexit.register
def _flush_at_exit() -> None:
    for ingester in list(_LIVE):
        try:
            ingester.close()  # everything flushed: the event log is removed
        except Exception:  # noqa: BLE001 (best effort at interpreter exit)
            pass


def write_summaries(conn: sa.Connection, summaries: Mapping[str, dict]) -> None:
    """Record the data summaries of runs (keyed by run uid), replacing any they had, inside
    the caller's transaction."""
    uids = list(summaries)
    for start in range(0, len(uids), 500):
        some = uids[start : start + 500]
        conn.execute(summary_values.delete().where(summary_values.c.run_uid.in_(some)))
    updates = []
    for uid, summary in summaries.items():
        exact, query, lossy = jsondocs.encode("summary", summary)
        updates.append({"u": uid, "q": query, "d": exact if lossy else None})
    conn.execute(
        runs.update()
        .where(runs.c.uid == sa.bindparam("u"))
        .values(summary_q=sa.bindparam("q"), summary_doc=sa.bindparam("d")),
        updates,
    )
    rows = [row for uid, summary in summaries.items() for row in summary_rows(uid, summary)]
    if rows:
        conn.execute(summary_values.insert(), rows)


def _descriptor_order(dw: DescriptorWriter) -> tuple[float, int]:
    time = dw.descriptor.get("time")
    return (float(time) if isinstance(time, int | float) else 0.0, dw.ord)


class _AtHand:
    """The parts of the store :func:`run_summary` asks, answered from the rows a stop is
    writing (all of the run's events): ``descriptors`` and ``read_events(uid, fields=)``,
    rows ordered as :meth:`NativeStore.read_events` orders them."""

    def __init__(self, writer: RunWriter, written: dict[str, Written], order: list[str]):
        self.writer, self.written, self.order = writer, written, order

    def descriptors(self, run_uid: str) -> list[dict]:
        return [self.writer.descriptors[uid].descriptor for uid in self.order]

    def read_events(self, descriptor_uid: str, *, fields: list[str]) -> Any:
        from types import SimpleNamespace

        dw = self.writer.descriptors[descriptor_uid]
        done = self.written.get(descriptor_uid)
        if done is None:
            return SimpleNamespace(data={})
        specs = dw.layout.fields
        take = None
        if not all(c.increasing for c in done.chunks):  # read_events orders by seq_num
            take = np.argsort(done.head["seq_num"], kind="stable")
        data = {}
        for key in fields:
            if key in specs:
                values = decode(specs[key], done.head["data"][key])
                data[key] = values if take is None else values[take]
        return SimpleNamespace(data=data)


class Ingester:
    """Writes documents into a run index and its zarr columns."""

    def __init__(
        self,
        engine: sa.Engine,
        columns: ColumnStore,
        *,
        chunk_rows: int,
        chunk_bytes: int,
        flush_interval: float | None,
        log: walmod.EventLog,
        journal: Journal,
        pack_bytes: int = packmod.DEFAULT_PACK_BYTES,
    ):
        self.engine = engine
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.flush_interval = flush_interval
        self.pack_bytes = pack_bytes
        self.log = log
        self.journal = journal
        self.writers: dict[str, RunWriter] = {}
        self.owner: dict[str, str] = {}  # descriptor uid -> run uid, for runs being written
        self.lock = threading.RLock()
        self._chunk_cache: tuple[tuple[str, int], dict] | None = None
        _LIVE.add(self)

    def put(self, kind: str, doc: dict) -> bool:
        """Store a checked document; for a stop, returns whether the run's data summary was
        recorded with it."""
        with self.lock:
            summarized = getattr(self, f"_put_{kind}")(doc)
            logged = self.log.position
        self.log.sync(logged)  # durability="fsync": shared with other threads' inserts
        return bool(summarized)

    # -- replaying the logs of writers that died --------------------------------------------

    def replay(self) -> int:
        """Replay the event logs whose writer died (each under its lock, so exactly one
        process replays it); events already in zarr are skipped. Returns the events
        recovered. A log that cannot be replayed (its run is not in the index) is kept, with
        a warning."""
        recovered = 0
        for orphan in walmod.orphans(self.log.folder):
            try:
                with self.lock:
                    added = sum(self._replay(record) for record in orphan.records())
                    self.flush()
            except (BrokerError, OSError, ValueError, KeyError, sa.exc.SQLAlchemyError) as err:
                orphan.release()
                warnings.warn(
                    f"the write-ahead log {orphan.path!r} of a writer that died cannot be "
                    f"replayed: {err}; it is kept (rebuild the index with intake-broker "
                    "reindex, which replays it too)",
                    stacklevel=3,
                )
                continue
            orphan.done()
            recovered += added
        return recovered

    def _replay(self, record: walmod.Record) -> int:
        writer = self._writer(record.run_uid, "event_page", {"uid": [record.descriptor_uid]})
        dw = writer.descriptors.get(record.descriptor_uid) or self._adopt(
            writer, record.descriptor_uid
        )
        cols = record.columns(dw.layout)
        if writer.event_rows is None:
            self._load_event_rows(writer)
        new = np.flatnonzero([u not in writer.event_rows for u in cols["uid"].tolist()])
        if not len(new):
            return 0
        if len(new) < cols["rows"]:
            cols = take_rows(cols, new)
        ord_ = record.ord
        if writer.current == dw.uid and dw.segments and dw.segments[-1][2] == ord_:
            ord_ = None  # the same segment goes on
        elif ord_ is None:
            ord_ = writer.take_ord()
        else:
            writer.current = None
            writer.next_ord = max(writer.next_ord, ord_ + 1)
        self._add_rows(writer, dw, cols, ord_)
        return int(cols["rows"])

    def close(self) -> None:
        """Flush everything and remove this store's event log."""
        with self.lock:
            self.flush()
            self.log.close()

    # -- runs -------------------------------------------------------------------------------

    def _one(self, stmt: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(stmt).first()

    def _put_start(self, doc: dict) -> None:
        columns = jsondocs.start_columns(doc)
        exact, query, lossy = jsondocs.encode("start", doc)
        columns["irregular"] = columns["irregular"] or lossy
        try:  # a stored uid fails the insert: nothing is journaled, the stored one is compared
            with write(self.engine) as conn:
                conn.execute(runs.insert().values(start_doc=exact, start_q=query, **columns))
                self.journal.append(node_name(columns["uid"]), line("start", 0, exact))
        except sa.exc.IntegrityError:
            stored = self._one(sa.select(runs.c.start_doc).where(runs.c.uid == columns["uid"]))
            if stored is None:
                raise
            check_reinsert("start", json.loads(stored[0]), doc)
            return
        self.writers[columns["uid"]] = RunWriter(columns["uid"], next_ord=1, event_rows={})

    def _writer(self, run_uid: Any, kind: str, doc: dict) -> RunWriter:
        """The writer of a run held by this store (loaded from the index on first use)."""
        writer = self.writers.get(run_uid) if isinstance(run_uid, str) else None
        if writer is not None:
            return writer
        if isinstance(run_uid, str):
            writer = self._load(run_uid)
        if writer is None:
            raise InvalidDocument(
                f"{doc_label(kind, doc)} refers to run_start {run_uid!r}, which this store does "
                "not hold; insert the run's start document first"
            )
        self.writers[run_uid] = writer
        return writer

    def _load(self, run_uid: str) -> RunWriter | None:
        with self.engine.connect() as conn:
            if conn.execute(sa.select(runs.c.uid).where(runs.c.uid == run_uid)).first() is None:
                return None
            descs = conn.execute(
                sa.select(descriptors)
                .where(descriptors.c.run_uid == run_uid)
                .order_by(descriptors.c.ord)
            ).all()
            ords = [
                conn.execute(
                    sa.select(sa.func.max(documents.c.ord)).where(documents.c.run_uid == run_uid)
                ).scalar()
                or 0
            ]
            writer_descs = []
            for d in descs:
                chunks = conn.execute(
                    sa.select(event_chunks)
                    .where(event_chunks.c.descriptor_uid == d.uid)
                    .order_by(event_chunks.c.idx)
                ).all()
                ords.append(d.ord)
                ords.append(
                    conn.execute(
                        sa.select(sa.func.max(event_segments.c.ord)).where(
                            event_segments.c.descriptor_uid == d.uid
                        )
                    ).scalar()
                    or 0
                )
                last = None
                if chunks:
                    row = chunks[-1]._mapping
                    last = ChunkRow(**{k: row[k] for k in ChunkRow.__dataclass_fields__})
                writer_descs.append((d, sum(c.rows for c in chunks), last))
        writer = RunWriter(run_uid, next_ord=max(ords) + 1)
        for i, (d, flushed, last) in enumerate(writer_descs):
            writer.add_descriptor(
                DescriptorWriter(
                    d.uid,
                    run_uid,
                    i,
                    d.path,
                    Layout.from_json(d.layout),
                    json.loads(d.doc),
                    flushed=flushed,
                    last_chunk=last,
                    ord=d.ord,
                )
            )
            self.owner[d.uid] = run_uid
        return writer

    def _put_stop(self, doc: dict) -> bool:
        """Write the run's buffered events, then record them, the stop and (when every
        event is at hand) the run's data summary in one transaction. Returns whether the
        summary was recorded."""
        run_uid = doc.get("run_start")
        stored = (
            self._one(
                sa.select(
                    runs.c.stop_doc,
                    runs.c.summary_q.is_(None).label("unsummarized"),
                    sa.select(sa.func.count())
                    .select_from(descriptors)
                    .where(descriptors.c.run_uid == run_uid)
                    .scalar_subquery()
                    .label("streams"),
                ).where(runs.c.uid == run_uid)
            )
            if isinstance(run_uid, str)
            else None
        )
        if stored is None:
            raise InvalidDocument(
                f"{doc_label('stop', doc)} refers to run_start {run_uid!r}, "
                "which this store does not hold; insert the start first"
            )
        if stored[0] is not None:
            check_reinsert("stop", json.loads(stored[0]), doc)
            return False
        exact, query, lossy = jsondocs.encode("stop", doc)
        writer = self.writers.get(run_uid)
        flushes: list[tuple[DescriptorWriter, Written]] = []
        if writer is not None:  # everything buffered is written before the run ends
            fsync = self.log.durability == "fsync"
            for dw in writer.descriptors.values():
                self._prepare(dw, whole_chunks_only=False, final=True)
                done = dw.write(
                    self.columns, self._group_attrs(dw), whole_chunks_only=False, fsync=fsync
                )
                if done is not None:
                    flushes.append((dw, done))
        summary = None
        if writer is not None and stored[1] and stored[2] == len(writer.descriptors):
            summary = self._summary_at_hand(writer, {dw.uid: done for dw, done in flushes})
        values = {"stop_doc": exact, "stop_q": query, **jsondocs.stop_columns(doc)}
        if lossy:
            values["irregular"] = True
        if summary is not None:  # the run has none yet (no summary_values rows either)
            text, summary_q, summary_lossy = jsondocs.encode("summary", summary)
            values.update(summary_q=summary_q, summary_doc=text if summary_lossy else None)
        folder = node_name(run_uid)
        self.journal.append(folder, line("stop", writer.next_ord if writer else -1, exact))
        if not self.columns.local:
            self.journal.upload(folder)
        with write(self.engine) as conn:
            for dw, done in flushes:
                dw.record(conn, done)
            stopped = conn.execute(
                runs.update()
                .where(runs.c.uid == run_uid, runs.c.stop_doc.is_(None))
                .values(**values)
            ).rowcount
            if summary is not None and writer is not None and stopped:
                rows = summary_rows(writer.run_uid, summary)
                if rows:
                    conn.execute(summary_values.insert(), rows)
        for dw, done in flushes:
            dw.recorded(done)
            if dw.stale_packed:  # the zarr group is recorded
                self.columns.remove_packed(dw.path)
                dw.stale_packed = False
        if flushes:
            self._checkpoint()
        if writer is not None:
            del self.writers[run_uid]
            for uid, dw in writer.descriptors.items():
                self.owner.pop(uid, None)
                self.columns.forget(dw.path)
        self.journal.forget(folder)
        return summary is not None

    def _summary_at_hand(self, writer: RunWriter, written: dict[str, Written]) -> dict | None:
        """The run's data summary from the rows being written at its stop, when they are all
        its events (else None: it is computed from the stored columns once committed). The
        same numbers :func:`~intake_broker.store.summary.run_summary` gives from the store."""
        for dw in writer.descriptors.values():
            done = written.get(dw.uid)
            if (done.count != done.target) if done is not None else dw.rows:
                return None  # some rows were written before: read them back
        # the order of NativeStore.descriptors: by time, then insertion ordinal
        uids = sorted(writer.descriptors, key=lambda u: _descriptor_order(writer.descriptors[u]))
        return run_summary(_AtHand(writer, written, uids), writer.run_uid)

    # -- descriptors and events -------------------------------------------------------------

    def _put_descriptor(self, doc: dict) -> None:
        run_uid = doc.get("run_start")
        if not isinstance(run_uid, str) or run_uid not in self.writers:
            # not a run being written here: a re-insert is compared before the run is loaded
            stored = self._one(sa.select(descriptors.c.doc).where(descriptors.c.uid == doc["uid"]))
            if stored is not None:
                check_reinsert("descriptor", json.loads(stored[0]), doc)
                return
        writer = self._writer(run_uid, "descriptor", doc)
        if len(writer.order) >= ROW_CODE:
            raise InvalidDocument(
                f"{doc_label('descriptor', doc)}: run {writer.run_uid!r} "
                f"already has {ROW_CODE} descriptors, the most it can hold"
            )
        layout = make_layout(doc, self.chunk_rows, self.chunk_bytes)
        exact = jsondocs.to_json("descriptor", doc)
        path = f"{node_name(writer.run_uid)}/{node_name(doc['uid'])}"
        time = doc.get("time")
        layout_obj = layout.as_dict()
        row = {
            "uid": doc["uid"],
            "run_uid": writer.run_uid,
            "name": str(doc.get("name", "primary")),
            "time": float(time) if isinstance(time, int | float) else 0.0,
            "ord": writer.next_ord,
            "doc": exact,
            "path": path,
            "layout": json.dumps(layout_obj),
        }
        try:  # a stored uid fails the insert: nothing is journaled, the stored one is compared
            with write(self.engine) as conn:
                conn.execute(descriptors.insert().values(**row))
                self.journal.append(
                    node_name(writer.run_uid),
                    line("descriptor", row["ord"], exact, path=path, layout=layout_obj),
                )
        except sa.exc.IntegrityError:
            stored = self._one(sa.select(descriptors.c.doc).where(descriptors.c.uid == doc["uid"]))
            if stored is None:
                raise
            check_reinsert("descriptor", json.loads(stored[0]), doc)
            return
        writer.take_ord()
        writer.add_descriptor(
            DescriptorWriter(
                doc["uid"], writer.run_uid, len(writer.order), path, layout, doc, ord=row["ord"]
            )
        )
        self.owner[doc["uid"]] = writer.run_uid

    def _run_of_descriptor(self, page: dict) -> RunWriter:
        uid = page.get("descriptor")
        run_uid = self.owner.get(uid) if isinstance(uid, str) else None
        if run_uid is None and isinstance(uid, str):
            found = self._one(sa.select(descriptors.c.run_uid).where(descriptors.c.uid == uid))
            run_uid = found[0] if found else None
        if run_uid is None:
            raise InvalidDocument(
                f"{doc_label('event_page', page)} refers to descriptor {uid!r}, which no run in "
                "this store holds; insert the descriptor (and its run's start) first"
            )
        return self._writer(run_uid, "event_page", page)

    def _put_event_page(self, page: dict) -> None:
        writer = self._run_of_descriptor(page)
        dw = writer.descriptors.get(page["descriptor"]) or self._adopt(writer, page["descriptor"])
        plan = dw.row_plan()
        row = plan.row(page) if plan is not None else None
        if row is not None and writer.event_rows is not None and row[0] not in writer.event_rows:
            self._add_row(writer, dw, plan, row)  # one new event: the fast path
            return
        cols = convert_page(dw.layout, dw.descriptor, page)
        if not cols["rows"]:
            return
        if writer.event_rows is None:
            self._load_event_rows(writer)
        known = writer.event_rows
        uids = cols["uid"].tolist()
        if not known.keys().isdisjoint(uids):
            if all(u in known for u in uids):
                self._check_same_events(writer, dw, page, cols, uids)
                return
            dup = next(u for u in uids if u in known)
            raise InvalidDocument(
                f"{doc_label('event_page', page)} mixes new events with "
                f"stored event {dup!r}; re-insert whole pages or only new "
                "events"
            )
        ord_ = None if writer.current == dw.uid else writer.take_ord()
        self._add_rows(writer, dw, cols, ord_)

    def _add_row(self, writer: RunWriter, dw: DescriptorWriter, plan: RowPlan, row: tuple):
        """:meth:`_add_rows` for one checked event held as a row tuple (see :mod:`.rows`)."""
        ord_ = None if writer.current == dw.uid else writer.take_ord()
        if ord_ is not None:
            self.journal.append(
                node_name(writer.run_uid),
                line("segment", ord_, descriptor=dw.uid, row_start=dw.rows),
            )
        base = dw.rows
        writer.event_rows[row[0]] = base * ROW_CODE + dw.index
        dw.add_row(row, ord_)
        writer.current = dw.uid
        rewritten = False
        if dw.due(self.flush_interval):
            whole = dw.rows // dw.layout.chunk_rows > dw.flushed // dw.layout.chunk_rows
            rewritten = self._flush(dw, whole_chunks_only=whole)
        if not rewritten and dw.flushed <= base:
            self.log.append(plan.record(writer.run_uid, dw.uid, dw.segments[-1][2], row))

    def _add_rows(self, writer: RunWriter, dw: DescriptorWriter, cols: dict, ord_: int | None):
        """Buffer checked rows (``ord_``: they open a segment), flush if due, and log what
        stays buffered: when this returns, the rows are in zarr or in the event log."""
        uids = cols["uid"].tolist()
        if ord_ is not None:
            self.journal.append(
                node_name(writer.run_uid),
                line("segment", ord_, descriptor=dw.uid, row_start=dw.rows),
            )
        base = dw.rows
        codes = (np.arange(base, base + len(uids), dtype=np.int64) * ROW_CODE + dw.index).tolist()
        writer.event_rows.update(zip(uids, codes, strict=True))
        dw.add(cols, ord_)
        writer.current = dw.uid
        rewritten = False
        if dw.due(self.flush_interval):
            whole = dw.rows // dw.layout.chunk_rows > dw.flushed // dw.layout.chunk_rows
            rewritten = self._flush(dw, whole_chunks_only=whole)
        first = max(base, dw.flushed)  # the first row of this page still buffered
        if not rewritten and first < dw.rows:
            part = cols if first == base else slice_columns(cols, first - base, cols["rows"])
            record = walmod.encode_rows(writer.run_uid, dw.uid, dw.segments[-1][2], dw.layout, part)
            self.log.append(record)

    def _adopt(self, writer: RunWriter, uid: str) -> DescriptorWriter:
        """A descriptor of a run this store writes that another store object inserted."""
        with self.engine.connect() as conn:
            d = conn.execute(sa.select(descriptors).where(descriptors.c.uid == uid)).one()
            chunks = conn.execute(
                sa.select(event_chunks)
                .where(event_chunks.c.descriptor_uid == uid)
                .order_by(event_chunks.c.idx)
            ).all()
        last = None
        if chunks:
            row = chunks[-1]._mapping
            last = ChunkRow(**{k: row[k] for k in ChunkRow.__dataclass_fields__})
        dw = DescriptorWriter(
            uid,
            writer.run_uid,
            len(writer.order),
            d.path,
            Layout.from_json(d.layout),
            json.loads(d.doc),
            flushed=sum(c.rows for c in chunks),
            last_chunk=last,
            ord=d.ord,
        )
        writer.add_descriptor(dw)
        writer.current = None
        writer.next_ord = max(writer.next_ord, d.ord + 1)
        self.owner[uid] = writer.run_uid
        if writer.event_rows is not None and dw.flushed:
            info = DescriptorInfo(dw.uid, dw.run_uid, dw.path, dw.layout)
            uids = self.columns.read(
                dw.path, ["uid"], 0, dw.flushed, {"uid": info.where("the uid array")}, dw.layout
            )["uid"].tolist()
            codes = (np.arange(dw.flushed, dtype=np.int64) * ROW_CODE + dw.index).tolist()
            writer.event_rows.update(zip(uids, codes, strict=True))
        return dw

    def _flush(self, dw: DescriptorWriter, *, whole_chunks_only: bool, final: bool = False) -> bool:
        """Write a descriptor's buffered rows (whole chunks only, or all); before its first
        rows are written, its chunk rows are fitted to them (``final``: the run stopped; a
        small stream is then packed into one file). Returns whether the event log was
        rewritten to hold exactly the rows still buffered."""
        self._prepare(dw, whole_chunks_only=whole_chunks_only, final=final)
        written = dw.flush(
            self.engine,
            self.columns,
            self._group_attrs(dw),
            whole_chunks_only=whole_chunks_only,
            fsync=self.log.durability == "fsync",
        )
        if written:
            self._written(dw)
        return self._checkpoint() if written else False

    def _prepare(self, dw: DescriptorWriter, *, whole_chunks_only: bool, final: bool) -> None:
        """Before a flush: a packed stream with new rows becomes a zarr group; a stream's
        first rows fix its layout (packed, or chunk rows fitted to them)."""
        if dw.layout.packed and dw.flushed and dw.pending_rows:
            self._unpack(dw)
        if not whole_chunks_only:
            if final and self._packs(dw):
                dw.pack()
            else:
                dw.fit_layout(final=final)

    def _written(self, dw: DescriptorWriter) -> None:
        """After a flush was recorded: remove what it replaced, upload the journal."""
        if dw.stale_packed and not dw.layout_pending:  # the zarr group is recorded
            self.columns.remove_packed(dw.path)
            dw.stale_packed = False
        if not self.columns.local:
            self.journal.upload(node_name(dw.run_uid))

    def _checkpoint(self) -> bool:
        """After a flush: empty the event log when nothing is buffered, or rewrite it with
        the buffered rows once it has grown (flushed rows are then not replayed in vain).
        Returns whether the log now holds exactly the buffered rows."""
        buffered = [
            (writer, dw)
            for writer in self.writers.values()
            for dw in writer.descriptors.values()
            if dw.pending_rows
        ]
        if buffered and self.log.size < walmod.CHECKPOINT_BYTES:
            return False
        records = []
        for writer, dw in buffered:
            cols = dw.buffered()
            for start, stop, ord_ in dw.segments:
                lo, hi = max(start, dw.flushed) - dw.flushed, stop - dw.flushed
                if hi > lo:
                    part = slice_columns(cols, lo, hi)
                    records.append(
                        (ord_, walmod.encode_rows(writer.run_uid, dw.uid, ord_, dw.layout, part))
                    )
        records.sort(key=lambda r: r[0])
        self.log.checkpoint([r for _, r in records])
        return True

    def _packs(self, dw: DescriptorWriter) -> bool:
        """Whether a stream whose run stopped is small enough to be packed (see
        :mod:`.packed`): nothing of it written yet, and its events take at most
        ``pack_bytes``."""
        return (
            self.pack_bytes > 0
            and not dw.flushed
            and 0 < dw.rows <= dw.layout.chunk_rows
            and dw.rows * dw.layout.row_bytes() <= self.pack_bytes
        )

    def _unpack(self, dw: DescriptorWriter) -> None:
        """More events for a packed stream: it becomes a zarr group (stored rows first)."""
        info = DescriptorInfo(dw.uid, dw.run_uid, dw.path, dw.layout)
        stored = raw_rows(self.columns, info, 0, dw.flushed)
        limit = make_layout(dw.descriptor, self.chunk_rows, self.chunk_bytes).chunk_rows
        layout = Layout(limit, dw.layout.fields).fitted(dw.rows, final=False)
        dw.unpack(stored, layout)
        self._chunk_cache = None

    def _group_attrs(self, dw: DescriptorWriter) -> dict:
        stream = str(dw.descriptor.get("name", "primary"))
        return group_attrs(dw.run_uid, dw.uid, stream, dw.layout.chunk_rows)

    def _load_event_rows(self, writer: RunWriter) -> None:
        """The event uids already stored in a run this process did not start."""
        known: dict[str, int] = {}
        for dw in writer.descriptors.values():
            if dw.flushed:
                info = DescriptorInfo(dw.uid, dw.run_uid, dw.path, dw.layout)
                uids = self.columns.read(
                    dw.path,
                    ["uid"],
                    0,
                    dw.flushed,
                    {"uid": info.where("the uid array")},
                    dw.layout,
                )["uid"]
                codes = (np.arange(dw.flushed, dtype=np.int64) * ROW_CODE + dw.index).tolist()
                known.update(zip(uids.tolist(), codes, strict=True))
        writer.event_rows = known

    def _stored(self, dw: DescriptorWriter, rows: np.ndarray) -> dict:
        """Stored rows of a descriptor (flushed or buffered), as converted columns.

        Flushed rows are read a whole chunk at a time, and the last chunk read is kept: a
        writer replaying a run event by event reads each chunk once."""
        parts, order = [], np.argsort(rows, kind="stable")
        flushed = np.sort(rows[rows < dw.flushed])
        size = dw.layout.chunk_rows
        for index in np.unique(flushed // size):
            key = (dw.uid, int(index))
            if self._chunk_cache is None or self._chunk_cache[0] != key:
                info = DescriptorInfo(dw.uid, dw.run_uid, dw.path, dw.layout)
                start = int(index) * size
                stop = min(start + size, dw.flushed)
                self._chunk_cache = (key, raw_rows(self.columns, info, start, stop))
            in_chunk = flushed[flushed // size == index] - int(index) * size
            parts.append(take_rows(self._chunk_cache[1], in_chunk))
        buffered = rows[rows >= dw.flushed]
        if len(buffered):
            parts.append(take_rows(dw.buffered(), np.sort(buffered) - dw.flushed))
        joined = concat_columns(parts)
        return take_rows(joined, np.argsort(order, kind="stable"))

    def _check_same_events(
        self, writer: RunWriter, dw: DescriptorWriter, page: dict, cols: dict, uids: list[str]
    ) -> None:
        located = [writer.locate(u) for u in uids]
        events = None
        for i, (owner, row) in enumerate(located):  # type: ignore[misc]
            if owner is not dw:  # a stored event of another descriptor: a conflict
                events = events or event_page_rows(page)
                events[i].setdefault("filled", {})
                stored = self._stored(owner, np.array([row], dtype=np.int64))
                check_reinsert("event", event_doc(owner.layout, owner.uid, stored, 0), events[i])
        rows = np.array([row for _, row in located], dtype=np.int64)  # type: ignore[misc]
        stored = self._stored(dw, rows)
        if same_columns(stored, cols):
            return
        for i, event in enumerate(events or event_page_rows(page)):
            event.setdefault("filled", {})
            check_reinsert("event", event_doc(dw.layout, dw.uid, stored, i), event)

    # -- assets -----------------------------------------------------------------------------

    def _insert_document(
        self,
        writer: RunWriter,
        kind: str,
        doc: dict,
        *,
        space: str | None,
        uid: str | None,
        ref: str | None,
    ) -> int:
        text = jsondocs.to_json(kind, doc)
        self.journal.append(node_name(writer.run_uid), line(kind, writer.next_ord, text))
        with write(self.engine) as conn:
            result = conn.execute(
                documents.insert().values(
                    run_uid=writer.run_uid,
                    kind=kind,
                    space=space,
                    uid=uid,
                    ref=ref,
                    ord=writer.next_ord,
                    doc=text,
                )
            )
            key = result.inserted_primary_key[0]
            if kind == "datum_page":
                conn.execute(
                    datums.insert(),
                    [
                        {"datum_id": d, "run_uid": writer.run_uid, "page_id": key, "row": i}
                        for i, d in enumerate(doc["datum_id"])
                    ],
                )
        writer.take_ord()
        return key

    def _stored_document(self, space: str, uid: Any) -> Any:
        if not isinstance(uid, str):
            return None
        return self._one(
            sa.select(documents.c.doc, documents.c.run_uid).where(
                documents.c.space == space, documents.c.uid == uid
            )
        )

    def _put_resource(self, doc: dict, kind: str = "resource") -> None:
        stored = self._stored_document("resource", doc.get("uid"))
        if stored is not None:
            check_reinsert(kind, json.loads(stored[0]), doc)
            return
        writer = self._writer(doc.get("run_start"), kind, doc)
        self._insert_document(writer, kind, doc, space="resource", uid=doc["uid"], ref=None)

    def _put_stream_resource(self, doc: dict) -> None:
        self._put_resource(doc, "stream_resource")

    def _put_stream_datum(self, doc: dict) -> None:
        stored = self._stored_document("stream_datum", doc.get("uid"))
        if stored is not None:
            check_reinsert("stream_datum", json.loads(stored[0]), doc)
            return
        parent = self._stored_document("resource", doc.get("stream_resource"))
        if parent is None:
            raise InvalidDocument(
                f"{doc_label('stream_datum', doc)} refers to stream_resource "
                f"{doc.get('stream_resource')!r} which this store does not hold; insert the "
                "stream_resource first"
            )
        writer = self._writer(parent[1], "stream_datum", doc)
        self._insert_document(
            writer,
            "stream_datum",
            doc,
            space="stream_datum",
            uid=doc["uid"],
            ref=doc["stream_resource"],
        )

    def _put_datum_page(self, page: dict) -> None:
        parent = self._stored_document("resource", page.get("resource"))
        if parent is None:
            raise InvalidDocument(
                f"{doc_label('datum_page', page)} refers to resource {page.get('resource')!r} "
                "which this store does not hold; insert the resource first"
            )
        ids = [str(i) for i in page["datum_id"]]
        known: dict[str, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(
                    sa.select(datums.c.datum_id, datums.c.page_id, datums.c.row).where(
                        datums.c.datum_id.in_(ids[i : i + 500])
                    )
                ).all()
                known.update({r.datum_id: (r.page_id, r.row) for r in rows})
            if known and len(known) == len(set(ids)):
                pages = {
                    pid: datum_page_rows(
                        json.loads(
                            conn.execute(
                                sa.select(documents.c.doc).where(documents.c.id == pid)
                            ).scalar()
                        )
                    )
                    for pid in {p for p, _ in known.values()}
                }
                for datum in datum_page_rows(page):
                    pid, row = known[datum["datum_id"]]
                    check_reinsert("datum", pages[pid][row], datum)
                return
        if known:
            raise InvalidDocument(
                f"{doc_label('datum_page', page)} mixes new datums with "
                f"stored datum {next(iter(known))!r}"
            )
        writer = self._writer(parent[1], "datum_page", page)
        self._insert_document(
            writer, "datum_page", page, space=None, uid=None, ref=page["resource"]
        )

    # -- flushing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered event (partial chunks too)."""
        with self.lock:
            for writer in self.writers.values():
                for dw in writer.descriptors.values():
                    self._flush(dw, whole_chunks_only=False)
            if not self.columns.local:
                self.journal.upload()
