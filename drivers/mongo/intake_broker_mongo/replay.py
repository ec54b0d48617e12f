"""Replaying a run: every document in the order it was written, events as pages.

MongoDB gives every stored document an ObjectId whose bytes sort in insertion order (seconds,
then a per-process counter), so a run written by one RunEngine comes back exactly in the
order it was emitted: the order :class:`~intake_broker.store.memory.MemoryStore` keeps. Runs whose
``_id`` s are not ObjectIds are ordered by ``time`` instead (documents without a time, such
as resources, right after the start).

Events are read chunk by chunk as columns (never one Python dict per event) and merged across
descriptors: each page holds the rows of one descriptor up to the next document of another.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import event_model
import numpy as np
from bson import ObjectId

from intake_broker.errors import RunNotFound

from .events import read_columns
from .layout import (
    DATUM,
    DESCRIPTOR,
    EVENT,
    RESOURCE,
    RUN_START,
    RUN_STOP,
    STREAM_DATUM,
    STREAM_RESOURCE,
)

if TYPE_CHECKING:
    from .store import MongoStore

#: Events per emitted event_page at most.
PAGE_ROWS = 10_000


@dataclass
class _Block:
    """Sorted rows of one source: ``keys`` and a way to emit rows ``lo:hi`` as documents."""

    keys: np.ndarray
    emit: Any  # (lo, hi) -> list[tuple[str, dict]]


def _oid_key(value: Any) -> bytes | None:
    return value.binary.rstrip(b"\x00") if isinstance(value, ObjectId) else None


class _Ordering:
    """Keys documents sort by: ObjectId bytes when every ``_id`` is one, else ``time``."""

    def __init__(self, docs: Sequence[dict], start_time: float):
        self.by_id = all(isinstance(doc.get("_id"), ObjectId) for doc in docs)
        self.start_time = start_time

    def key(self, doc: dict) -> Any:
        if self.by_id:
            return _oid_key(doc["_id"])
        return float(doc.get("time", self.start_time))

    def keys(self, ids: np.ndarray, times: np.ndarray) -> np.ndarray:
        if not self.by_id:
            return np.asarray(times, np.float64)
        if ids.dtype.kind == "V":
            return ids.view("S12")
        return np.array([_oid_key(v) or str(v).encode() for v in ids])  # a few foreign _ids


def _single(kind: str, doc: dict, key: Any) -> _Block:
    doc = {k: v for k, v in doc.items() if k != "_id"}
    return _Block(np.array([key]), lambda lo, hi: [(kind, doc)])


def _datum_blocks(datums: list[dict], ordering: _Ordering) -> list[_Block]:
    """Consecutive datums of one resource become one datum_page block."""
    datums = sorted(datums, key=ordering.key)
    blocks: list[_Block] = []
    start = 0
    for i in range(1, len(datums) + 1):
        if i == len(datums) or datums[i]["resource"] != datums[start]["resource"]:
            rows = [{k: v for k, v in d.items() if k != "_id"} for d in datums[start:i]]
            keys = np.array([ordering.key(d) for d in datums[start:i]])
            blocks.append(
                _Block(
                    keys,
                    lambda lo, hi, rows=rows: [
                        ("datum_page", event_model.pack_datum_page(*rows[lo:hi]))
                    ],
                )
            )
            start = i
    return blocks


def _event_blocks(store: MongoStore, descriptor: dict, ordering: _Ordering) -> Iterator[_Block]:
    """One block per chunk of a descriptor's events, rows sorted by the ordering key."""
    events = store._collection(EVENT)
    for chunk in store.event_chunks(descriptor["uid"]):
        with store._guard(EVENT):
            columns, extra = read_columns(
                events,
                descriptor,
                fields=None,
                uids=True,
                seq_range=(chunk.seq_start, chunk.seq_stop),
                extra=[("_id",)],
            )
        keys = ordering.keys(extra[("_id",)], columns.time)
        order = np.argsort(keys, kind="stable")
        if len(order):
            yield _Block(keys[order], _page_maker(descriptor["uid"], columns, order))


def _page_maker(descriptor: str, columns, order: np.ndarray):
    def emit(lo: int, hi: int) -> list[tuple[str, dict]]:
        pages = []
        for a in range(lo, hi, PAGE_ROWS):
            rows = order[a : min(hi, a + PAGE_ROWS)]
            pages.append(
                (
                    "event_page",
                    {
                        "descriptor": descriptor,
                        "uid": columns.uid[rows].tolist(),
                        "seq_num": columns.seq_num[rows].tolist(),
                        "time": columns.time[rows].tolist(),
                        "data": {k: _listed(v[rows]) for k, v in columns.data.items()},
                        "timestamps": {k: _listed(v[rows]) for k, v in columns.timestamps.items()},
                        "filled": {k: _listed(v[rows]) for k, v in columns.filled.items()},
                    },
                )
            )
        return pages

    return emit


