"""Backend-neutral query objects for searching runs.

A query is a small frozen dataclass such as ``Eq("plan_name", "scan")``. Queries combine with
``&``, ``|`` and ``~``, encode to JSON-serialisable dicts and back, and evaluate against a *run
record*, a dict ``{"start": start_doc, "stop": stop_doc_or_None, ...}``::

    >>> q = Eq("plan_name", "count") & Comparison("ge", "scan_id", 10)
    >>> q.match({"start": {"plan_name": "count", "scan_id": 12}, "stop": None})
    True

Keys are dotted paths. A key beginning with one of :data:`DOCUMENT_PREFIXES` followed by a dot
(``"stop.exit_status"``) addresses that document; any other key addresses the start document
(``"plan_name"`` is ``"start.plan_name"``).

The in-memory evaluator follows MongoDB's semantics so that stores which translate queries to a
native form (see :class:`Translator` and :data:`to_mongo`) return the same runs as stores which
evaluate them in Python. The one deliberate difference: a missing key never equals ``None``
(MongoDB's ``{"x": None}`` also matches documents without ``x``); :data:`to_mongo` adds the
``$exists`` guards that keep native filters in agreement with :func:`evaluate`.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from datetime import time as dtime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from intake_broker.errors import BadQuery

__all__ = [
    "COMPARISON_OPERATORS",
    "DOCUMENT_PREFIXES",
    "QUERY_TYPES",
    "And",
    "Comparison",
    "Contains",
    "Eq",
    "In",
    "KeyPresent",
    "Not",
    "NotEq",
    "NotIn",
    "NotTranslatable",
    "Or",
    "PartialUID",
    "Query",
    "Regex",
    "TimeRange",
    "Translator",
    "as_query",
    "decode_query",
    "evaluate",
    "from_mongo",
    "register_query",
    "resolve_key",
    "to_mongo",
]

#: Documents of a run record that a key can address with a ``"<name>."`` prefix. Keys without
#: one of these prefixes address the start document. Extend it to address more documents.
DOCUMENT_PREFIXES: tuple[str, ...] = ("start", "stop")

#: The operators accepted by :class:`Comparison`.
COMPARISON_OPERATORS: tuple[str, ...] = ("lt", "le", "gt", "ge")

#: Every registered query type by its ``kind``.
QUERY_TYPES: dict[str, type[Query]] = {}


class NotTranslatable(BadQuery):
    """A :class:`Translator` has no native form for a query; evaluate it in Python instead."""


# ------------------------------------------------------------------------------------------------
# keys and values


def resolve_key(key: str) -> tuple[str, ...]:
    """Return the full path of ``key`` into a run record.

    Parameters
    ----------
    key : str
        A dotted path such as ``"plan_name"``, ``"sample.name"`` or ``"stop.exit_status"``.

    Returns
    -------
    tuple of str
        The path, starting with the document name, e.g. ``("start", "plan_name")``.

    Raises
    ------
    BadQuery
        If ``key`` is not a non-empty string of non-empty dot-separated parts.
    """
    if not isinstance(key, str) or not key or "" in key.split("."):
        raise BadQuery(
            f"bad query key {key!r}: give a dotted path of non-empty names, "
            "such as 'plan_name', 'sample.name' or 'stop.exit_status'"
        )
    parts = tuple(key.split("."))
    if len(parts) > 1 and parts[0] in DOCUMENT_PREFIXES:
        return parts
    return ("start", *parts)


def _lookup(node: Any, parts: tuple[str, ...]) -> list[Any]:
    """The values at ``parts`` below ``node``; an empty list when the path is missing.

    Like MongoDB, a path continues through lists: into the element at a numeric part and into
    every element that is a mapping.
    """
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    if isinstance(node, Mapping):
        return _lookup(node[head], rest) if head in node else []
    if isinstance(node, (list, tuple)):
        found = []
        if head.isascii() and head.isdigit() and int(head) < len(node):
            found += _lookup(node[int(head)], rest)
        for item in node:
            if isinstance(item, Mapping):
                found += _lookup(item, parts)
        return found
    return []


def _values(record: Mapping[str, Any], key: str) -> list[Any]:
    """The values ``key`` addresses in a run record (empty when missing or no such document)."""
    document, *path = resolve_key(key)
    doc = record.get(document)
    return [] if doc is None else _lookup(doc, tuple(path))


def _candidates(values: list[Any]) -> Iterator[Any]:
    """Each value, and each element of a list value (MongoDB matches arrays element-wise)."""
    for value in values:
        yield value
        if isinstance(value, (list, tuple)):
            yield from value


class _FrozenDict(Mapping):
    """A read-only, hashable mapping, so dict values can live in frozen queries."""

    def __init__(self, items: Mapping[str, Any]):
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


def _freeze(value: Any, what: str) -> Any:
    """Check that ``value`` is JSON-like and make it hashable (lists to tuples)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item, what) for item in value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return _FrozenDict({k: _freeze(v, what) for k, v in value.items()})
    raise BadQuery(
        f"query {what} {value!r} ({type(value).__name__}) is not JSON-like: give a str, int, "
        "float, bool, None, or a list or dict of those"
    )


