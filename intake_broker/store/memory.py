"""``MemoryStore``: every document in Python dicts. The store of ``intake_broker.temp()``.

It is also the reference implementation of the store contract: small, and shared with the files
driver, which loads each run file into one of these (see :class:`RunDocuments`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from intake_broker.errors import DescriptorNotFound, InvalidDocument, ResourceNotFound, RunNotFound
from intake_broker.queries import Query
from intake_broker.store.annotations import MemoryAnnotations
from intake_broker.store.contract import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RunRecord
from intake_broker.store.documents import (
    check_reinsert,
    datum_page_rows,
    doc_label,
    event_page_rows,
)
from intake_broker.store.planning import RecentMatches

#: Rows per dask chunk when a store regroups events arriving one at a time.
DEFAULT_CHUNK_ROWS = 10_000


def in_stream_assets(data_key: dict) -> bool:
    """Whether a data key's values live in stream_resource/stream_datum assets, not in events."""
    return str(data_key.get("external", "")).startswith("STREAM:")


def stack_column(values: list) -> np.ndarray:
    """One column of event values as an array (arrays of equal shape stack along a new axis)."""
    if values and isinstance(values[0], np.ndarray | list | tuple):
        return np.stack([np.asarray(v) for v in values])
    return np.asarray(values)


class EventTable:
    """The events of one descriptor: pages as inserted, consolidated into columns on read."""

    def __init__(self, descriptor: dict):
        self.descriptor = descriptor
        # Keys filled from stream_resource/stream_datum (ophyd-async) are not in the events.
        self.keys = {k for k, dk in descriptor["data_keys"].items() if not in_stream_assets(dk)}
        self.pages: list[dict] = []
        self._columns: dict[str, Any] | None = None

    def append(self, page: dict) -> None:
        given = set(page["data"])
        if given != self.keys and given != set(self.descriptor["data_keys"]):
            extra = sorted(given - set(self.descriptor["data_keys"]))
            missing = sorted(self.keys - given)
            raise InvalidDocument(
                f"{doc_label('event_page', page)} does not match the data keys of descriptor "
                f"{self.descriptor['uid']!r}: unexpected {extra}, missing {missing}; every event "
                "carries exactly the keys its descriptor declares"
            )
        self.pages.append(page)
        self._columns = None

    def _chain(self, get) -> list:
        return list(itertools.chain.from_iterable(get(p) for p in self.pages))

    def columns(self) -> dict[str, Any]:
        """seq_num, time and uid of all rows sorted by seq_num, built once per change; the
        per-key columns fill in as they are first read."""
        if self._columns is None:
            seq = np.asarray(self._chain(lambda p: p["seq_num"]), dtype=np.int64)
            order = np.argsort(seq, kind="stable")
            self._columns = {
                "seq_num": seq[order],
                "time": np.asarray(self._chain(lambda p: p["time"]), dtype=float)[order],
                "uid": np.asarray(self._chain(lambda p: p["uid"]), dtype=object)[order],
                "order": order,
            }
        return self._columns

    def column(self, group: str, key: str) -> np.ndarray:
        cols = self.columns()
        name = f"{group}.{key}"
        if name not in cols:
            if group == "filled":
                values = self._chain(lambda p: p["filled"].get(key, [False] * len(p["uid"])))
                array = np.asarray(values, dtype=object)
            elif group == "timestamps":
                array = np.asarray(self._chain(lambda p: p["timestamps"][key]), dtype=float)
            else:
                array = stack_column(self._chain(lambda p: p["data"][key]))
            cols[name] = array[cols["order"]]
        return cols[name]

    def read(self, fields, seq_range, uids) -> EventColumns:
        cols = self.columns()
        seq = cols["seq_num"]
        lo, hi = (0, len(seq)) if seq_range is None else np.searchsorted(seq, seq_range)
        keys = sorted(self.keys) if fields is None else [k for k in fields if k in self.keys]
        return EventColumns(
            seq_num=seq[lo:hi],
            time=cols["time"][lo:hi],
            data={k: self.column("data", k)[lo:hi] for k in keys},
            timestamps={k: self.column("timestamps", k)[lo:hi] for k in keys},
            filled={k: self.column("filled", k)[lo:hi] for k in keys},
            uid=cols["uid"][lo:hi] if uids else None,
        )

    def chunks(self, rows_per_chunk: int) -> list[Chunk]:
        seq = self.columns()["seq_num"]
        out = []
        for start in range(0, len(seq), rows_per_chunk):
            part = seq[start : start + rows_per_chunk]
            out.append(Chunk(self.descriptor["uid"], int(part[0]), int(part[-1]) + 1, len(part)))
        return out


