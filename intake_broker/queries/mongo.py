"""MongoDB-style dicts, as databroker accepts them: reading them into query objects.

Writing query objects as MongoDB filters (``to_mongo``) is the mongo driver's
(``intake_broker_mongo.filters``): only a store on MongoDB needs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, overload

from ..errors import BadQuery
from .base import And, Not, Or, Query, _short
from .limits import MAX_DEPTH, check_count, check_depth
from .types import Comparison, Contains, Eq, In, KeyPresent, NotEq, NotIn, Regex

# ------------------------------------------------------------------------------------------------
# Mongo-style dicts


_FIELD_OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
    "$regex", "$options", "$exists", "$not", "$elemMatch",
)  # fmt: skip
_LOGICAL_OPERATORS = ("$and", "$or", "$nor")
#: MongoDB's comparison operators and the :class:`Comparison` operators they are.
MONGO_COMPARISONS = {"$gt": "gt", "$gte": "ge", "$lt": "lt", "$lte": "le"}


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
        elif op in MONGO_COMPARISONS:
            queries.append(Comparison(MONGO_COMPARISONS[op], key, arg))
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
