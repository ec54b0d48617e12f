"""Reading events: chunk plans from stop documents, and columns from raw BSON.

Events are one MongoDB document each (the normalized layout). A stream's chunks are
``seq_num`` ranges; their row counts come, without touching the events, from the stop
document's ``num_events`` when a stream has one descriptor (the RunEngine numbers its events
1..N), and otherwise from one aggregation over all the run's remaining descriptors at once.
Columns come from one ``find`` per chunk whose raw BSON batches are decoded by
:mod:`intake_broker_mongo.bsoncolumns`; rows are put in ``seq_num`` order on the client, so no
server-side sort (and no index on ``seq_num``) is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pymongo.collection import Collection

from intake_broker.store import Chunk, EventColumns

from .bsoncolumns import decode_columns

#: Rows per chunk never exceed this, whatever their size.
MAX_CHUNK_ROWS = 250_000
#: Target decoded bytes per chunk when ``chunk_rows`` is not given (dask's advice: ~100 MB).
DEFAULT_CHUNK_BYTES = 64 * 2**20
_STRING_BYTES = 64  # a guess for strings and datum ids


def row_bytes(descriptor: Mapping[str, Any]) -> int:
    """Estimated decoded bytes of one event of ``descriptor`` (values and timestamps)."""
    total = 16  # seq_num and time
    for data_key in descriptor.get("data_keys", {}).values():
        if data_key.get("external") or data_key.get("dtype") == "string":
            total += _STRING_BYTES
        else:
            shape = data_key.get("shape") or []
            total += 8 * math.prod(int(n) for n in shape if n is not None and int(n) > 0)
        total += 8  # its timestamp
    return total


def rows_per_chunk(descriptor: Mapping[str, Any], chunk_rows: int | None, chunk_bytes: int) -> int:
    """Rows per chunk: ``chunk_rows`` if given, else as many as fit ``chunk_bytes``."""
    if chunk_rows:
        return max(1, int(chunk_rows))
    return max(1, min(MAX_CHUNK_ROWS, chunk_bytes // row_bytes(descriptor)))


def contiguous_chunks(descriptor: str, first: int, last: int, rows: int) -> list[Chunk]:
    """Chunks of ``rows`` events covering seq_num ``first..last``, every number present."""
    return [
        Chunk(descriptor, lo, min(lo + rows, last + 1), min(lo + rows, last + 1) - lo)
        for lo in range(first, last + 1, rows)
    ]


def chunk_plan(
    descriptors: Sequence[Mapping[str, Any]],
    stop: Mapping[str, Any] | None,
    events: Collection,
    rows_of: Mapping[str, int],
) -> dict[str, list[Chunk]]:
    """The chunks of every descriptor of one run, with at most two aggregations.

    ``rows_of`` gives the rows per chunk of each descriptor.
    """
    by_stream: dict[str, list[str]] = {}
    for descriptor in descriptors:
        by_stream.setdefault(descriptor.get("name", "primary"), []).append(descriptor["uid"])
    num_events = (stop or {}).get("num_events") or {}
    plan: dict[str, list[Chunk]] = {d["uid"]: [] for d in descriptors}
    unknown: list[str] = []
    for name, uids in by_stream.items():
        count = num_events.get(name)
        if len(uids) == 1 and isinstance(count, int) and not isinstance(count, bool):
            plan[uids[0]] = contiguous_chunks(uids[0], 1, count, rows_of[uids[0]])
        else:
            unknown += uids
    if not unknown:
        return plan
    ranges = events.aggregate(
        [
            {"$match": {"descriptor": {"$in": unknown}}},
            {
                "$group": {
                    "_id": "$descriptor",
                    "n": {"$sum": 1},
                    "lo": {"$min": "$seq_num"},
                    "hi": {"$max": "$seq_num"},
                }
            },
        ]
    )
    gappy = []
    for found in ranges:
        uid, n, lo, hi = found["_id"], found["n"], found["lo"], found["hi"]
        if isinstance(lo, int) and isinstance(hi, int) and n == hi - lo + 1:
            plan[uid] = contiguous_chunks(uid, lo, hi, rows_of[uid])
        else:
            gappy.append(uid)
    if gappy:
        plan.update(_bucketed_chunks(events, gappy, rows_of))
    return plan


def _bucketed_chunks(
    events: Collection, uids: list[str], rows_of: Mapping[str, int]
) -> dict[str, list[Chunk]]:
    """Exact chunks when seq_nums have gaps or repeats: events counted per seq_num bucket."""
    out: dict[str, list[Chunk]] = {uid: [] for uid in uids}
    branches = [{"case": {"$eq": ["$descriptor", uid]}, "then": rows_of[uid]} for uid in uids]
    buckets = events.aggregate(
        [
            {"$match": {"descriptor": {"$in": uids}}},
            {
                "$group": {
                    "_id": {
                        "d": "$descriptor",
                        "b": {
                            "$floor": {
                                "$divide": [
                                    {"$subtract": ["$seq_num", 1]},
                                    {"$switch": {"branches": branches}},
                                ]
                            }
                        },
                    },
                    "n": {"$sum": 1},
                }
            },
        ]
    )
    for found in buckets:
        if not isinstance(found["_id"].get("b"), int | float):
            continue  # events without a numeric seq_num: no seq_num range can hold them
        uid, bucket, n = found["_id"]["d"], int(found["_id"]["b"]), found["n"]
        rows = rows_of[uid]
        out[uid].append(Chunk(uid, 1 + bucket * rows, 1 + (bucket + 1) * rows, n))
    for chunks in out.values():
        chunks.sort(key=lambda c: c.seq_start)
    return out


def event_filter(descriptor: str, seq_range: tuple[int, int] | None) -> dict[str, Any]:
    query: dict[str, Any] = {"descriptor": descriptor}
    if seq_range is not None:
        query["seq_num"] = {"$gte": int(seq_range[0]), "$lt": int(seq_range[1])}
    return query


def read_columns(
    events: Collection,
    descriptor: Mapping[str, Any],
    *,
    fields: Sequence[str] | None,
    seq_range: tuple[int, int] | None,
    uids: bool,
    extra: Iterable[tuple[str, ...]] = (),
    whole: bool = False,
) -> tuple[EventColumns, dict[tuple[str, ...], np.ndarray]]:
    """One ``find`` for a descriptor's events in ``seq_range``, decoded into columns.

    The whole document is fetched when every data key is wanted (a projection costs the
    server more than the few bytes it saves); otherwise only the wanted keys. ``extra`` paths
    (such as ``("_id",)``) are decoded too and returned, in seq_num order, beside the columns.
    ``whole`` says that ``seq_range`` covers every event the descriptor is known to have: the
    server is then asked for the descriptor's events without a range (cheaper for servers that
    re-check every condition per document) and the range is applied here.
    """
    all_keys = list(descriptor["data_keys"])
    keys = all_keys if fields is None else [k for k in fields if k in descriptor["data_keys"]]
    external = [k for k in keys if descriptor["data_keys"][k].get("external")]
    extra = list(extra)
    paths = [
        ("seq_num",),
        ("time",),
        *(("data", k) for k in keys),
        *(("timestamps", k) for k in keys),
        *(("filled", k) for k in external),
        *extra,
    ]
    if uids:
        paths.append(("uid",))
    projection = None
    if set(keys) != set(all_keys) or not keys:
        projection = {"_id": 0, **{".".join(p): 1 for p in paths}}
    batches = events.find_raw_batches(
        event_filter(descriptor["uid"], None if whole else seq_range),
        projection,
        batch_size=100_000,
    )
    n, columns = decode_columns(batches, paths)
    seq_num = columns[("seq_num",)]
    if seq_num.dtype.kind not in "iu":
        seq_num = seq_num.astype(np.int64)
    order = None
    if whole and seq_range is not None:
        inside = (seq_num >= seq_range[0]) & (seq_num < seq_range[1])
        if not bool(inside.all()):
            order = np.flatnonzero(inside)
    if n > 1 and not bool((np.diff(seq_num if order is None else seq_num[order]) >= 0).all()):
        kept = seq_num if order is None else seq_num[order]
        sort = np.argsort(kept, kind="stable")
        order = sort if order is None else order[sort]

    def take(path: tuple[str, ...]) -> np.ndarray:
        column = columns[path]
        return column if order is None else column[order]

    time = take(("time",))
    result = EventColumns(
        seq_num=seq_num if order is None else seq_num[order],
        time=time if time.dtype.kind == "f" else time.astype(np.float64),
        data={k: take(("data", k)) for k in keys},
        timestamps={k: take(("timestamps", k)) for k in keys},
        filled={k: take(("filled", k)) for k in external},
        uid=take(("uid",)) if uids else None,
    )
    return result, {path: take(path) for path in extra}