class RunDocuments:
    """Everything stored for one run, with the integrity rules of the store contract."""

    def __init__(self, start: dict):
        self.start = start
        self.stop: dict | None = None
        self.ordered: list[tuple[str, dict]] = [("start", start)]
        self.tables: dict[str, EventTable] = {}
        self.event_uids: dict[str, tuple[dict, int]] = {}
        self.resources: dict[str, dict] = {}
        self.datum_ids: dict[str, tuple[dict, int]] = {}
        self.stream_datums: dict[str, dict] = {}
        self.summary: tuple[int, dict] | None = None  # (documents seen, summary) cache
        self.stored_summary: dict[str, dict[str, dict]] = {}

    @property
    def record(self) -> RunRecord:
        return RunRecord(self.start, self.stop)

    def descriptors(self) -> list[dict]:
        """The run's descriptors, oldest first."""
        return sorted((t.descriptor for t in self.tables.values()), key=lambda d: d["time"])

    def replay(self) -> list[tuple[str, dict]]:
        """Every document in the order stored, the stop document last."""
        ordered = [item for item in self.ordered if item[0] != "stop"]
        return ordered + ([("stop", self.stop)] if self.stop is not None else [])

    def check_open(self, kind: str, doc: dict) -> None:
        """Refuse a new event for a run whose stop is stored (what a store's ``put`` asks;
        reading a file does not): an event re-inserted as it was stays a no-op."""
        if kind == "event_page" and self.stop is not None:
            new = [uid for uid in doc["uid"] if uid not in self.event_uids]
            if new:
                raise InvalidDocument(
                    f"{doc_label(kind, doc)}: field 'descriptor' names descriptor "
                    f"{doc['descriptor']!r} of run {self.start['uid']!r}, which has stopped; "
                    "a stopped run takes no new events; start a new run for them"
                )

    def put(self, kind: str, doc: dict) -> bool:
        """Add a document; returns False for an identical re-insert (nothing changes)."""
        if kind == "start":
            check_reinsert(kind, self.start, doc)
            return False
        if kind == "stop":
            if self.stop is not None:
                check_reinsert(kind, self.stop, doc)
                return False
            self.stop = doc
        elif kind == "descriptor":
            if doc["uid"] in self.tables:
                check_reinsert(kind, self.tables[doc["uid"]].descriptor, doc)
                return False
            self.tables[doc["uid"]] = EventTable(doc)
        elif kind == "event_page":
            return self._put_event_page(doc)
        elif kind == "datum_page":
            return self._put_datum_page(doc)
        else:  # resource, stream_resource, stream_datum
            known = self.stream_datums if kind == "stream_datum" else self.resources
            if doc["uid"] in known:
                check_reinsert(kind, known[doc["uid"]], doc)
                return False
            if kind == "stream_datum" and doc["stream_resource"] not in self.resources:
                raise InvalidDocument(
                    f"{doc_label(kind, doc)} refers to stream_resource {doc['stream_resource']!r}"
                    " which this run does not hold; insert the stream_resource first"
                )
            known[doc["uid"]] = doc
        self.ordered.append((kind, doc))
        return True

    def _put_event_page(self, page: dict) -> bool:
        table = self.tables.get(page["descriptor"])
        if table is None:
            raise InvalidDocument(
                f"{doc_label('event_page', page)} refers to descriptor {page['descriptor']!r} "
                f"which run {self.start['uid']!r} does not hold; insert the descriptor first"
            )
        known = [uid in self.event_uids for uid in page["uid"]]
        if all(known):
            for event in event_page_rows(page):
                stored_page, row = self.event_uids[event["uid"]]
                stored = event_page_rows(stored_page)[row]
                stored.setdefault("filled", {})
                event.setdefault("filled", {})
                check_reinsert("event", stored, event)
            return False
        if any(known):
            dup = page["uid"][known.index(True)]
            raise InvalidDocument(
                f"{doc_label('event_page', page)} mixes new events with stored event {dup!r}; "
                "re-insert whole pages or only new events"
            )
        table.append(page)
        for row, uid in enumerate(page["uid"]):
            self.event_uids[uid] = (page, row)
        self.ordered.append(("event_page", page))
        return True

    def _put_datum_page(self, page: dict) -> bool:
        if page["resource"] not in self.resources:
            raise InvalidDocument(
                f"{doc_label('datum_page', page)} refers to resource {page['resource']!r} which "
                f"run {self.start['uid']!r} does not hold; insert the resource first"
            )
        ids = page["datum_id"]
        if all(i in self.datum_ids for i in ids):
            for datum in datum_page_rows(page):
                stored_page, row = self.datum_ids[datum["datum_id"]]
                check_reinsert("datum", datum_page_rows(stored_page)[row], datum)
            return False
        for row, datum_id in enumerate(ids):
            self.datum_ids[datum_id] = (page, row)
        self.ordered.append(("datum_page", page))
        return True


class TableReads:
    """``event_chunks`` and ``read_events`` of stores that keep :class:`EventTable` s (the
    memory store, the files store): they provide ``_table(descriptor_uid)``, ``_lock`` and
    ``chunk_rows``."""

    chunk_rows: int
    _lock: Any

    def _table(self, descriptor_uid: str) -> EventTable:
        raise NotImplementedError

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        with self._lock:
            return self._table(descriptor_uid).chunks(self.chunk_rows)

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        with self._lock:
            return self._table(descriptor_uid).read(fields, seq_range, uids)


