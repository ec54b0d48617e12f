"""Runs sent to dask workers by reference, with the store reopened once per worker process.

A pickled :class:`~intake_broker.views.catalog.Run` carries its store, and each store pickles
by its arguments (a path, a URI) and reopens on unpickling: correct, but every task then pays
for opening the store (engines, connections, schema reads). A :class:`StoreTicket` is the
store's pickle made once per pipeline on the client and a token naming it (SHA-256 of those
bytes); the pipeline scatters it to the workers once. A :class:`RunTicket` is a run by
reference: the token and the run's start and stop documents. On the worker,
:func:`open_store` keeps the stores it opened by token (:data:`STORE_CACHE_SIZE` of them per
process), so every later run of the same store reuses it. A guarded store travels with its
principal and keeps checking on the worker.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intake_broker.store.contract import DocumentStore, RunRecord

#: The most stores one process keeps open for shipped runs.
STORE_CACHE_SIZE = 16

_STORES: OrderedDict[str, DocumentStore] = OrderedDict()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class StoreTicket:
    """A store as its pickle and a token (SHA-256 of the pickle) naming it."""

    token: str
    data: bytes

    @classmethod
    def of(cls, store: DocumentStore) -> StoreTicket:
        """The ticket of ``store`` (pickled now, on the client)."""
        data = pickle.dumps(store, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(hashlib.sha256(data).hexdigest(), data)


def open_store(ticket: StoreTicket) -> DocumentStore:
    """The store ``ticket`` names, unpickled the first time this process sees it and kept."""
    with _LOCK:
        store = _STORES.get(ticket.token)
        if store is not None:
            _STORES.move_to_end(ticket.token)
            return store
    store = pickle.loads(ticket.data)  # noqa: S301 -- our own pickle, made by the client
    with _LOCK:
        kept = _STORES.setdefault(ticket.token, store)
        while len(_STORES) > STORE_CACHE_SIZE:
            _STORES.popitem(last=False)  # dropped, not closed: a task may still read it
    return kept


def cached_stores() -> int:
    """How many stores this process keeps for shipped runs."""
    return len(_STORES)


@dataclass(frozen=True)
class RunTicket:
    """A run by reference: the token of its store's ticket, its start and stop documents and
    its asset options."""

    token: str
    start: dict
    stop: dict | None
    assets: dict

    @property
    def uid(self) -> str:
        return str(self.start["uid"])

    @classmethod
    def of(cls, run: Any, stores: dict[int, StoreTicket]) -> tuple[RunTicket, StoreTicket]:
        """The ticket of ``run`` and of its store; ``stores`` caches store tickets by
        ``id(store)`` (the store is pickled once per pipeline, not once per run)."""
        store = run.store
        ticket = stores.get(id(store))
        if ticket is None:
            ticket = stores[id(store)] = StoreTicket.of(store)
        assets = dict(getattr(run, "_asset_options", {}) or {})
        return cls(ticket.token, run.start, run.stop, assets), ticket

    def open(self, stores: Mapping[str, StoreTicket]) -> Any:
        """The run, read through this process's copy of its store (``stores``: the tickets
        shipped with the task, by token)."""
        from intake_broker.views.catalog import Run

        store = open_store(stores[self.token])
        return Run(store, RunRecord(self.start, self.stop), assets=self.assets)
