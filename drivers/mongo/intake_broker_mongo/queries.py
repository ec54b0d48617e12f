"""Queries to MongoDB: a filter on ``run_start``, and what needs ``run_stop`` too.

:data:`to_mongo_normalized` extends :data:`intake_broker_mongo.filters.to_mongo` (whose
rules for single keys it reuses) with an index-friendly :class:`PartialUID` (a string range,
not a regex) and recursion through its own rules.

:func:`plan` splits a query into what each collection can answer:

* conjuncts on start keys become the ``run_start`` filter;
* conjuncts on stop keys alone that a run without a stop cannot match
  (``Eq("stop.exit_status", "success")``) become a filter on ``run_stop`` whose matching
  ``run_start`` uids narrow the ``run_start`` filter (a semi-join);
* anything else touching stop keys (``~Eq("stop.exit_status", "success")``, ``Or`` across
  start and stop) is matched after a ``$lookup`` of the stop document into the start document
  under :data:`STOP_FIELD`;
* a query with no translation at all is evaluated in Python (``residual``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from intake_broker.queries import (
    And,
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    Not,
    NotEq,
    NotIn,
    NotTranslatable,
    Or,
    PartialUID,
    Query,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
    Translator,
    evaluate,
    resolve_key,
)
from intake_broker.queries.regex import escape_literal, literal_prefix

from .filters import to_mongo

#: Where a run's stop document is joined into its start document in aggregations.
STOP_FIELD = "__intake_broker_stop"
to_mongo_normalized = Translator("mongo-normalized")

for _leaf in (Eq, NotEq, Comparison, In, NotIn, Regex, Contains, KeyPresent):
    to_mongo_normalized.register(_leaf)(lambda query, translate: to_mongo(query))


@to_mongo_normalized.register(PartialUID)
def _(query: PartialUID, translate: Translator) -> dict[str, Any]:
    # s.startswith(p) <=> p <= s < p with its last character incremented: an index range
    upper = query.prefix[:-1] + chr(ord(query.prefix[-1]) + 1)
    return {"uid": {"$gte": query.prefix, "$lt": upper}}


# Combinators, time ranges and scan ids: the core's rules, recursing through this translator.
for _shared in (TimeRange, And, Or, Not, ScanID, ScanIDRange):
    to_mongo_normalized.register(_shared)(to_mongo.rule(_shared))


# -- which documents a query reads, and moving its keys -----------------------------------


def _children(query: Query) -> list[Query]:
    out = []
    for name in query._query_fields:
        value = getattr(query, name)
        out += [value] if isinstance(value, Query) else list(value)
    return out


def documents_of(query: Query) -> set[str]:
    """The run documents (``"start"``, ``"stop"``) a query reads; ``"?"`` when unknown."""
    if isinstance(query, TimeRange | PartialUID):
        return {"start"}
    if query._query_fields:
        found: set[str] = set()
        for child in _children(query):
            found |= documents_of(child)
        return found
    key = getattr(query, "key", None)
    return {resolve_key(key)[0]} if isinstance(key, str) else {"?"}


def rekey(query: Query, stop_prefix: str) -> Query:
    """``query`` with every ``stop.<path>`` key moved to ``start.<stop_prefix><path>``."""
    if query._query_fields:
        changes = {}
        for name in query._query_fields:
            value = getattr(query, name)
            changes[name] = (
                rekey(value, stop_prefix)
                if isinstance(value, Query)
                else tuple(rekey(q, stop_prefix) for q in value)
            )
        return dataclasses.replace(query, **changes)
    key = getattr(query, "key", None)
    if isinstance(key, str):
        document, *path = resolve_key(key)
        if document == "stop":
            return dataclasses.replace(
                query,
                key=".".join(("start", stop_prefix, *path))
                if stop_prefix
                else ".".join(("start", *path)),
            )
    return query


def conjuncts(query: Query | None) -> list[Query]:
    """The parts of a top-level ``And`` (flattened), or the query itself."""
    if query is None:
        return []
    if isinstance(query, And):
        return [part for q in query.queries for part in conjuncts(q)]
    return [query]


# -- the plan ------------------------------------------------------------------------------


@dataclass
class Plan:
    """How to answer one ``runs`` / ``count`` call."""

    start_filter: dict[str, Any] = field(default_factory=dict)
    stop_filter: dict[str, Any] | None = None  # semi-join: run_stop docs a match must have
    stop_as_join: dict[str, Any] | None = None  # the same, for when the semi-join is too big
    joined_filter: dict[str, Any] | None = None  # after $lookup of the stop under STOP_FIELD
    sort: list[tuple[str, int]] = field(default_factory=list)
    residual: Query | None = None  # the whole query, evaluated in Python on the candidates

    @property
    def needs_join(self) -> bool:
        """Whether stop documents must be joined in the server (a semi-join sorts here)."""
        if self.stop_filter is not None:
            return False
        return self.joined_filter is not None or any(
            key.startswith(STOP_FIELD + ".") for key, _ in self.sort
        )


def and_filters(filters: list[dict[str, Any]]) -> dict[str, Any]:
    filters = [f for f in filters if f]
    if not filters:
        return {}
    return filters[0] if len(filters) == 1 else {"$and": filters}


#: Fields of run_start with an index in the layout, most selective first.
_INDEXED_FIELDS = ("uid", "scan_id", "data_session", "data_groups", "time")


def _merge_field(a: Any, b: Any) -> Any:
    """Both conditions on one field as one operator dict, or None if they do not combine."""
    if not (isinstance(a, dict) and isinstance(b, dict) and a and b):
        return None
    if not all(k.startswith("$") for k in (*a, *b)) or set(a) & set(b):
        return None
    if "$options" in a or "$options" in b:
        return None  # keep each $regex with its own $options
    return {**a, **b}


def flatten(query: dict[str, Any]) -> dict[str, Any]:
    """The same MongoDB filter with ``$and`` folded into top-level fields where possible.

    ``{"$and": [{"a": 1}, {"t": {"$gte": 2}}]}`` becomes ``{"a": 1, "t": {"$gte": 2}}``; two
    conditions on one field merge into one operator dict. Fields come out in index order
    (uid, scan_id, ..., time, then the rest, then ``$`` operators): MongoDB's planner does not
    care, simpler servers (SecantusDB) use an index only for a flat filter and only for the
    first indexed field they meet.
    """
    parts = [query]
    merged: dict[str, Any] = {}
    leftovers: list[dict[str, Any]] = []
    while parts:
        part = parts.pop(0)
        for key, value in part.items():
            if key == "$and" and isinstance(value, list):
                parts[:0] = [v for v in value if isinstance(v, dict)]
            elif key not in merged:
                merged[key] = value
            elif (combined := _merge_field(merged[key], value)) is not None:
                merged[key] = combined
            else:
                leftovers.append({key: value})
    if leftovers:
        merged["$and"] = leftovers

    def rank(key: str) -> tuple[int, int]:
        if key in _INDEXED_FIELDS:
            return (0, _INDEXED_FIELDS.index(key))
        return (2, 0) if key.startswith("$") else (1, 0)

    return {key: merged[key] for key in sorted(merged, key=rank)}


def sort_spec(sort: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sort keys as MongoDB paths (stop keys under :data:`STOP_FIELD`), ties broken by uid."""
    spec: list[tuple[str, int]] = []
    for key, direction in sort:
        document, *path = resolve_key(key)
        name = ".".join(path) if document == "start" else ".".join((STOP_FIELD, *path))
        if document not in ("start", "stop"):
            raise NotTranslatable(f"cannot sort on {key!r} in MongoDB")
        if name not in (k for k, _ in spec):
            spec.append((name, 1 if direction >= 0 else -1))
    if "uid" not in (k for k, _ in spec):
        spec.append(("uid", 1))
    return spec


