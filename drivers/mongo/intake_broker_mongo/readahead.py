"""Read-ahead of small streams: a finished run's descriptor read whole once, then sliced.

Opening a stream reads its ``time`` / ``seq_num`` index, and reading it then reads its
columns: two passes over the same event documents, and for a server the cost is per document,
not per byte. When a finished run's descriptor holds little data (an estimate from its data
keys and row count, at most ``limit`` bytes), the store reads every column in the first pass
and answers the following reads of that descriptor from memory, as the files driver does with
a parsed run file. Entries expire after ``ttl`` seconds and the cache holds at most
``capacity`` bytes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from intake_broker.store import EventColumns


def _nbytes(columns: EventColumns) -> int:
    arrays = [
        columns.seq_num,
        columns.time,
        *columns.data.values(),
        *columns.timestamps.values(),
        *columns.filled.values(),
    ]
    total = sum(a.nbytes for a in arrays)
    return total + sum(64 * a.size for a in arrays if a.dtype == object)


class ReadAhead:
    """Whole-descriptor columns kept for a short while, bounded in bytes."""

    def __init__(self, limit: int, capacity: int, ttl: float = 30.0):
        self.limit = limit
        self.capacity = capacity
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, int, EventColumns]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, descriptor: str) -> EventColumns | None:
        with self._lock:
            entry = self._entries.get(descriptor)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(descriptor, None)
                return None
            self._entries.move_to_end(descriptor)
            return entry[2]

    def put(self, descriptor: str, columns: EventColumns) -> None:
        size = _nbytes(columns)
        if size > self.capacity:
            return
        with self._lock:
            self._entries[descriptor] = (time.monotonic() + self.ttl, size, columns)
            self._entries.move_to_end(descriptor)
            while sum(e[1] for e in self._entries.values()) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, descriptor: str) -> None:
        with self._lock:
            self._entries.pop(descriptor, None)


def sliced(
    columns: EventColumns, fields: Sequence[str] | None, seq_range: tuple[int, int] | None
) -> EventColumns:
    """Copies of the rows in ``seq_range`` and the ``fields`` of whole-descriptor columns."""
    lo, hi = (
        (0, len(columns.seq_num))
        if seq_range is None
        else (
            np.searchsorted(columns.seq_num, seq_range[0], side="left"),
            np.searchsorted(columns.seq_num, seq_range[1], side="left"),
        )
    )
    keys = list(columns.data) if fields is None else [k for k in fields if k in columns.data]
    return EventColumns(
        seq_num=columns.seq_num[lo:hi].copy(),
        time=columns.time[lo:hi].copy(),
        data={k: columns.data[k][lo:hi].copy() for k in keys},
        timestamps={k: columns.timestamps[k][lo:hi].copy() for k in keys},
        filled={k: v[lo:hi].copy() for k, v in columns.filled.items() if k in keys},
        uid=None,
    )
