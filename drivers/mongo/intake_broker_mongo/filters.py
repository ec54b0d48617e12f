"""Query objects as MongoDB filters on ``run_start``: :data:`to_mongo`.

What the core's queries mean is the generic evaluator's (:func:`intake_broker.queries.evaluate`);
these rules write the same meaning as MongoDB filters, adding the ``$exists`` guards that keep
MongoDB's ``null`` (which also matches a missing key) in agreement with it, and sending regular
expressions only as escaped literal prefixes (MongoDB's PCRE could backtrack). Reading
databroker's dicts (``from_mongo``) stays in the core: every store accepts them.
"""

from __future__ import annotations

import math
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
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
    Translator,
    resolve_key,
)
from intake_broker.queries.base import order_class, thaw
from intake_broker.queries.mongo import MONGO_COMPARISONS
from intake_broker.queries.regex import escape_literal, literal_prefix

__all__ = ["NOTHING", "to_mongo"]

#: Translates a query to a MongoDB filter on the start-document collection. Keys addressing
#: other documents (``stop.*``) raise :class:`NotTranslatable`.
to_mongo = Translator("mongo")


def _mongo_path(key: str) -> str:
    document, *path = resolve_key(key)
    if document != "start":
        raise NotTranslatable(
            f"key {key!r} addresses the {document} document; the mongo filter covers only "
            "start documents"
        )
    return ".".join(path)


def _not_missing(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A positive test involving None; Mongo's null would also match a missing key."""
    return {_mongo_path(key): {**spec, "$exists": True}}


def _or_missing(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A negative test involving None; Mongo's null would exclude a missing key."""
    path = _mongo_path(key)
    return {"$or": [{path: {"$exists": False}}, {path: spec}]}


#: A filter no document passes (MongoDB's NaN equals NaN; a query's NaN equals nothing).
NOTHING: dict[str, Any] = {"$nor": [{}]}


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


@to_mongo.register(Eq)
def _(query: Eq, translate: Translator) -> dict[str, Any]:
    if _is_nan(query.value):
        return NOTHING
    spec = {"$eq": thaw(query.value)}
    return _not_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(NotEq)
def _(query: NotEq, translate: Translator) -> dict[str, Any]:
    if _is_nan(query.value):
        return {}
    spec = {"$ne": thaw(query.value)}
    return _or_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(Comparison)
def _(query: Comparison, translate: Translator) -> dict[str, Any]:
    if order_class(query.value) is None:
        return NOTHING  # NaN, None, lists and dicts are never ordered
    operator = {op: mongo_op for mongo_op, op in MONGO_COMPARISONS.items()}[query.operator]
    return {_mongo_path(query.key): {operator: query.value}}


@to_mongo.register(In)
def _(query: In, translate: Translator) -> dict[str, Any]:
    values = [v for v in query.values if not _is_nan(v)]
    if not values:
        return NOTHING
    spec = {"$in": thaw(tuple(values))}
    if None in values:
        return _not_missing(query.key, spec)
    return {_mongo_path(query.key): spec}


@to_mongo.register(NotIn)
def _(query: NotIn, translate: Translator) -> dict[str, Any]:
    values = [v for v in query.values if not _is_nan(v)]
    if not values:
        return {}
    spec = {"$nin": thaw(tuple(values))}
    if None in values:
        return _or_missing(query.key, spec)
    return {_mongo_path(query.key): spec}


@to_mongo.register(Regex)
def _(query: Regex, translate: Translator) -> dict[str, Any]:
    # MongoDB's PCRE backtracks: only a literal prefix is ever sent, as an escaped pattern
    prefix = literal_prefix(query.pattern, query.case_sensitive)
    if prefix is None or not prefix[1]:
        raise NotTranslatable(
            f"the regular expression {query.pattern!r} is not a literal prefix; MongoDB's "
            "engine could backtrack on it, so RE2 evaluates it"
        )
    return {_mongo_path(query.key): {"$regex": "^" + escape_literal(prefix[0])}}


@to_mongo.register(Contains)
def _(query: Contains, translate: Translator) -> dict[str, Any]:
    if _is_nan(query.value):
        return NOTHING
    return {_mongo_path(query.key): {"$elemMatch": {"$eq": thaw(query.value)}}}


@to_mongo.register(KeyPresent)
def _(query: KeyPresent, translate: Translator) -> dict[str, Any]:
    return {_mongo_path(query.key): {"$exists": query.present}}


@to_mongo.register(TimeRange)
def _(query: TimeRange, translate: Translator) -> dict[str, Any]:
    return translate(And(query.comparisons()))


@to_mongo.register(PartialUID)
def _(query: PartialUID, translate: Translator) -> dict[str, Any]:
    return {"uid": {"$regex": f"^{query.prefix}"}}  # hex digits and dashes need no escaping


@to_mongo.register(And)
def _(query: And, translate: Translator) -> dict[str, Any]:
    if len(query.queries) == 1:
        return translate(query.queries[0])
    return {"$and": [translate(q) for q in query.queries]} if query.queries else {}


@to_mongo.register(Or)
def _(query: Or, translate: Translator) -> dict[str, Any]:
    if not query.queries:
        return {"$nor": [{}]}  # matches nothing
    return {"$or": [translate(q) for q in query.queries]}


@to_mongo.register(Not)
def _(query: Not, translate: Translator) -> dict[str, Any]:
    return {"$nor": [translate(query.query)]}


@to_mongo.register(ScanID)
def _(query: ScanID, translate: Translator) -> dict[str, Any]:
    return {"scan_id": {"$in": list(query.ids)}}


@to_mongo.register(ScanIDRange)
def _(query: ScanIDRange, translate: Translator) -> dict[str, Any]:
    return {"scan_id": {"$gte": query.start, "$lt": query.stop}}