def superset_filter(query: Query) -> list[dict[str, Any]]:
    """Filters (none or one) on ``run_start`` that every run matching ``query`` passes, for a
    query with no exact translation: the literal prefix a regular expression requires (an
    escaped ``^prefix``, which cannot backtrack), so that an index narrows the runs RE2 then
    looks at."""
    if isinstance(query, Regex):
        found = literal_prefix(query.pattern, query.case_sensitive)
        document, *path = resolve_key(query.key)
        if found is not None and document == "start":
            return [{".".join(path): {"$regex": "^" + escape_literal(found[0])}}]
    if isinstance(query, And):
        return [f for part in query.queries for f in superset_filter(part)]
    return []


def plan(query: Query | None, sort: Sequence[tuple[str, int]]) -> Plan:
    """Split ``query`` between ``run_start``, ``run_stop`` and a join; see the module doc."""
    result = Plan()
    try:
        result.sort = sort_spec(sort)
    except NotTranslatable:
        result.residual = query if query is not None else And(())
        result.sort = [("uid", 1)]
        return result
    start_parts: list[dict[str, Any]] = []
    stop_parts: list[Query] = []
    joined_parts: list[Query] = []
    evaluated = False  # some conjunct has no exact translation: RE2/Python decides
    try:
        for part in conjuncts(query):
            documents = documents_of(part)
            if documents <= {"start"}:
                try:
                    start_parts.append(to_mongo_normalized(part))
                except NotTranslatable:
                    evaluated = True
                    start_parts += superset_filter(part)
            elif documents == {"stop"}:
                stop_parts.append(part)
            elif documents <= {"start", "stop"}:
                joined_parts.append(part)
            else:
                raise NotTranslatable(f"{type(part).__name__} has no MongoDB translation")
        if stop_parts:
            together = And(tuple(stop_parts))
            if joined_parts or evaluate(together, {"start": {}, "stop": None}):
                joined_parts += stop_parts  # a run without a stop matches, or a join anyway
            else:
                result.stop_filter = to_mongo_normalized(rekey(together, ""))
                result.stop_as_join = to_mongo_normalized(rekey(together, STOP_FIELD))
        if joined_parts:
            result.joined_filter = to_mongo_normalized(rekey(And(tuple(joined_parts)), STOP_FIELD))
        if evaluated:
            raise NotTranslatable("some conjunct is evaluated in Python")
    except NotTranslatable:
        result.residual = query
        result.stop_filter = result.stop_as_join = result.joined_filter = None
    result.start_filter = flatten(and_filters(start_parts))
    return result
