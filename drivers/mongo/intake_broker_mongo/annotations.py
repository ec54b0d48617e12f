"""Annotations of runs in two collections of ours, beside databroker's layout (it ignores them).

``intake_broker_annotations``
    One document per annotation (``_id``: its
    :func:`~intake_broker.store.annotations.annotation_id`) holding the annotation as
    :func:`~intake_broker.store.annotations.apply_change` makes it,
    plus ``field_names`` and ``note_words`` (the case-folded words of the note) for search;
    indexed by ``run_uid``, ``tags``, ``field_names``, ``note_words`` and audience.
``intake_broker_annotation_history``
    One document per change (``_id``: ``<annotation id>:<version>``, unique), the history entry
    (who, when, before, after).

**Concurrency without transactions.** A change is first *claimed* by inserting its history
entry: the ``_id`` names the annotation and the version the change makes, so of two writers that
read the same version only one inserts (the other gets a duplicate key). The claimant then moves
the annotation from the version it read to the new one with an atomic ``find_one_and_update``
filtered on the old version (an insert for version 1). A writer that loses the claim finishes
the winner's change (the same idempotent update; so a writer killed between its two steps
leaves a change that the next writer completes), reads the annotation again and applies its
change to it, so no update is lost, and a stale ``if_version`` becomes a conflict. The history
is the record of what was decided: it is complete and ordered by version.

**Searching.** A query's top-level conjuncts on annotations (``tags contains "x"``,
``annotations.rating >= 4``, ``note text "alignment"``) are translated to filters on
``intake_broker_annotations`` (with the viewer's audience), whose matching ``run_uid`` narrow
the runs asked of ``run_start``; the generic evaluator then checks the narrowed candidates
with their annotations fetched at once. SecantusDB (the test server) has no text indexes, so
``note text`` is answered with the ``note_words`` array (``$all``), which is exact for the
evaluator's word semantics on any MongoDB.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pymongo
import pymongo.errors
from pymongo.collection import Collection

from intake_broker.errors import AnnotationConflict
from intake_broker.queries import And, NotTranslatable, Or, Query
from intake_broker.queries.annotations import Annotated, NoteText, Viewer
from intake_broker.queries.search import words
from intake_broker.store.annotations import MAX_HISTORY, apply_change, history_entry

from .layout import ANNOTATION_HISTORY, ANNOTATIONS
from .queries import conjuncts, to_mongo_normalized

__all__ = ["ANNOTATIONS", "ANNOTATION_HISTORY", "AnnotationCollections", "annotated_runs"]

#: Our search fields, kept in each annotation document and never shown.
_SEARCH = ("_id", "field_names", "note_words")
_BATCH = 500
#: Attempts of one change before giving up (each failed one means another writer progressed).
MAX_ATTEMPTS = 100_000


def _stored(annotation: Mapping[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(dict(annotation))
    doc["_id"] = annotation["id"]
    doc["field_names"] = sorted(annotation["fields"])
    doc["note_words"] = sorted(words(annotation["note"] or ""))
    return doc


def _shown(doc: Mapping[str, Any] | None) -> dict | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in _SEARCH}


class AnnotationCollections:
    """The annotations ability over the two collections (see the module's docstring)."""

    def __init__(self, annotations: Collection, history: Collection):
        self.annotations = annotations
        self.history = history
        self._indexed = False

    def ensure_indexes(self) -> list[str]:
        """Create the search indexes; returns those the server refused."""
        refused = []
        specs: list[tuple[Collection, list, dict]] = [
            (self.annotations, [("run_uid", 1), ("created", 1)], {}),
            (self.annotations, [("tags", 1)], {}),
            (self.annotations, [("field_names", 1)], {}),
            (self.annotations, [("note_words", 1)], {}),
            (self.annotations, [("visibility", 1), ("author", 1)], {}),
            (self.history, [("run_uid", 1), ("time", 1), ("version", 1)], {}),
        ]
        for collection, keys, options in specs:
            try:
                collection.create_index(keys, **options)
            except pymongo.errors.OperationFailure:
                refused.append(f"{collection.name}:{keys}")
        self._indexed = True
        return refused

    def of_run(self, run_uid: str) -> list[dict]:
        cursor = self.annotations.find({"run_uid": run_uid}, sort=[("created", 1), ("_id", 1)])
        return [_shown(doc) for doc in cursor]  # type: ignore[misc]

    def of_runs(self, uids: list[str]) -> dict[str, list[dict]]:
        """The annotations of many runs at once, oldest first, by run uid."""
        found: dict[str, list[dict]] = {uid: [] for uid in uids}
        for i in range(0, len(uids), _BATCH):
            cursor = self.annotations.find(
                {"run_uid": {"$in": uids[i : i + _BATCH]}}, sort=[("created", 1), ("_id", 1)]
            )
            for doc in cursor:
                found[doc["run_uid"]].append(_shown(doc))  # type: ignore[arg-type]
        return found

    def history_of(self, run_uid: str) -> list[dict]:
        cursor = self.history.find(
            {"run_uid": run_uid},
            {"_id": 0},
            sort=[("time", -1), ("version", -1), ("annotation", -1)],
            limit=MAX_HISTORY,
        )
        return list(reversed(list(cursor)))

    def change(self, run_uid: str, change: Mapping[str, Any]) -> dict:
        """Apply one checked change (claim its version in the history, then move the
        annotation to it); returns the annotation after it."""
        if not self._indexed:
            self.ensure_indexes()
        key = change["id"]
        for _ in range(MAX_ATTEMPTS):
            current = _shown(self.annotations.find_one({"_id": key}))
            if current is not None and current["run_uid"] != run_uid:
                raise AnnotationConflict("this annotation belongs to another run", None)
            new = apply_change(run_uid, current, change)
            if new is None:
                return current  # type: ignore[return-value]
            entry = history_entry(current, new)
            try:
                self.history.insert_one({"_id": f"{key}:{new['version']}", **entry})
            except pymongo.errors.DuplicateKeyError:  # another writer claimed this version
                self._finish(key, new["version"])
                continue
            self._commit(new)
            return copy.deepcopy(new)
        raise AnnotationConflict(
            f"gave up changing annotation {key} after {MAX_ATTEMPTS} attempts", None
        )

    def _finish(self, key: str, version: int) -> None:
        """Complete the claimed change to ``version`` (another writer's, maybe interrupted)."""
        entry = self.history.find_one({"_id": f"{key}:{version}"})
        if entry is not None:
            self._commit(entry["after"])

    def _commit(self, new: Mapping[str, Any]) -> None:
        """Move the annotation to ``new`` from the version before it (idempotent)."""
        doc = _stored(new)
        if new["version"] == 1:
            try:
                self.annotations.insert_one(doc)
            except pymongo.errors.DuplicateKeyError:
                pass  # already committed
            return
        self.annotations.find_one_and_update(
            {"_id": doc["_id"], "version": new["version"] - 1}, {"$set": doc}
        )


# -- searching ---------------------------------------------------------------------------------


def audience_filter(viewer: Viewer | None) -> dict[str, Any]:
    """Annotations ``viewer`` may see (see :func:`intake_broker.queries.annotations.visible`)."""
    if viewer is None:
        return {}
    options: list[dict[str, Any]] = [{"author": viewer.name}, {"visibility": "public"}]
    if viewer.admin:
        options.append({"visibility": {"$ne": "private"}})
    else:
        if viewer.proposals:
            options.append({"visibility": "proposal", "proposals": {"$in": list(viewer.proposals)}})
        if viewer.groups:
            options.append({"visibility": "groups", "groups": {"$in": list(viewer.groups)}})
    return {"$or": options}


def _rekey(query: Query) -> Query:
    """A query on an annotation's view with its keys moved to where the document holds them
    (``tags`` and ``note`` stay; a field ``rating`` is ``fields.rating``)."""
    if query._query_fields:
        changes = {}
        for name in query._query_fields:
            value = getattr(query, name)
            changes[name] = (
                _rekey(value) if isinstance(value, Query) else tuple(_rekey(q) for q in value)
            )
        return dataclasses.replace(query, **changes)
    key = getattr(query, "key", None)
    if isinstance(key, str) and key.split(".")[0] not in ("tags", "note"):
        return dataclasses.replace(query, key=f"fields.{key}")
    return query


def inner_filter(query: Query) -> dict[str, Any] | None:
    """A filter on annotation documents matching at least the annotations ``query`` (on an
    annotation's view) matches; None when nothing narrows them."""
    if isinstance(query, NoteText):
        found = sorted(words(query.text))
        return {"note_words": {"$all": found}} if found else None
    if isinstance(query, And):
        parts = [f for f in (inner_filter(q) for q in query.queries) if f]
        return {"$and": parts} if parts else None
    if isinstance(query, Or):
        alternatives = [inner_filter(q) for q in query.queries]
        if any(not f for f in alternatives):
            return None
        return {"$or": alternatives}
    if _holds_note_text(query):
        return None
    try:
        return to_mongo_normalized(_rekey(query))
    except NotTranslatable:
        return None


def _holds_note_text(query: Query) -> bool:
    if isinstance(query, NoteText):
        return True
    for name in query._query_fields:
        value = getattr(query, name)
        if any(_holds_note_text(q) for q in ((value,) if isinstance(value, Query) else value)):
            return True
    return False


def annotated_runs(collections: AnnotationCollections, query: Query | None) -> set[str] | None:
    """The runs that may match the annotation conjuncts of ``query`` (each an
    :class:`Annotated`): a superset the evaluator narrows; None when none narrows."""
    found: set[str] | None = None
    for part in conjuncts(query):
        if not isinstance(part, Annotated):
            continue  # (or, not: left to the evaluator over every candidate)
        filters = [f for f in (audience_filter(part.viewer), inner_filter(part.query)) if f]
        mongo_filter = {"$and": filters} if len(filters) > 1 else (filters[0] if filters else {})
        uids = {
            doc["run_uid"]
            for doc in collections.annotations.find(mongo_filter, {"run_uid": 1, "_id": 0})
        }
        found = uids if found is None else found & uids
    return found


def needs_annotations(parts: Iterable[Query]) -> bool:
    from intake_broker.queries import documents_needed

    return any("annotations" in documents_needed(p) for p in parts)
