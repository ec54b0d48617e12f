"""``RemoteColumns``: event columns fetched group by group, as they are first used.

A stream's chunk reads ask for data *or* timestamps, never both, and the index (``seq_num``,
``time``) is read once per stream; fetching only the group that is used halves what crosses the
network. The values equal those of the store's ``read_events``; only when they travel differs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from intake_broker.store import EventColumns

if TYPE_CHECKING:
    from .store import RemoteStore

_GROUPS = ("index", "uid", "data", "timestamps", "filled")


class RemoteColumns(EventColumns):
    """Events of one descriptor; a group is fetched from the server on first access."""

    def __init__(
        self,
        store: RemoteStore,
        descriptor: str,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        uids: bool,
        loaded: dict[str, dict] | None = None,
        rows: int | None = None,
    ):
        self._store = store
        self._descriptor = descriptor
        self._fields = None if fields is None else list(fields)
        self._seq_range = seq_range
        self._uids = uids
        self._loaded: dict[str, dict] = dict(loaded or {})
        self._rows = rows
        self._lock = threading.Lock()

    def _group(self, group: str) -> dict:
        with self._lock:
            if group not in self._loaded:
                self._fetch([group])
            return self._loaded[group]

    def _fetch(self, groups: list[str]) -> None:
        rows, columns = self._store.fetch_columns(
            self._descriptor, self._fields, self._seq_range, groups
        )
        self._rows = rows
        for group in groups:
            self._loaded[group] = {key: value for (g, key), value in columns.items() if g == group}

    def load(self, groups: Sequence[str]) -> RemoteColumns:
        """Fetch ``groups`` now, in one request."""
        with self._lock:
            missing = [g for g in groups if g not in self._loaded]
            if missing:
                self._fetch(missing)
        return self

    # EventColumns' fields, here read-only properties that fetch their group on first use
    @property
    def seq_num(self) -> np.ndarray:  # type: ignore[override]
        return self._group("index")["seq_num"]

    @property
    def time(self) -> np.ndarray:  # type: ignore[override]
        return self._group("index")["time"]

    @property
    def data(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._group("data")

    @property
    def timestamps(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._group("timestamps")

    @property
    def filled(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._group("filled")

    @property
    def uid(self) -> np.ndarray | None:  # type: ignore[override]
        return self._group("uid").get(None) if self._uids else None

    def __len__(self) -> int:
        if self._rows is None:
            self._group("index")
        assert self._rows is not None
        return self._rows

    def __repr__(self) -> str:
        return (
            f"<RemoteColumns of descriptor {self._descriptor[:8]}: {self._rows} rows, "
            f"loaded {sorted(self._loaded)}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # What is loaded travels; the rest is fetched on the other side (the store pickles
        # by URL).
        return (
            RemoteColumns,
            (
                self._store,
                self._descriptor,
                self._fields,
                self._seq_range,
                self._uids,
                self._loaded,
                self._rows,
            ),
        )