def _thaw(value: Any) -> Any:
    """The JSON form of a frozen value (tuples to lists, frozen dicts to dicts)."""
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as MongoDB sees it: lists equal tuples, and bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, Mapping)) or isinstance(b, (list, tuple, Mapping)):
        return False
    try:
        return bool(a == b)
    except Exception:  # e.g. a numpy array in a document
        return False


def _order_class(value: Any) -> str | None:
    """Values compare only within one class, as in MongoDB; None means not comparable."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Real):
        return None if math.isnan(value) else "number"
    if isinstance(value, str):
        return "str"
    return None


# ------------------------------------------------------------------------------------------------
# the base class and its registry


def register_query(name: str) -> Callable[[type[Query]], type[Query]]:
    """Class decorator registering a query type under ``name`` (its ``kind``).

    Parameters
    ----------
    name : str
        The short name used as ``"type"`` in encoded queries.

    Returns
    -------
    callable
        A decorator that records the class in :data:`QUERY_TYPES` and sets ``cls.kind``.
    """

    def decorate(cls: type[Query]) -> type[Query]:
        if not (isinstance(cls, type) and issubclass(cls, Query)):
            raise TypeError(f"only Query subclasses can be registered, not {cls!r}")
        if QUERY_TYPES.get(name, cls) is not cls:
            raise BadQuery(f"query type {name!r} is already registered to {QUERY_TYPES[name]}")
        cls.kind = name
        QUERY_TYPES[name] = cls
        return cls

    return decorate


class Query:
    """Base class of every query type.

    Subclasses are frozen dataclasses registered with :func:`register_query`. Combine queries
    with ``q1 & q2`` (:class:`And`), ``q1 | q2`` (:class:`Or`) and ``~q`` (:class:`Not`).
    """

    kind: ClassVar[str]
    #: Names of the fields holding nested queries (a query or a tuple of queries).
    _query_fields: ClassVar[tuple[str, ...]] = ()

    def match(self, record: Mapping[str, Any]) -> bool:
        """Return whether the run ``record`` (``{"start": ..., "stop": ...}``) matches."""
        raise NotImplementedError(f"{type(self).__name__} does not implement match")

    def __and__(self, other: Query) -> Query:
        if not isinstance(other, Query):
            return NotImplemented
        return And(_parts(self, And) + _parts(other, And))

    def __or__(self, other: Query) -> Query:
        if not isinstance(other, Query):
            return NotImplemented
        return Or(_parts(self, Or) + _parts(other, Or))

    def __invert__(self) -> Query:
        return Not(self)

    def encode(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict ``{"type": kind, **fields}``.

        Returns
        -------
        dict
            Nested queries are encoded recursively and tuples become lists.
        """
        encoded: dict[str, Any] = {"type": self.kind}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name not in self._query_fields:
                encoded[field.name] = _thaw(value)
            elif isinstance(value, Query):
                encoded[field.name] = value.encode()
            else:
                encoded[field.name] = [query.encode() for query in value]
        return encoded

    @classmethod
    def decode(cls, obj: Mapping[str, Any] | str | bytes) -> Query:
        """Rebuild a query from :meth:`encode`'s dict or its JSON string.

        Parameters
        ----------
        obj : dict, str or bytes
            An encoded query.

        Returns
        -------
        Query
            The query; an instance of ``cls`` when called on a subclass.

        Raises
        ------
        BadQuery
            If ``obj`` is not an encoded query of a registered type.
        """
        if isinstance(obj, (str, bytes)):
            try:
                obj = json.loads(obj)
            except ValueError as err:
                raise BadQuery(f"an encoded query is not valid JSON: {err}") from None
        if not isinstance(obj, Mapping) or "type" not in obj:
            raise BadQuery(
                f"an encoded query must be a dict with a 'type', such as "
                f"{{'type': 'eq', 'key': 'plan_name', 'value': 'scan'}}; got {obj!r}"
            )
        kind = obj["type"]
        qtype = QUERY_TYPES.get(kind) if isinstance(kind, str) else None
        if qtype is None:
            raise BadQuery(
                f"unknown query type {kind!r}; registered types: {', '.join(sorted(QUERY_TYPES))}"
            )
        kwargs = {name: value for name, value in obj.items() if name != "type"}
        names = [field.name for field in fields(qtype)]
        required = [f.name for f in fields(qtype) if f.default is MISSING]
        unknown = sorted(set(kwargs) - set(names))
        missing = [name for name in required if name not in kwargs]
        if unknown or missing:
            raise BadQuery(
                f"bad fields for a {kind!r} query (unknown: {unknown}, missing: {missing}); "
                f"its fields are {names}"
            )
        for name in qtype._query_fields:
            value = kwargs[name]
            if isinstance(value, Mapping):
                kwargs[name] = Query.decode(value)
            elif isinstance(value, (list, tuple)):
                kwargs[name] = tuple(Query.decode(item) for item in value)
            else:
                raise BadQuery(f"field {name!r} of a {kind!r} query must hold encoded queries")
        query = qtype(**kwargs)
        if not isinstance(query, cls):
            raise BadQuery(f"expected an encoded {cls.__name__} query, got type {kind!r}")
        return query


