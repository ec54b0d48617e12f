"""Keys, values, the query base class and its registry, the evaluator and translators."""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BadQuery
from .limits import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MAX_VALUES,
    check_count,
    check_depth,
    check_integer,
    check_key_text,
    check_string,
    combined_shape,
)

#: Documents of a run record that a key can address with a ``"<name>."`` prefix. Keys without
#: one of these prefixes address the start document. Extend it to address more documents.
DOCUMENT_PREFIXES: tuple[str, ...] = ("start", "stop", "descriptors", "summary")

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
        If ``key`` is not a non-empty string of non-empty dot-separated parts, or is longer
        than :data:`~intake_broker.queries.limits.MAX_KEY_LENGTH` characters or
        :data:`~intake_broker.queries.limits.MAX_KEY_PARTS` parts.
    """
    check_key_text(key)
    if not key or "" in key.split("."):
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


@functools.lru_cache(maxsize=4096)
def _path(key: str, prefixes: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """``(document, path)`` of a key that a query's constructor checked (no checks again)."""
    parts = tuple(key.split("."))
    if len(parts) > 1 and parts[0] in prefixes:
        return parts[0], parts[1:]
    return "start", parts


def _values(record: Mapping[str, Any], key: str) -> list[Any]:
    """The values ``key`` addresses in a run record (empty when missing or no such document)."""
    document, path = _path(key, DOCUMENT_PREFIXES)
    doc = record.get(document)
    return [] if doc is None else _lookup(doc, path)


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
    """Check that ``value`` is JSON-like and within the query limits, and make it hashable
    (lists to tuples)."""
    counter = [0]
    return _freeze_node(value, what, 1, counter)


