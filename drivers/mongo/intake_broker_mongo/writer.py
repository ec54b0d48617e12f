"""Writing documents in the normalized layout, with the store contract's integrity rules.

Every check happens before anything is written: a document whose uid is stored is compared
with the stored one (identical: nothing happens; different: ``DocumentConflict``); a document
referring to something the database does not hold is refused with ``InvalidDocument``. Pages
are stored as their rows, as suitcase-mongo stores them, so databroker reads what we write.
Unique indexes settle races between writers: a duplicate-key error is turned back into the same
comparison.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, overload

import numpy as np
import pymongo.errors
from pymongo.collection import Collection

from intake_broker.errors import InvalidDocument
from intake_broker.store.documents import (
    check_reinsert,
    datum_page_rows,
    doc_label,
    event_page_rows,
)

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

_KNOWN_LIMIT = 100_000  # uids of parents remembered to exist (they are never deleted)


def plain(value: Any) -> Any:
    """A copy of ``value`` with numpy arrays and scalars as Python lists and numbers (BSON)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@overload
def _without_id(doc: dict) -> dict: ...
@overload
def _without_id(doc: None) -> None: ...
@overload
def _without_id(doc: dict | None) -> dict | None: ...
def _without_id(doc: dict | None) -> dict | None:
    if doc is not None:
        doc.pop("_id", None)
    return doc


class NormalizedWriter:
    """Puts normalised documents (``DocumentStore.put``) into the layout's collections."""

    def __init__(
        self,
        collection: Callable[[str], Collection],
        descriptor: Callable[[str], dict | None],
        ensure_indexes: Callable[[], bool],
    ):
        self._collection = collection
        self._descriptor = descriptor
        self._ensure_indexes = ensure_indexes  # returns whether the unique indexes exist
        self._unique = False
        self._known: dict[str, set[str]] = {
            RUN_START: set(),
            RESOURCE: set(),
            STREAM_RESOURCE: set(),
        }
        self._lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------

    def _exists(self, collection: str, uid: str) -> bool:
        with self._lock:
            if uid in self._known[collection]:
                return True
        found = self._collection(collection).find_one({"uid": uid}, {"_id": 1}) is not None
        if found:
            self._remember(collection, uid)
        return found

    def _remember(self, collection: str, uid: str) -> None:
        with self._lock:
            known = self._known[collection]
            if len(known) >= _KNOWN_LIMIT:
                known.clear()
            known.add(uid)

    def _require(self, kind: str, doc: Mapping, collection: str, field: str, what: str) -> None:
        uid = doc.get(field)
        if not isinstance(uid, str) or not self._exists(collection, uid):
            raise InvalidDocument(
                f"{doc_label(kind, doc)} refers to {what} {uid!r}, which this database does "
                f"not hold; insert the {what} first"
            )

    def _insert_one(self, kind: str, collection: str, doc: dict, key: Mapping) -> None:
        """Insert unless a document matches ``key``; then it must be the same document."""
        target = self._collection(collection)
        existing = _without_id(target.find_one(dict(key)))
        if existing is not None:
            check_reinsert(kind, existing, doc)
            return
        try:
            target.insert_one(dict(doc))  # a copy: pymongo adds _id to what it inserts
        except pymongo.errors.DuplicateKeyError:  # another writer won the race, or the uid
            existing = _without_id(target.find_one(dict(key)))  # is taken by another doc
            if existing is None:
                existing = _without_id(target.find_one({"uid": doc.get("uid")}))
            check_reinsert(kind, existing or {}, doc)

    def _insert_rows(self, kind: str, collection: str, rows: list[dict], id_field: str) -> None:
        """Insert a page's rows: all new, or all stored and equal; never some of each."""
        ids = [row[id_field] for row in rows]
        target = self._collection(collection)
        if len(rows) == 1 and self._unique:  # one row: the unique index checks it atomically
            try:
                target.insert_one(dict(rows[0]))
                return
            except pymongo.errors.DuplicateKeyError:
                pass  # stored already: compare below
        stored = {doc[id_field]: _without_id(doc) for doc in target.find({id_field: {"$in": ids}})}
        if stored and len(stored) == len(set(ids)):
            for row in rows:
                existing = stored[row[id_field]]
                if kind == "event":
                    existing.setdefault("filled", {})
                check_reinsert(kind, existing, row)
            return
        if stored:
            duplicate = next(i for i in ids if i in stored)
            raise InvalidDocument(
                f"a {kind} page mixes new {kind}s with the stored {kind} {duplicate!r}; "
                f"re-insert whole pages or only new {kind}s"
            )
        try:
            target.insert_many([dict(row) for row in rows], ordered=True)
        except pymongo.errors.BulkWriteError as err:
            if any(e.get("code") != 11000 for e in err.details.get("writeErrors", [])):
                raise
            self._insert_rows(kind, collection, rows, id_field)  # raced: compare again

    # -- the kinds ------------------------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        """Store one normalised document (``kind`` from ``documents.STORED_KINDS``)."""
        self._unique = self._ensure_indexes()
        doc = plain(doc)
        if kind == "start":
            self._insert_one(kind, RUN_START, doc, {"uid": doc["uid"]})
            self._remember(RUN_START, doc["uid"])
        elif kind == "stop":
            self._require(kind, doc, RUN_START, "run_start", "run start")
            self._insert_one(kind, RUN_STOP, doc, {"run_start": doc["run_start"]})
        elif kind == "descriptor":
            self._require(kind, doc, RUN_START, "run_start", "run start")
            self._insert_one(kind, DESCRIPTOR, doc, {"uid": doc["uid"]})
        elif kind == "event_page":
            self._put_event_page(doc)
        elif kind == "resource":
            if doc.get("run_start") is not None:
                self._require(kind, doc, RUN_START, "run_start", "run start")
            self._insert_one(kind, RESOURCE, doc, {"uid": doc["uid"]})
            self._remember(RESOURCE, doc["uid"])
        elif kind == "datum_page":
            self._require(kind, doc, RESOURCE, "resource", "resource")
            self._insert_rows("datum", DATUM, datum_page_rows(doc), "datum_id")
        elif kind == "stream_resource":
            if doc.get("run_start") is not None:
                self._require(kind, doc, RUN_START, "run_start", "run start")
            self._insert_one(kind, STREAM_RESOURCE, doc, {"uid": doc["uid"]})
            self._remember(STREAM_RESOURCE, doc["uid"])
        elif kind == "stream_datum":
            self._require(kind, doc, STREAM_RESOURCE, "stream_resource", "stream_resource")
            self._insert_one(kind, STREAM_DATUM, doc, {"uid": doc["uid"]})
        else:
            raise InvalidDocument(f"cannot store a document of kind {kind!r}")

    def _put_event_page(self, page: dict) -> None:
        descriptor = self._descriptor(page["descriptor"])
        if descriptor is None:
            raise InvalidDocument(
                f"{doc_label('event_page', page)} refers to descriptor {page['descriptor']!r}, "
                "which this database does not hold; insert the descriptor first"
            )
        keys = set(descriptor["data_keys"])
        if set(page["data"]) != keys:
            extra, missing = sorted(set(page["data"]) - keys), sorted(keys - set(page["data"]))
            raise InvalidDocument(
                f"{doc_label('event_page', page)} does not match the data keys of descriptor "
                f"{descriptor['uid']!r}: unexpected {extra}, missing {missing}; every event "
                "carries exactly the keys its descriptor declares"
            )
        if page["uid"]:
            self._insert_rows("event", EVENT, event_page_rows(page), "uid")