def _parts(query: Query, combinator: type[And] | type[Or]) -> tuple[Query, ...]:
    return query.queries if isinstance(query, combinator) else (query,)


def decode_query(obj: Mapping[str, Any] | str | bytes) -> Query:
    """Rebuild a query from an encoded dict or JSON string; see :meth:`Query.decode`."""
    return Query.decode(obj)


def evaluate(query: Query, record: Mapping[str, Any]) -> bool:
    """Return whether the run ``record`` matches ``query``, evaluated in Python.

    Parameters
    ----------
    query : Query
        The query.
    record : dict
        A run record ``{"start": start_doc, "stop": stop_doc_or_None, ...}``.

    Returns
    -------
    bool
    """
    return query.match(record)


# ------------------------------------------------------------------------------------------------
# the query types


@register_query("eq")
@dataclass(frozen=True)
class Eq(Query):
    """The value at ``key`` equals ``value``, or is a list with an element equal to it."""

    key: str
    value: Any

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "value", _freeze(self.value, "value"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(_equal(c, self.value) for c in _candidates(_values(record, self.key)))


@register_query("not_eq")
@dataclass(frozen=True)
class NotEq(Query):
    """The negation of :class:`Eq`: also true when ``key`` is missing."""

    key: str
    value: Any

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "value", _freeze(self.value, "value"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return not Eq(self.key, self.value).match(record)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


@register_query("comparison")
@dataclass(frozen=True)
class Comparison(Query):
    """The value at ``key`` (or an element of it) compares to ``value`` by ``operator``.

    ``operator`` is one of ``"lt"``, ``"le"``, ``"gt"``, ``"ge"``. Numbers compare with
    numbers, strings with strings and bools with bools; anything else does not match.
    """

    operator: str
    key: str
    value: Any

    def __post_init__(self) -> None:
        if self.operator not in COMPARISON_OPERATORS:
            raise BadQuery(
                f"unknown comparison operator {self.operator!r}; "
                f"use one of {', '.join(COMPARISON_OPERATORS)}"
            )
        resolve_key(self.key)
        object.__setattr__(self, "value", _freeze(self.value, "value"))

    def match(self, record: Mapping[str, Any]) -> bool:
        kind = _order_class(self.value)
        compare = _COMPARE[self.operator]
        return kind is not None and any(
            _order_class(c) == kind and compare(c, self.value)
            for c in _candidates(_values(record, self.key))
        )


def _freeze_values(values: Any) -> tuple[Any, ...]:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise BadQuery(f"query values must be a list, got {values!r}")
    return _freeze(list(values), "values")


@register_query("in")
@dataclass(frozen=True)
class In(Query):
    """The value at ``key`` (or an element of it) equals one of ``values``."""

    key: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "values", _freeze_values(self.values))

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            _equal(c, v) for c in _candidates(_values(record, self.key)) for v in self.values
        )


