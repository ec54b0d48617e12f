"""``PendingStore``: a store that does not exist yet and is made by its first write.

A YAML entry with ``create: true`` whose store is not there opens as a ``PendingStore``:
opening creates nothing on disk; reads answer as an empty store (and switch to the real store
as soon as it exists, made by another process, say); the first ``insert`` (or ``put``) makes
the real store with ``factory()`` and every call goes to it from then on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from intake_broker.store.contract import DocumentStore
from intake_broker.store.memory import MemoryStore
from intake_broker.store.wrapper import StoreWrapper


class PendingStore(StoreWrapper):
    """A store made by its first write.

    Parameters
    ----------
    factory : callable
        Makes (creates) the real store.
    exists : callable
        Whether the real store exists now (then reads open it rather than answer empty).
    location : str
        Where the store will be, for reprs and messages.
    """

    def __init__(
        self, factory: Callable[[], DocumentStore], exists: Callable[[], bool], location: str
    ):
        self._factory = factory
        self._exists = exists
        self.location = location
        self._real: DocumentStore | None = None
        self._empty = MemoryStore()
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """Whether the real store exists (made here, or found since)."""
        return self._real is not None or self._exists()

    @property
    def store(self) -> DocumentStore:  # type: ignore[override]
        """The real store once it exists; until then an empty store answering reads."""
        if self._real is None and self._exists():
            self._make()
        return self._real if self._real is not None else self._empty

    def _make(self) -> DocumentStore:
        with self._lock:
            if self._real is None:
                self._real = self._factory()
            return self._real

    def insert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Store one document, making the store first if it does not exist yet."""
        self._make().insert(name, doc)

    def put(self, kind: str, doc: dict) -> None:
        self._make().put(kind, doc)

    def supports(self, ability: type) -> bool:
        return self.store.supports(ability)

    def close(self) -> None:
        if self._real is not None:
            self._real.close()

    def __reduce__(self) -> tuple:
        # the real store once made (pickled as it pickles itself), else a new pending store
        if self._real is not None:
            return (_same, (self._real,))
        return (PendingStore, (self._factory, self._exists, self.location))

    def __repr__(self) -> str:
        state = "created" if self._real is not None else "created by its first write"
        return f"<PendingStore {self.location} ({state})>"


def _same(store: DocumentStore) -> DocumentStore:
    return store
