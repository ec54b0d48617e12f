"""Live and bulk ingest of events: buffers per descriptor, flushed as whole zarr chunks.

A :class:`RunWriter` holds what one process is writing into one run: the insertion counter
that orders the run's documents, and a :class:`DescriptorWriter` per descriptor that buffers
converted event pages and flushes them. A flush writes the zarr chunks first and then, in one
SQL transaction, the rows of ``event_chunks`` and ``event_segments`` that describe them; a
reader trusts only those rows, so a writer killed at any moment leaves every flushed chunk
readable and nothing half-described.

Flushes happen when a descriptor has buffered a whole chunk, at the run's stop, on
:meth:`NativeStore.flush` / ``close()``, and when ``flush_interval`` seconds have passed since
the last flush and the buffer holds an eighth of what the partial chunk holds (or 12 intervals
have passed): then the last, partial chunk is written and rewritten later as it fills (local
writes and S3 puts replace a chunk file atomically).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sqlalchemy as sa

from . import packed
from .columns import ColumnStore
from .layout import Layout, concat_columns, slice_columns
from .rows import RowPlan
from .schema import descriptors, event_chunks, event_segments, write_transaction

#: Event uids map to ``row * ROW_CODE + descriptor index`` (one int per event in memory).
ROW_CODE = 2**20


@dataclass(frozen=True)
class ChunkRow:
    """One row of ``event_chunks``: a zarr chunk of flushed events."""

    idx: int
    row_start: int
    rows: int
    seq_first: int
    seq_last: int
    seq_min: int
    seq_max: int
    increasing: bool
    contiguous: bool

    def as_dict(self, descriptor_uid: str) -> dict[str, Any]:
        return {"descriptor_uid": descriptor_uid, **self.__dict__}


def _merge(
    chunk: ChunkRow | None, previous_last: int | None, idx: int, row_start: int, seq: np.ndarray
) -> ChunkRow:
    """The chunk row after appending rows with ``seq`` to ``chunk`` (or starting chunk idx)."""
    steps = np.diff(seq)
    increasing = bool((steps > 0).all())
    contiguous = bool((steps == 1).all())
    if chunk is None:
        return ChunkRow(
            idx,
            row_start,
            len(seq),
            int(seq[0]),
            int(seq[-1]),
            int(seq.min()),
            int(seq.max()),
            increasing and (previous_last is None or seq[0] > previous_last),
            contiguous,
        )
    return replace(
        chunk,
        rows=chunk.rows + len(seq),
        seq_last=int(seq[-1]),
        seq_min=min(chunk.seq_min, int(seq.min())),
        seq_max=max(chunk.seq_max, int(seq.max())),
        increasing=chunk.increasing and increasing and seq[0] > chunk.seq_last,
        contiguous=chunk.contiguous and contiguous and seq[0] == chunk.seq_last + 1,
    )


def group_attrs(run_uid: str, descriptor_uid: str, stream: str, chunk_rows: int) -> dict:
    """The attributes of a descriptor's zarr group."""
    return {
        "intake_broker": {
            "layout": 1,
            "run_uid": run_uid,
            "descriptor_uid": descriptor_uid,
            "stream_name": stream,
            "chunk_rows": chunk_rows,
        }
    }