@register_query("not_in")
@dataclass(frozen=True)
class NotIn(Query):
    """The negation of :class:`In`: also true when ``key`` is missing."""

    key: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "values", _freeze_values(self.values))

    def match(self, record: Mapping[str, Any]) -> bool:
        return not In(self.key, self.values).match(record)


@register_query("regex")
@dataclass(frozen=True)
class Regex(Query):
    """A string at ``key`` (or in a list there) contains a match of ``pattern`` (``re.search``)."""

    key: str
    pattern: str
    case_sensitive: bool = True

    def __post_init__(self) -> None:
        resolve_key(self.key)
        if not isinstance(self.pattern, str) or not isinstance(self.case_sensitive, bool):
            raise BadQuery(
                f"Regex needs a str pattern and a bool case_sensitive, got "
                f"{self.pattern!r} and {self.case_sensitive!r}"
            )
        self._compiled()

    def _compiled(self) -> re.Pattern[str]:
        try:  # the re module caches compiled patterns
            return re.compile(self.pattern, 0 if self.case_sensitive else re.IGNORECASE)
        except re.error as err:
            raise BadQuery(f"bad regular expression {self.pattern!r}: {err}") from None

    def match(self, record: Mapping[str, Any]) -> bool:
        pattern = self._compiled()
        return any(
            isinstance(c, str) and pattern.search(c) is not None
            for c in _candidates(_values(record, self.key))
        )


@register_query("contains")
@dataclass(frozen=True)
class Contains(Query):
    """The value at ``key`` is a list with an element equal to ``value``."""

    key: str
    value: Any

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "value", _freeze(self.value, "value"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            isinstance(v, (list, tuple)) and any(_equal(item, self.value) for item in v)
            for v in _values(record, self.key)
        )


@register_query("key_present")
@dataclass(frozen=True)
class KeyPresent(Query):
    """``key`` exists (its value may be None), or with ``present=False`` does not."""

    key: str
    present: bool = True

    def __post_init__(self) -> None:
        resolve_key(self.key)
        if not isinstance(self.present, bool):
            raise BadQuery(f"KeyPresent.present must be True or False, got {self.present!r}")

    def match(self, record: Mapping[str, Any]) -> bool:
        return bool(_values(record, self.key)) == self.present


_TIME_EXAMPLES = "'2026-01-01', '2026-01-01 12:30' or '2026-01-01T12:30:00+02:00'"


def _zone(name: str | None) -> ZoneInfo | None:
    """The zone naive times are read in; None is the machine's local zone."""
    if name is None or name == "local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BadQuery(
            f"unknown time zone {name!r}: give an IANA name such as 'Europe/Berlin' or 'UTC', "
            "or None for the machine's local zone"
        ) from None


def _epoch(value: Any, zone: ZoneInfo | None, what: str) -> float | None:
    """``value`` (epoch number, datetime, date or ISO-8601 string) as float epoch seconds."""
    if value is None:
        return None
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        when = datetime.combine(value, dtime())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.astimezone() if zone is None else when.replace(tzinfo=zone)
        try:
            seconds = when.timestamp()
        except (OverflowError, OSError, ValueError):
            seconds = math.nan
    else:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise BadQuery(
            f"TimeRange {what}={value!r} is not a time: give epoch seconds, a datetime, "
            f"or an ISO-8601 string such as {_TIME_EXAMPLES}"
        )
    return seconds


