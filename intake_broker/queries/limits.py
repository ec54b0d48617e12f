"""The bounds every query is held to, checked where each query object is built.

Every way a query enters (objects built in Python, :meth:`Query.decode` of the JSON a server
receives, databroker-style dicts through ``from_mongo``, the query language) ends in the
constructors of the query types, which call the checks below; the parsers also count nesting
as they recurse, so that a deep input is refused before Python's recursion limit is near. A
query outside a bound is refused with :class:`~intake_broker.errors.BadQuery` naming the bound
and the value that broke it.

The bounds are generous for real use (a hand-written or generated search has a few dozen terms,
keys of a few parts) and small enough that no query costs a store much more than a scan of its
runs:

=========================  =========  =========================================================
bound                      value      what it counts
=========================  =========  =========================================================
:data:`MAX_DEPTH`          32         nesting of ``And``/``Or``/``Not`` (and of values)
:data:`MAX_TERMS`          256        queries in one query, combinators included
:data:`MAX_VALUES`         1,000      values of one ``In``/``NotIn``/``ScanID`` list, or
                                      scalars in one value
:data:`MAX_KEY_LENGTH`     512        characters of a key
:data:`MAX_KEY_PARTS`      32         dotted parts of a key
:data:`MAX_STRING_LENGTH`  10,000     characters of a string value
:data:`MAX_PATTERN_LENGTH` 1,000      characters of a regular expression (and ``Fuzzy`` and
                                      ``FullText`` texts: 256 and 1,000)
:data:`MAX_INTEGER`        2**63 - 1  integers lie in the signed 64-bit range, as stored ones
:data:`MAX_QUERY_CHARS`    1,000,000  characters of an encoded (JSON) or written query
=========================  =========  =========================================================

Strings in queries (keys, values, patterns) must be valid Unicode without NUL characters: a
lone surrogate cannot be encoded for any database, and NUL cannot be stored in PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadQuery

#: Deepest nesting of combinators (And, Or, Not), and of lists and dicts in a value.
MAX_DEPTH = 32
#: Most queries in one query, counting every combinator and leaf.
MAX_TERMS = 256
#: Most values in one In/NotIn/ScanID list, and most scalars in one value.
MAX_VALUES = 1000
#: Longest key, in characters, and most dotted parts in one.
MAX_KEY_LENGTH = 512
MAX_KEY_PARTS = 32
#: Longest string value.
MAX_STRING_LENGTH = 10_000
#: Longest regular expression.
MAX_PATTERN_LENGTH = 1000
#: Longest FullText text and Fuzzy text; most edits a Fuzzy query allows.
MAX_TEXT_LENGTH = 1000
MAX_FUZZY_LENGTH = 256
MAX_FUZZY_EDITS = 8
#: Integers in queries lie in the signed 64-bit range, as integers in stored documents do.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
#: Longest query text (JSON or the query language).
MAX_QUERY_CHARS = 1_000_000


def check_string(value: str, what: str, limit: int = MAX_STRING_LENGTH) -> str:
    """Refuse a string longer than ``limit``, holding NUL or a lone surrogate.

    Parameters
    ----------
    value : str
        The string.
    what : str
        What it is, for the message ("query key 'a.b'", "Regex pattern").
    limit : int
        Most characters allowed.

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    BadQuery
        Naming ``what``, the bound and how to stay within it.
    """
    if len(value) > limit:
        raise BadQuery(
            f"{what} is {len(value):,} characters long; at most {limit:,} are allowed in a query"
        )
    if "\x00" in value:
        raise BadQuery(f"{what} holds a NUL character (\\x00), which no query can search for")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadQuery(
            f"{what} holds a lone surrogate ({value[err.start : err.end]!r} at position "
            f"{err.start}), which is not valid Unicode; give a valid Unicode string"
        ) from None
    return value


def check_key_text(key: Any) -> str:
    """Refuse a key that is not a string within :data:`MAX_KEY_LENGTH` and
    :data:`MAX_KEY_PARTS` (checked before the key is split, so a huge key costs nothing)."""
    if not isinstance(key, str):
        raise BadQuery(
            f"bad query key {key!r} ({type(key).__name__}): give a dotted path of names as a "
            "string, such as 'plan_name', 'sample.name' or 'stop.exit_status'"
        )
    shown = key if len(key) <= 60 else key[:60] + "..."
    check_string(key, f"query key {shown!r}", MAX_KEY_LENGTH)
    parts = key.count(".") + 1
    if parts > MAX_KEY_PARTS:
        raise BadQuery(
            f"query key {shown!r} has {parts} dotted parts; at most {MAX_KEY_PARTS} are allowed"
        )
    return key


def check_integer(value: int, what: str) -> int:
    """Refuse an integer outside the signed 64-bit range."""
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise BadQuery(
            f"{what} {value} is outside the 64-bit integer range [-2**63, 2**63 - 1] that "
            "documents can hold; use a float (e.g. 1e300 or float('inf')) for an unbounded "
            "comparison"
        )
    return value


def check_depth(depth: int, what: str = "query") -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise BadQuery(
            f"the {what} is nested more than {MAX_DEPTH} levels deep; flatten it (And and Or "
            "take any number of queries) or split it into several searches"
        )


def check_terms(terms: int) -> None:
    """Refuse a query of more than :data:`MAX_TERMS` queries."""
    if terms > MAX_TERMS:
        raise BadQuery(
            f"the query has {terms} terms; at most {MAX_TERMS} are allowed: use In(key, "
            f"[...]) for many values of one key (up to {MAX_VALUES:,}), or several searches"
        )


def check_count(count: int, what: str) -> None:
    """Refuse a list of more than :data:`MAX_VALUES` values."""
    if count > MAX_VALUES:
        raise BadQuery(
            f"{what} holds {count:,} values; at most {MAX_VALUES:,} are allowed in a query: "
            "split the search into several"
        )


class QueryShape:
    """The size of one query: its nesting ``depth`` and number of ``terms`` (queries)."""

    __slots__ = ("depth", "terms")

    def __init__(self, depth: int = 1, terms: int = 1):
        self.depth = depth
        self.terms = terms


def combined_shape(children: Any) -> QueryShape:
    """The shape of a combinator over ``children`` (query objects), checked against
    :data:`MAX_DEPTH` and :data:`MAX_TERMS`."""
    depth, terms = 0, 1
    for child in children:
        shape = shape_of(child)
        depth = max(depth, shape.depth)
        terms += shape.terms
    shape = QueryShape(depth + 1, terms)
    check_depth(shape.depth)
    check_terms(shape.terms)
    return shape


def shape_of(query: Any) -> QueryShape:
    """The shape a query object recorded when it was built (a leaf: depth 1, one term)."""
    return getattr(query, "_shape", None) or QueryShape()