def _freeze_node(value: Any, what: str, depth: int, counter: list[int]) -> Any:
    if not isinstance(value, (list, tuple, Mapping)):  # count the scalars
        counter[0] += 1
        if counter[0] > MAX_VALUES:
            check_count(counter[0], f"query {what}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_string(value, f"a string in query {what}")
    if isinstance(value, numbers.Integral):
        return check_integer(int(value), f"query {what}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple, Mapping)):
        check_depth(depth, f"{what} of a query")
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_node(item, what, depth + 1, counter) for item in value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return _FrozenDict(
            {
                check_string(k, f"a key in query {what}"): _freeze_node(v, what, depth + 1, counter)
                for k, v in value.items()
            }
        )
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    raise BadQuery(
        f"query {what} {shown} ({type(value).__name__}) is not JSON-like: give a str, int, "
        "float, bool, None, or a list or dict of those"
    )


def thaw(value: Any) -> Any:
    """The JSON form of a frozen value (tuples to lists, frozen dicts to dicts)."""
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
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


def order_class(value: Any) -> str | None:
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
    if TYPE_CHECKING:  # subclasses are dataclasses: `fields(query)` works on any query
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    #: Names of the fields holding nested queries (a query or a tuple of queries).
    _query_fields: ClassVar[tuple[str, ...]] = ()
    #: The parts of a run record this query type looks at, when not those its keys name
    #: (see :func:`documents_needed`; annotation queries look at ``annotations``).
    _documents: ClassVar[frozenset[str] | None] = None

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
                encoded[field.name] = thaw(value)
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
            if len(obj) > MAX_QUERY_CHARS:
                raise BadQuery(
                    f"an encoded query of {len(obj):,} characters is too long; at most "
                    f"{MAX_QUERY_CHARS:,} are allowed"
                )
            obj = load_json(obj, "an encoded query")
        try:
            query = _decode(obj, 1)
        except RecursionError:
            check_depth(MAX_DEPTH + 1)
            raise
        except (TypeError, ValueError, OverflowError, AttributeError) as err:
            if isinstance(err, BadQuery):
                raise
            raise BadQuery(f"a malformed encoded query: {err}") from None
        if not isinstance(query, cls):
            raise BadQuery(f"expected an encoded {cls.__name__} query, got type {query.kind!r}")
        return query


def load_json(text: str | bytes, what: str) -> Any:
    """``json.loads(text)``, refusing what is not JSON (or nests too deep) with BadQuery."""
    try:
        return json.loads(text)
    except RecursionError:
        raise BadQuery(f"{what} nests too deep; at most {MAX_DEPTH} levels are allowed") from None
    except (ValueError, TypeError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise BadQuery(f"{what} is not valid JSON: {err}") from None


def _decode(obj: Any, depth: int) -> Query:
    """A query from an encoded dict, its nested queries counted in ``depth``."""
    check_depth(depth)
    if not isinstance(obj, Mapping) or "type" not in obj:
        raise BadQuery(
            f"an encoded query must be a dict with a 'type', such as "
            f"{{'type': 'eq', 'key': 'plan_name', 'value': 'scan'}}; got {_short(obj)}"
        )
    kind = obj["type"]
    qtype = QUERY_TYPES.get(kind) if isinstance(kind, str) else None
    if qtype is None:
        shown = repr(kind) if len(repr(kind)) <= 60 else repr(kind)[:60] + "..."
        raise BadQuery(
            f"unknown query type {shown}; registered types: {', '.join(sorted(QUERY_TYPES))}"
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
            kwargs[name] = _decode(value, depth + 1)
        elif isinstance(value, (list, tuple)):
            check_count(len(value), f"field {name!r} of a {kind!r} query")
            kwargs[name] = tuple(_decode(item, depth + 1) for item in value)
        else:
            raise BadQuery(f"field {name!r} of a {kind!r} query must hold encoded queries")
    return qtype(**kwargs)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages."""
    try:
        shown = repr(value)
    except RecursionError:
        shown = f"a deeply nested {type(value).__name__}"
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _parts(query: Query, combinator: type[And] | type[Or]) -> tuple[Query, ...]:
    return query.queries if isinstance(query, combinator) else (query,)


def documents_needed(query: Query | None) -> set[str]:
    """The parts of a run record a query looks at (``start``, ``stop``, ``descriptors``,
    ``summary``, ``annotations``), so that stores fetch only those."""
    if query is None:
        return set()
    if query._documents is not None:
        return set(query._documents)
    needed: set[str] = set()
    for field in fields(query):
        value = getattr(query, field.name)
        if field.name in query._query_fields:
            for nested in (value,) if isinstance(value, Query) else value:
                needed |= documents_needed(nested)
        elif field.name == "key" and isinstance(value, str):
            needed.add(resolve_key(value)[0])
    return needed or {"start"}


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

    def rule(self, query_type: type[Query]) -> _Rule:
        """The rule registered for ``query_type`` (to share it with another translator, whose
        recursion it then follows)."""
        return self._rules[query_type]

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


# -- the combinators (what ``&``, ``|`` and ``~`` build) --------------------------------------


def _check_queries(query: Query, queries: Any, name: str) -> tuple[Query, ...]:
    """The sub-queries of a combinator as a tuple; records its size (depth and terms) on
    ``query`` after checking it against the limits."""
    if not isinstance(queries, (list, tuple)) or not all(isinstance(q, Query) for q in queries):
        raise BadQuery(f"{name} needs a list of queries, got {type(queries).__name__}")
    object.__setattr__(query, "_shape", combined_shape(queries))
    return tuple(queries)


@register_query("and")
@dataclass(frozen=True)
class And(Query):
    """Every one of ``queries`` matches (true when there are none)."""

    queries: tuple[Query, ...]
    _query_fields: ClassVar[tuple[str, ...]] = ("queries",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _check_queries(self, self.queries, "And"))

    def match(self, record: Mapping[str, Any]) -> bool:
        return all(query.match(record) for query in self.queries)


@register_query("or")
@dataclass(frozen=True)
class Or(Query):
    """At least one of ``queries`` matches (false when there are none)."""

    queries: tuple[Query, ...]
    _query_fields: ClassVar[tuple[str, ...]] = ("queries",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", _check_queries(self, self.queries, "Or"))

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
            raise BadQuery(f"Not needs a query, got {type(self.query).__name__}")
        object.__setattr__(self, "_shape", combined_shape((self.query,)))

    def match(self, record: Mapping[str, Any]) -> bool:
        return not self.query.match(record)