@register_query("time_range")
@dataclass(frozen=True)
class TimeRange(Query):
    """The run started in ``since <= start.time < until``; either bound may be None.

    ``since`` and ``until`` accept epoch seconds, a ``datetime`` or an ISO-8601 string
    (``"2026-01-01"``, ``"2026-01-01 12:30"``, ``"2026-01-01T12:30:00+02:00"``). Naive times
    are read in ``timezone``, an IANA name such as ``"Europe/Berlin"``, or the machine's local
    zone when it is None (or ``"local"``). Both bounds are stored as float epoch seconds.
    """

    since: float | None = None
    until: float | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        zone = _zone(self.timezone)
        since = _epoch(self.since, zone, "since")
        until = _epoch(self.until, zone, "until")
        if since is not None and until is not None and since > until:
            raise BadQuery(
                f"TimeRange since={self.since!r} is later than until={self.until!r}; "
                "swap them or drop one bound"
            )
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)

    def comparisons(self) -> tuple[Comparison, ...]:
        """The bounds as comparisons on ``start.time`` (empty when unbounded)."""
        bounds = (("ge", self.since), ("lt", self.until))
        return tuple(Comparison(op, "start.time", t) for op, t in bounds if t is not None)

    def match(self, record: Mapping[str, Any]) -> bool:
        return all(comparison.match(record) for comparison in self.comparisons())


_UID_PREFIX = re.compile(r"[0-9a-fA-F-]+")


@register_query("partial_uid")
@dataclass(frozen=True)
class PartialUID(Query):
    """The run's uid (``start.uid``) starts with ``prefix``."""

    prefix: str

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _UID_PREFIX.fullmatch(self.prefix):
            raise BadQuery(
                f"uid prefix {self.prefix!r} is not a non-empty string of hex digits and "
                "dashes, such as '3f2a' or '3f2a9c1e-'"
            )

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            isinstance(c, str) and c.startswith(self.prefix)
            for c in _candidates(_values(record, "start.uid"))
        )


def _check_queries(queries: Any, name: str) -> tuple[Query, ...]:
    if not isinstance(queries, (list, tuple)) or not all(isinstance(q, Query) for q in queries):
        raise BadQuery(f"{name} needs a list of queries, got {queries!r}")
    return tuple(queries)