@dataclass
class DescriptorWriter:
    """Buffered events of one descriptor and what has been flushed of it."""

    uid: str
    run_uid: str
    index: int  # position among the run's descriptors (for the run's event-uid map)
    path: str  # the zarr group, relative to the data URL
    layout: Layout
    descriptor: dict
    flushed: int = 0
    last_chunk: ChunkRow | None = None  # the chunk holding the last flushed row
    pending: list[dict] = field(default_factory=list)
    pending_rows: int = 0
    segments: list[list[int]] = field(default_factory=list)  # [row_start, row_stop, ord]
    last_flush: float = field(default_factory=time.monotonic)
    #: ``layout`` was fitted here and is not recorded in the index yet (see :meth:`fit_layout`)
    layout_pending: bool = False
    #: events buffered as row tuples (the one-event fast path, see :mod:`.rows`), after
    #: ``pending``; turned into columns when the buffer is read
    row_buffer: list[tuple] = field(default_factory=list)
    plan: RowPlan | None = None
    plan_checked: bool = False
    #: the rows were packed and are being rewritten as a zarr group: the packed file is
    #: removed once the zarr layout is committed
    stale_packed: bool = False
    #: the descriptor's insertion ordinal in its run (``descriptors.ord``)
    ord: int = -1

    def row_plan(self) -> RowPlan | None:
        """The fast path's plan for this descriptor's layout (None: it has no fast path)."""
        if not self.plan_checked:
            self.plan, self.plan_checked = RowPlan.of(self.layout), True
        return self.plan

    def add_row(self, row: tuple, ord_: int | None) -> None:
        """Buffer one event's row tuple (as :meth:`add` does columns)."""
        start = self.flushed + self.pending_rows
        if ord_ is None:
            assert self.segments and self.segments[-1][1] == start, "no open segment"
            self.segments[-1][1] += 1
        else:
            self.segments.append([start, start + 1, ord_])
        self.row_buffer.append(row)
        self.pending_rows += 1

    def _columns_of_rows(self) -> None:
        if self.row_buffer:
            assert self.plan is not None
            self.pending.append(self.plan.columns(self.row_buffer))
            self.row_buffer = []

    def fit_layout(self, *, final: bool) -> None:
        """Before the descriptor's first rows are written: fit its chunk rows to the rows
        buffered (``final``: the run has stopped, they are all there is). The fitted layout is
        recorded with the first chunk, in the same transaction."""
        if self.flushed or not self.pending_rows:
            return
        fitted = self.layout.fitted(self.rows, final=final)
        if fitted != self.layout:
            self.layout, self.layout_pending = fitted, True

    def pack(self) -> None:
        """Before the descriptor's first (and, its run having stopped, only) rows are
        written: store them packed, as one file (see :mod:`.packed`)."""
        if self.flushed or not self.pending_rows:
            return
        self.layout, self.layout_pending = self.layout.packed_for(self.rows), True

    def unpack(self, stored: dict, layout: Layout) -> None:
        """More rows for a packed descriptor: its ``stored`` rows go before the buffered
        ones, and everything is written again as a zarr group of ``layout``."""
        self.buffered()
        self.pending.insert(0, stored)
        self.pending_rows += self.flushed
        self.flushed, self.last_chunk = 0, None
        self.layout, self.layout_pending = layout, True
        self.stale_packed = True

    @property
    def rows(self) -> int:
        return self.flushed + self.pending_rows

    def add(self, columns: dict, ord_: int | None) -> None:
        """Buffer converted rows; ``ord_`` opens a new segment (None extends the current)."""
        self._columns_of_rows()
        start = self.rows
        if ord_ is None:
            assert self.segments and self.segments[-1][1] == start, "no open segment"
            self.segments[-1][1] += columns["rows"]
        else:
            self.segments.append([start, start + columns["rows"], ord_])
        self.pending.append(columns)
        self.pending_rows += columns["rows"]

    def due(self, interval: float | None) -> bool:
        """Whether a flush is due: a whole chunk is buffered, or the interval has passed (and
        enough is buffered to be worth rewriting the partial chunk)."""
        if not self.pending_rows:
            return False
        rows = self.layout.chunk_rows
        if self.rows // rows > self.flushed // rows:
            return True
        if interval is None:
            return False
        elapsed = time.monotonic() - self.last_flush
        in_chunk = self.flushed % rows
        # Each partial flush rewrites the partial chunk: wait for 1/8 of what it holds (so a
        # chunk is rewritten a bounded number of times), but never more than 12 intervals.
        return elapsed >= interval and (
            8 * self.pending_rows >= in_chunk or elapsed >= 12 * interval
        )

    def buffered(self) -> dict:
        """The buffered rows as one set of columns (joined once)."""
        self._columns_of_rows()
        if len(self.pending) > 1:
            self.pending = [concat_columns(self.pending)]
        return self.pending[0]

    def flush(
        self,
        engine: sa.Engine,
        columns: ColumnStore,
        group_attrs: dict,
        *,
        whole_chunks_only: bool,
        fsync: bool = False,
    ) -> int:
        """Write buffered rows: whole chunks only, or everything (a packed layout: its one
        file, ``fsync``-ed if asked), and record them in the index. Returns rows written."""
        done = self.write(columns, group_attrs, whole_chunks_only=whole_chunks_only, fsync=fsync)
        if done is None:
            return 0
        with write_transaction(engine) as conn:
            self.record(conn, done)
        return self.recorded(done)

    def write(
        self, columns: ColumnStore, group_attrs: dict, *, whole_chunks_only: bool, fsync: bool
    ) -> Written | None:
        """The first half of :meth:`flush`: write the rows' data (nothing is recorded, nothing
        changes here). None: nothing to write."""
        if not self.pending_rows:
            return None
        rows = self.layout.chunk_rows
        target = self.rows if not whole_chunks_only else self.rows // rows * rows
        if target <= self.flushed:
            return None
        buffered = self.buffered()
        count = target - self.flushed
        head = slice_columns(buffered, 0, count)
        if self.layout.packed:
            assert not self.flushed and count == self.rows == self.layout.chunk_rows
            data = packed.encode(self.run_uid, self.uid, self.layout, head)
            at = columns.write_packed(self.path, self.uid, count, data, fsync=fsync)
            self.layout = replace(self.layout, packed_at=at)  # recorded with the chunk row
        else:
            columns.write(self.path, self.layout, self.descriptor, group_attrs, self.flushed, head)
        chunk = self.last_chunk
        updated: list[ChunkRow] = []
        position = self.flushed
        while position < target:
            idx = position // rows
            stop = min(target, (idx + 1) * rows)
            seq = head["seq_num"][position - self.flushed : stop - self.flushed]
            if chunk is not None and chunk.idx == idx:  # the partial last chunk grows
                chunk = _merge(chunk, None, idx, idx * rows, seq)
            else:
                previous = None if chunk is None else chunk.seq_last
                chunk = _merge(None, previous, idx, idx * rows, seq)
            updated.append(chunk)
            position = stop
        segments = [s for s in self.segments if s[0] < target]
        return Written(target, count, updated, segments, head, buffered)

    def record(self, conn: sa.Connection, done: Written) -> None:
        """The second half of :meth:`flush`: record written rows in the index, inside the
        caller's transaction (then call :meth:`recorded` once it is committed)."""
        if self.layout_pending:
            conn.execute(
                descriptors.update()
                .where(descriptors.c.uid == self.uid)
                .values(layout=self.layout.to_json())
            )
        if self.flushed or self.stale_packed:  # rows of these chunks/segments may be there
            conn.execute(
                event_chunks.delete().where(
                    event_chunks.c.descriptor_uid == self.uid,
                    event_chunks.c.idx.in_([c.idx for c in done.chunks]),
                )
            )
            conn.execute(
                event_segments.delete().where(
                    event_segments.c.descriptor_uid == self.uid,
                    event_segments.c.row_start.in_([s[0] for s in done.segments]),
                )
            )
        conn.execute(event_chunks.insert(), [c.as_dict(self.uid) for c in done.chunks])
        conn.execute(
            event_segments.insert(),
            [
                {
                    "descriptor_uid": self.uid,
                    "row_start": s[0],
                    "row_stop": min(s[1], done.target),
                    "ord": s[2],
                }
                for s in done.segments
            ],
        )

    def recorded(self, done: Written) -> int:
        """After the transaction holding :meth:`record` committed: the rows are written.
        Returns their count."""
        target, count, buffered = done.target, done.count, done.buffered
        self.last_chunk, self.flushed = done.chunks[-1], target
        self.layout_pending = False
        rest = buffered["rows"] - count
        self.pending = [slice_columns(buffered, count, buffered["rows"])] if rest else []
        self.pending_rows = rest
        # segments wholly written are done, except the last (more events may extend it)
        self.segments = [s for s in self.segments[:-1] if s[1] > target] + self.segments[-1:]
        self.last_flush = time.monotonic()
        return count


