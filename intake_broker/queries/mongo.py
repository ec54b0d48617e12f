"""MongoDB-style dicts: reading them (databroker compatibility) and writing them (to_mongo)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, overload

from ..errors import BadQuery
from .base import (
    And,
    Not,
    NotTranslatable,
    Or,
    Query,
    Translator,
    _order_class,
    _short,
    _thaw,
    resolve_key,
)
from .limits import MAX_DEPTH, check_count, check_depth
from .regex import escape_literal, literal_prefix
from .search import ScanID, ScanIDRange
from .types import (
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    NotEq,
    NotIn,
    PartialUID,
    Regex,
    TimeRange,
)

# ------------------------------------------------------------------------------------------------
# Mongo-style dicts


_FIELD_OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
    "$regex", "$options", "$exists", "$not", "$elemMatch",
)  # fmt: skip
_LOGICAL_OPERATORS = ("$and", "$or", "$nor")
_MONGO_COMPARISONS = {"$gt": "gt", "$gte": "ge", "$lt": "lt", "$lte": "le"}


def _unknown_operator(op: str) -> BadQuery:
    supported = ", ".join(sorted(_LOGICAL_OPERATORS + _FIELD_OPERATORS))
    return BadQuery(f"unsupported query operator {_short(op)}; supported operators: {supported}")


def _combine(queries: list[Query]) -> Query:
    return queries[0] if len(queries) == 1 else And(tuple(queries))


def _regex_from_mongo(key: str, pattern: Any, options: Any = "") -> Regex:
    case_sensitive = True
    if isinstance(pattern, re.Pattern):
        case_sensitive = not pattern.flags & re.IGNORECASE
        pattern = pattern.pattern
    if not isinstance(options, str) or set(options) - {"i"}:
        raise BadQuery(f"unsupported $options {options!r} for {key!r}; only 'i' is supported")
    return Regex(key, pattern, case_sensitive and "i" not in options)


def _field_from_mongo(key: str, spec: Any, depth: int = 1) -> Query:
    check_depth(depth)
    if isinstance(spec, re.Pattern):
        return _regex_from_mongo(key, spec)
    if not isinstance(spec, Mapping) or not any(str(k).startswith("$") for k in spec):
        return Eq(key, spec)  # a plain dict means equality with that dict
    if not all(str(k).startswith("$") for k in spec):
        raise BadQuery(
            f"the spec for {key!r} mixes operators and plain fields: {_short(dict(spec))}; "
            "use either {'$op': value, ...} or a plain dict for equality"
        )
    if "$options" in spec and "$regex" not in spec:
        raise BadQuery(f"$options for {key!r} needs a $regex")
    queries: list[Query] = []
    for op, arg in spec.items():
        if op in ("$eq", "$ne"):
            queries.append((Eq if op == "$eq" else NotEq)(key, arg))
        elif op in _MONGO_COMPARISONS:
            queries.append(Comparison(_MONGO_COMPARISONS[op], key, arg))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, (list, tuple)):
                raise BadQuery(f"{op} for {key!r} needs a list, got {_short(arg)}")
            queries.append((In if op == "$in" else NotIn)(key, arg))
        elif op == "$regex":
            queries.append(_regex_from_mongo(key, arg, spec.get("$options", "")))
        elif op == "$exists":
            queries.append(KeyPresent(key, bool(arg)))
        elif op == "$not":
            if not isinstance(arg, (Mapping, re.Pattern)):
                raise BadQuery(f"$not for {key!r} needs an operator dict, got {_short(arg)}")
            queries.append(Not(_field_from_mongo(key, arg, depth + 1)))
        elif op == "$elemMatch":
            if not (isinstance(arg, Mapping) and list(arg) == ["$eq"]):
                raise BadQuery(f"$elemMatch for {key!r} supports only {{'$eq': value}}")
            queries.append(Contains(key, arg["$eq"]))
        elif op != "$options":
            raise _unknown_operator(op)
    return _combine(queries)


def from_mongo(spec: Mapping[str, Any]) -> Query:
    """Translate a MongoDB-style filter, as databroker accepts, to a query.

    Parameters
    ----------
    spec : dict
        For example ``{"plan_name": "scan", "scan_id": {"$gte": 10, "$lt": 20}}``. Supported
        operators: ``$eq $ne $gt $gte $lt $lte $in $nin $regex $options $exists $not
        $elemMatch`` (only ``{"$eq": value}``) inside a field spec, ``$and $or $nor`` at the top.

    Returns
    -------
    Query
        One query per key, combined with :class:`And` when there are several; ``And(())``
        (matching everything) for an empty spec.

    Raises
    ------
    BadQuery
        For an unsupported operator or a malformed spec.

    Notes
    -----
    Unlike MongoDB, ``{"x": None}`` does not match runs without ``x``.
    """
    try:
        return _from_mongo(spec, 1)
    except RecursionError:
        raise BadQuery(
            f"the query nests too deep; at most {MAX_DEPTH} levels are allowed"
        ) from None
    except (TypeError, ValueError, OverflowError, AttributeError) as err:
        if isinstance(err, BadQuery):
            raise
        raise BadQuery(f"a malformed Mongo-style query: {err}") from None


def _from_mongo(spec: Any, depth: int) -> Query:
    check_depth(depth)
    if not isinstance(spec, Mapping):
        raise BadQuery(f"a Mongo-style query must be a dict, got {_short(spec)}")
    check_count(len(spec), "a Mongo-style query dict")
    queries: list[Query] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise BadQuery(f"query keys must be strings, got {_short(key)}")
        if not key.startswith("$"):
            queries.append(_field_from_mongo(key, value, depth + 1))
            continue
        if key not in _LOGICAL_OPERATORS:
            raise _unknown_operator(key)
        if not isinstance(value, (list, tuple)) or not value:
            raise BadQuery(f"{key} needs a non-empty list of query dicts, got {_short(value)}")
        check_count(len(value), f"the {key} list")
        parts = tuple(_from_mongo(item, depth + 1) for item in value)
        if key == "$and":
            queries.append(And(parts))
        else:
            queries.append(Or(parts) if key == "$or" else Not(Or(parts)))
    return And(()) if not queries else _combine(queries)


@overload
def as_query(obj: Query | Mapping[str, Any]) -> Query: ...
@overload
def as_query(obj: None) -> None: ...
@overload
def as_query(obj: Query | Mapping[str, Any] | None) -> Query | None: ...
def as_query(obj: Query | Mapping[str, Any] | None) -> Query | None:
    """Return ``obj`` as a query: a Query as is, a Mongo-style dict translated, None as None.

    Raises
    ------
    BadQuery
        For anything else.
    """
    if obj is None or isinstance(obj, Query):
        return obj
    if isinstance(obj, Mapping):
        return from_mongo(obj)
    raise BadQuery(f"expected a Query, a Mongo-style dict or None, got {type(obj).__name__}")


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
    spec = {"$eq": _thaw(query.value)}
    return _not_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(NotEq)
def _(query: NotEq, translate: Translator) -> dict[str, Any]:
    if _is_nan(query.value):
        return {}
    spec = {"$ne": _thaw(query.value)}
    return _or_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(Comparison)
def _(query: Comparison, translate: Translator) -> dict[str, Any]:
    if _order_class(query.value) is None:
        return NOTHING  # NaN, None, lists and dicts are never ordered
    operator = {op: mongo_op for mongo_op, op in _MONGO_COMPARISONS.items()}[query.operator]
    return {_mongo_path(query.key): {operator: query.value}}


@to_mongo.register(In)
def _(query: In, translate: Translator) -> dict[str, Any]:
    values = [v for v in query.values if not _is_nan(v)]
    if not values:
        return NOTHING
    spec = {"$in": _thaw(tuple(values))}
    if None in values:
        return _not_missing(query.key, spec)
    return {_mongo_path(query.key): spec}


@to_mongo.register(NotIn)
def _(query: NotIn, translate: Translator) -> dict[str, Any]:
    values = [v for v in query.values if not _is_nan(v)]
    if not values:
        return {}
    spec = {"$nin": _thaw(tuple(values))}
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
    return {_mongo_path(query.key): {"$elemMatch": {"$eq": _thaw(query.value)}}}


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