@register_query("and")
@dataclass(frozen=True)
class And(Query):
    """Every one of ``queries`` matches (true when there are none)."""

    queries: tuple[Query, ...]
    _query_fields: ClassVar[tuple[str, ...]] = ("queries",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _check_queries(self.queries, "And"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return all(query.match(record) for query in self.queries)


@register_query("or")
@dataclass(frozen=True)
class Or(Query):
    """At least one of ``queries`` matches (false when there are none)."""

    queries: tuple[Query, ...]
    _query_fields: ClassVar[tuple[str, ...]] = ("queries",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _check_queries(self.queries, "Or"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(query.match(record) for query in self.queries)


@register_query("not")
@dataclass(frozen=True)
class Not(Query):
    """``query`` does not match."""

    query: Query
    _query_fields: ClassVar[tuple[str, ...]] = ("query",)

    def __post_init__(self) -> None:
        if not isinstance(self.query, Query):
            raise BadQuery(f"Not needs a query, got {self.query!r}")

    def match(self, record: Mapping[str, Any]) -> bool:
        return not self.query.match(record)


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
    return BadQuery(f"unsupported query operator {op!r}; supported operators: {supported}")


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


def _field_from_mongo(key: str, spec: Any) -> Query:
    if isinstance(spec, re.Pattern):
        return _regex_from_mongo(key, spec)
    if not isinstance(spec, Mapping) or not any(str(k).startswith("$") for k in spec):
        return Eq(key, spec)  # a plain dict means equality with that dict
    if not all(str(k).startswith("$") for k in spec):
        raise BadQuery(
            f"the spec for {key!r} mixes operators and plain fields: {dict(spec)!r}; "
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
                raise BadQuery(f"{op} for {key!r} needs a list, got {arg!r}")
            queries.append((In if op == "$in" else NotIn)(key, arg))
        elif op == "$regex":
            queries.append(_regex_from_mongo(key, arg, spec.get("$options", "")))
        elif op == "$exists":
            queries.append(KeyPresent(key, bool(arg)))
        elif op == "$not":
            if not isinstance(arg, (Mapping, re.Pattern)):
                raise BadQuery(f"$not for {key!r} needs an operator dict, got {arg!r}")
            queries.append(Not(_field_from_mongo(key, arg)))
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
    if not isinstance(spec, Mapping):
        raise BadQuery(f"a Mongo-style query must be a dict, got {spec!r}")
    queries: list[Query] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise BadQuery(f"query keys must be strings, got {key!r}")
        if not key.startswith("$"):
            queries.append(_field_from_mongo(key, value))
            continue
        if key not in _LOGICAL_OPERATORS:
            raise _unknown_operator(key)
        if not isinstance(value, (list, tuple)) or not value:
            raise BadQuery(f"{key} needs a non-empty list of query dicts, got {value!r}")
        parts = tuple(from_mongo(item) for item in value)
        if key == "$and":
            queries.append(And(parts))
        else:
            queries.append(Or(parts) if key == "$or" else Not(Or(parts)))
    return And(()) if not queries else _combine(queries)


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


# ------------------------------------------------------------------------------------------------
# translation to native forms


_Rule = Callable[[Any, "Translator"], Any]


class Translator:
    """A registry of rules turning queries into a store's native form.

    Parameters
    ----------
    name : str
        A name for messages, such as ``"mongo"``.

    Examples
    --------
    >>> tr = Translator("sql")
    >>> @tr.register(Eq)
    ... def _(query, translate):
    ...     return f"{query.key} = ?"
    >>> tr(Eq("plan_name", "scan"))
    'plan_name = ?'
    """

    def __init__(self, name: str):
        self.name = name
        self._rules: dict[type[Query], _Rule] = {}

    def __repr__(self) -> str:
        kinds = ", ".join(sorted(qtype.__name__ for qtype in self._rules))
        return f"Translator({self.name!r}, rules for: {kinds})"

    def register(self, query_type: type[Query]) -> Callable[[_Rule], _Rule]:
        """Decorator registering ``rule(query, translate)`` for ``query_type``.

        The rule receives this translator as ``translate`` to recurse into nested queries.
        """
        if not (isinstance(query_type, type) and issubclass(query_type, Query)):
            raise TypeError(f"rules are registered for Query subclasses, not {query_type!r}")

        def decorate(rule: _Rule) -> _Rule:
            self._rules[query_type] = rule
            return rule

        return decorate

    def __call__(self, query: Query) -> Any:
        """Return the native form of ``query``.

        Raises
        ------
        NotTranslatable
            If no rule covers the type of ``query`` (or of a query nested in it).
        """
        for qtype in type(query).__mro__:
            if qtype in self._rules:
                return self._rules[qtype](query, self)
        raise NotTranslatable(
            f"the {self.name} translator has no rule for {type(query).__name__} queries; "
            "evaluate this query in Python instead"
        )


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


@to_mongo.register(Eq)
def _(query: Eq, translate: Translator) -> dict[str, Any]:
    spec = {"$eq": _thaw(query.value)}
    return _not_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(NotEq)
def _(query: NotEq, translate: Translator) -> dict[str, Any]:
    spec = {"$ne": _thaw(query.value)}
    return _or_missing(query.key, spec) if query.value is None else {_mongo_path(query.key): spec}


@to_mongo.register(Comparison)
def _(query: Comparison, translate: Translator) -> dict[str, Any]:
    if _order_class(query.value) is None:
        raise NotTranslatable(f"cannot compare with {query.value!r} in mongo")
    operator = {op: mongo_op for mongo_op, op in _MONGO_COMPARISONS.items()}[query.operator]
    return {_mongo_path(query.key): {operator: query.value}}


@to_mongo.register(In)
def _(query: In, translate: Translator) -> dict[str, Any]:
    spec = {"$in": _thaw(query.values)}
    if None in query.values:
        return _not_missing(query.key, spec)
    return {_mongo_path(query.key): spec}


@to_mongo.register(NotIn)
def _(query: NotIn, translate: Translator) -> dict[str, Any]:
    spec = {"$nin": _thaw(query.values)}
    if None in query.values:
        return _or_missing(query.key, spec)
    return {_mongo_path(query.key): spec}


@to_mongo.register(Regex)
def _(query: Regex, translate: Translator) -> dict[str, Any]:
    spec = {"$regex": query.pattern}
    if not query.case_sensitive:
        spec["$options"] = "i"
    return {_mongo_path(query.key): spec}


@to_mongo.register(Contains)
def _(query: Contains, translate: Translator) -> dict[str, Any]:
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