def _listed(column: np.ndarray) -> list:
    if column.dtype.kind == "O":
        return [v.tolist() if isinstance(v, np.ndarray) else v for v in column]
    return column.tolist()


def _merge(sources: list[Iterator[_Block]]) -> Iterator[tuple[str, dict]]:
    """k-way merge of sorted block streams; emits runs of rows up to the next other key."""
    current: dict[int, tuple[_Block, int]] = {}
    heap: list[tuple[Any, int]] = []
    for i, source in enumerate(sources):
        block = next(source, None)
        if block is not None:
            current[i] = (block, 0)
            heapq.heappush(heap, (block.keys[0], i))
    while heap:
        _, i = heapq.heappop(heap)
        block, pos = current[i]
        if heap:
            hi = int(np.searchsorted(block.keys, heap[0][0], side="left"))
            hi = min(len(block.keys), max(hi, pos + 1))
        else:
            hi = len(block.keys)
        yield from block.emit(pos, hi)
        if hi == len(block.keys):
            block = next(sources[i], None)
            hi = 0
            if block is None or not len(block.keys):
                del current[i]
                continue
        current[i] = (block, hi)
        heapq.heappush(heap, (block.keys[hi], i))


def _legacy_resources(store: MongoStore, descriptors: list[dict]) -> list[dict]:
    """Resources without ``run_start`` (old databases), found through the events' datum ids."""
    datum_ids: set[str] = set()
    for descriptor in descriptors:
        for key, data_key in descriptor["data_keys"].items():
            if data_key.get("external"):
                with store._guard(EVENT):
                    datum_ids.update(
                        store._collection(EVENT).distinct(
                            f"data.{key}", {"descriptor": descriptor["uid"]}
                        )
                    )
    if not datum_ids:
        return []
    with store._guard(DATUM):
        resource_uids = store._collection(DATUM).distinct(
            "resource", {"datum_id": {"$in": sorted(map(str, datum_ids))}}
        )
        return list(store._collection(RESOURCE).find({"uid": {"$in": resource_uids}}))


def asset_documents(
    store: MongoStore, run_uid: str, descriptors: list[dict]
) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """Resources, datums, stream_resources and stream_datums of a run (with their ``_id``)."""
    with store._guard(RESOURCE):
        resources = list(store._collection(RESOURCE).find({"run_start": run_uid}))
        stream_resources = list(store._collection(STREAM_RESOURCE).find({"run_start": run_uid}))
    if not resources and any(
        dk.get("external") for d in descriptors for dk in d["data_keys"].values()
    ):
        resources = _legacy_resources(store, descriptors)
    with store._guard(DATUM):
        datums = (
            list(
                store._collection(DATUM).find({"resource": {"$in": [r["uid"] for r in resources]}})
            )
            if resources
            else []
        )
        stream_datums = (
            list(
                store._collection(STREAM_DATUM).find(
                    {"stream_resource": {"$in": [r["uid"] for r in stream_resources]}}
                )
            )
            if stream_resources
            else []
        )
    return resources, datums, stream_resources, stream_datums


def replay(store: MongoStore, run_uid: str) -> Iterator[tuple[str, dict]]:
    """Every document of a run: start first, stop last, the rest in written order."""
    with store._guard(RUN_START):
        start = store._collection(RUN_START).find_one({"uid": run_uid})
        if start is None:
            raise RunNotFound(f"no run with uid {run_uid!r} in this database")
        stop = store._collection(RUN_STOP).find_one({"run_start": run_uid})
        descriptors = list(store._collection(DESCRIPTOR).find({"run_start": run_uid}))
    resources, datums, stream_resources, stream_datums = asset_documents(
        store, run_uid, descriptors
    )
    singles = (
        [("descriptor", d) for d in descriptors]
        + [("resource", r) for r in resources]
        + [("stream_resource", r) for r in stream_resources]
        + [("stream_datum", d) for d in stream_datums]
    )
    with store._guard(EVENT):
        sample_ids = [
            store._collection(EVENT).find_one({"descriptor": d["uid"]}, {"_id": 1})
            for d in descriptors
        ]
    ordering = _Ordering(
        [start, *(doc for _, doc in singles), *datums, *(s for s in sample_ids if s is not None)],
        start.get("time", 0.0),
    )
    for descriptor in descriptors:
        store._cache_descriptor(descriptor)
    sources: list[Iterator[_Block]] = [
        iter([_single(kind, doc, ordering.key(doc))]) for kind, doc in singles
    ]
    sources.append(iter(_datum_blocks(datums, ordering)))
    sources += [
        _event_blocks(store, {k: v for k, v in d.items() if k != "_id"}, ordering)
        for d in descriptors
    ]
    start.pop("_id", None)
    yield "start", start
    yield from _merge(sources)
    if stop is not None:
        stop.pop("_id", None)
        yield "stop", stop
