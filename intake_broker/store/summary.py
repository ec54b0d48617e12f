"""Data summaries: per stream and field, the min, max, mean, sum and count of the values, so
that runs can be searched by what their data showed (``summary.primary.theta.max < 5``).

For array fields the statistics are of the per-event sums ("the sum of the fccd images exceeded
1000"). Values kept in the events are summarised from the store's columns; fields kept in
external files are summarised on demand (``intake-broker summarize``) and stored by stores that
can keep them (:meth:`~intake_broker.store.DocumentStore.set_summary`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from intake_broker.queries import resolve_key
from intake_broker.store.abilities import SummaryKeeper, require

STATS = ("min", "max", "mean", "sum", "count")
#: Integers beyond this are not all exactly floats.
_EXACT_FLOAT_INT = 2**53


def field_stats(values: np.ndarray) -> dict[str, float | int] | None:
    """Statistics of one field's values (one row per event); None for non-numeric fields."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf" or values.ndim == 0:
        return None
    per_event = values.reshape(len(values), -1).sum(axis=1) if values.ndim > 1 else values
    per_event = per_event.astype(float)
    finite = per_event[np.isfinite(per_event)]
    if not finite.size:
        return {"count": 0}
    total = float(finite.sum())
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": total / finite.size,
        "sum": total,
        "count": int(finite.size),
    }


def merge_stats(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """The statistics of two parts of a field (e.g. two chunks or two descriptors) together."""
    if not a or not a.get("count"):
        return b if b else a
    if not b or not b.get("count"):
        return a
    count = a["count"] + b["count"]
    total = a["sum"] + b["sum"]
    return {
        "min": min(a["min"], b["min"]),
        "max": max(a["max"], b["max"]),
        "mean": total / count,
        "sum": total,
        "count": count,
    }


def run_summary(store, run_uid: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{stream: {field: stats}}`` for the fields kept in a run's events (not its assets),
    computed from the store's columns one descriptor at a time."""
    from intake_broker.views.datakeys import asset_kind

    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for descriptor in store.descriptors(run_uid):
        stream = summary.setdefault(descriptor.get("name", "primary"), {})
        inline = [k for k, dk in descriptor["data_keys"].items() if asset_kind(dk) is None]
        if not inline:
            continue
        columns = store.read_events(descriptor["uid"], fields=inline)
        for key in inline:
            stats = field_stats(columns.data[key]) if key in columns.data else None
            if stats is not None:
                merged = merge_stats(stream.get(key), stats)
                assert merged is not None  # field_stats never gives an empty dict
                stream[key] = merged
    return summary


def summarize_assets(run, *, store: bool = True) -> dict[str, dict[str, dict[str, Any]]]:
    """Compute the statistics of a run's asset-backed fields (frames in external files),
    reading them chunk by chunk, and keep them in the store (``store.set_summary``) so that
    ``summary.<stream>.<field>.*`` queries find them. Returns ``{stream: {field: stats}}``."""
    from intake_broker.views.datakeys import asset_kind

    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, stream in run.items():
        keys = [k for k, dk in stream.layout.data_keys.items() if asset_kind(dk) is not None]
        if not keys:
            continue
        arrays = stream(include=keys).to_dask()
        for key in keys:
            stats: dict[str, Any] | None = None
            for block in arrays[key].data.to_delayed().ravel():
                stats = merge_stats(stats, field_stats(block.compute()))
            if stats is not None:
                found.setdefault(name, {})[key] = stats
                if store:
                    keeper = require(run.store, SummaryKeeper, "keep summaries of asset data")
                    keeper.set_summary(run.uid, name, key, stats)
    return found


def summary_path(key: str) -> str | None:
    """``stream.field.stat`` when a query key addresses one number of the data summaries
    (``summary.primary.theta.max``): the path :func:`searchable_numbers` gives it; else None."""
    document, *path = resolve_key(key)
    return ".".join(path) if document == "summary" and len(path) == 3 else None


def searchable_numbers(summary: dict) -> Iterator[tuple[str, float | None]]:
    """``(stream.field.stat, number)`` for each number of a summary that a query key
    ``summary.<stream>.<field>.<stat>`` compares with, for stores that index them.

    These are exactly the numbers the generic evaluator compares there: names holding a dot
    cannot be addressed by a query key, bools are not numbers, NaN never compares (all
    skipped), and a list is compared through its elements (one pair each). A number a float
    cannot hold exactly comes with ``None``: an index cannot decide for it, the evaluator must.
    """
    for stream, fields in summary.items():
        for field, stats in fields.items() if isinstance(fields, dict) else ():
            for stat, value in stats.items() if isinstance(stats, dict) else ():
                if "." in stream or "." in field or "." in stat:
                    continue
                for number in value if isinstance(value, (list, tuple)) else (value,):
                    if isinstance(number, bool) or not isinstance(number, (int, float)):
                        continue
                    if isinstance(number, float) and math.isnan(number):
                        continue
                    exact = isinstance(number, float) or abs(number) <= _EXACT_FLOAT_INT
                    yield f"{stream}.{field}.{stat}", float(number) if exact else None