class MemoryStore(MemoryAnnotations, TableReads, DocumentStore):
    """A store that keeps every document in memory; fast, and gone with the process.

    Parameters
    ----------
    validate : bool
        Check documents against event-model's schemas on insert.
    chunk_rows : int
        Events per dask chunk when a stream is read.
    """

    def __init__(self, *, validate: bool = True, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        MemoryAnnotations.__init__(self)
        self.validate = validate
        self.chunk_rows = chunk_rows
        self._runs: dict[str, RunDocuments] = {}
        self._owner: dict[str, str] = {}  # descriptor / resource uid -> run uid
        self._lock = threading.RLock()
        self._version = 0  # counts changes: kept search answers are for one version
        self._matches = RecentMatches()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"], state["_matches"], state["_annotation_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._annotation_lock = threading.RLock()
        self._matches = RecentMatches()

    def _annotated_run(self, run_uid: str) -> None:
        self._get(run_uid)

    def _annotations_changed(self) -> None:
        with self._lock:
            self._version += 1  # kept search answers may name annotations

    # -- writing --------------------------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        with self._lock:
            self._version += 1
            if kind == "start":
                if doc["uid"] in self._runs:
                    self._runs[doc["uid"]].put(kind, doc)
                else:
                    self._runs[doc["uid"]] = RunDocuments(doc)
                return
            run = self._run_for(kind, doc)
            run.check_open(kind, doc)
            run.put(kind, doc)
            if kind in ("descriptor", "resource", "stream_resource"):
                self._owner[doc["uid"]] = run.start["uid"]

    def _run_for(self, kind: str, doc: dict) -> RunDocuments:
        if kind in ("event_page", "datum_page", "stream_datum"):
            parent = {
                "event_page": "descriptor",
                "datum_page": "resource",
                "stream_datum": "stream_resource",
            }[kind]
            run_uid = self._owner.get(doc[parent])
            if run_uid is None:
                raise InvalidDocument(
                    f"{doc_label(kind, doc)} refers to {parent} {doc[parent]!r}, which no run in "
                    f"this store holds; insert the {parent} (and its run's start) first"
                )
        else:
            run_uid = doc.get("run_start")
            if run_uid not in self._runs:
                raise InvalidDocument(
                    f"{doc_label(kind, doc)} refers to run_start {run_uid!r}, which this store "
                    "does not hold; insert the run's start document first"
                )
        return self._runs[run_uid]

    # -- reading --------------------------------------------------------------------------

    def _get(self, run_uid: str) -> RunDocuments:
        try:
            return self._runs[run_uid]
        except KeyError:
            raise RunNotFound(f"no run with uid {run_uid!r} in this store") from None

    def descriptor_run(self, descriptor_uid: str) -> str:
        run_uid = self._owner.get(descriptor_uid)
        if run_uid is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r} in this store")
        return run_uid

    def resource_run(self, resource_uid: str) -> str:
        run_uid = self._owner.get(resource_uid)
        if run_uid is None or resource_uid not in self._runs[run_uid].resources:
            raise ResourceNotFound(f"no resource with uid {resource_uid!r} in this store")
        return run_uid

    def _table(self, descriptor_uid: str) -> EventTable:
        run_uid = self._owner.get(descriptor_uid)
        if run_uid is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r} in this store")
        return self._runs[run_uid].tables[descriptor_uid]

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        with self._lock:
            version = self._version
        return self._matches.select(version, self._records, query, sort, skip, limit, self)

    def _records(self) -> list[RunRecord]:
        with self._lock:
            return [r.record for r in self._runs.values()]

    def count(self, query: Query | None = None) -> int:
        if query is None:
            return len(self._runs)
        return len(self.runs(query))

    def run(self, uid: str) -> RunRecord:
        return self._get(uid).record

    def descriptors(self, run_uid: str) -> list[dict]:
        with self._lock:
            return self._get(run_uid).descriptors()

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        with self._lock:
            return iter(self._get(run_uid).replay())

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        try:
            return self._get(run_uid).resources[resource_uid]
        except KeyError:
            raise ResourceNotFound(f"run {run_uid!r} has no resource {resource_uid!r}") from None

    def summary(self, run_uid: str) -> dict[str, dict[str, dict]]:
        run = self._get(run_uid)
        with self._lock:
            if run.summary is None or run.summary[0] != len(run.ordered):
                run.summary = (len(run.ordered), super().summary(run_uid))
            summary = {stream: dict(fields) for stream, fields in run.summary[1].items()}
            for stream, fields in run.stored_summary.items():
                summary.setdefault(stream, {}).update(fields)
            return summary

    def set_summary(self, run_uid: str, stream: str, field: str, stats: dict) -> None:
        with self._lock:
            self._get(run_uid).stored_summary.setdefault(stream, {})[field] = dict(stats)
            self._version += 1