@dataclass
class Written:
    """Rows a :class:`DescriptorWriter` wrote and has yet to record in the index."""

    target: int  # rows written in all, after this
    count: int  # rows written now
    chunks: list[ChunkRow]  # the chunk rows they make (new, or the partial last one grown)
    segments: list[list[int]]
    head: dict  # the rows written now, as converted columns
    buffered: dict  # everything that was buffered


@dataclass
class RunWriter:
    """What this process is writing into one run."""

    run_uid: str
    next_ord: int
    descriptors: dict[str, DescriptorWriter] = field(default_factory=dict)
    #: the descriptor whose events were the last document put (their segment is open)
    current: str | None = None
    #: event uid -> row * ROW_CODE + descriptor index; None until needed (loaded from storage)
    event_rows: dict[str, int] | None = None
    order: list[str] = field(default_factory=list)  # descriptor uids by index

    def take_ord(self) -> int:
        self.current = None
        value = self.next_ord
        self.next_ord += 1
        return value

    def add_descriptor(self, writer: DescriptorWriter) -> None:
        self.descriptors[writer.uid] = writer
        self.order.append(writer.uid)

    def locate(self, uid: str) -> tuple[DescriptorWriter, int] | None:
        """The descriptor and row of a stored event uid."""
        assert self.event_rows is not None
        code = self.event_rows.get(uid)
        if code is None:
            return None
        return self.descriptors[self.order[code % ROW_CODE]], code // ROW_CODE
