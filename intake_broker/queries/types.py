"""The query types of the core."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import BadQuery
from .base import (  # the combinators live with Query, whose operators build them
    COMPARISON_OPERATORS,
    Query,
    _candidates,
    _equal,
    _freeze,
    _values,
    order_class,
    register_query,
    resolve_key,
)
from .limits import (
    MAX_STRING_LENGTH,
    check_count,
    check_integer,
    check_string,
)
from .regex import compile_regex, regex_search

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
        kind = order_class(self.value)
        compare = _COMPARE[self.operator]
        return kind is not None and any(
            order_class(c) == kind and compare(c, self.value)
            for c in _candidates(_values(record, self.key))
        )


def _freeze_values(values: Any) -> tuple[Any, ...]:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise BadQuery(f"query values must be a list, got {type(values).__name__}")
    check_count(len(values), "an In/NotIn list")
    return _freeze(list(values), "values")


@register_query("in")
@dataclass(frozen=True)
class In(Query):
    """The value at ``key`` (or an element of it) equals one of ``values``."""

    key: str
    values: tuple[Any, ...]  # as stored; the constructor takes any list, tuple or set

    if TYPE_CHECKING:

        def __init__(self, key: str, values: Collection[Any]) -> None: ...

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
    values: tuple[Any, ...]  # as stored; the constructor takes any list, tuple or set

    if TYPE_CHECKING:

        def __init__(self, key: str, values: Collection[Any]) -> None: ...

    def __post_init__(self) -> None:
        resolve_key(self.key)
        object.__setattr__(self, "values", _freeze_values(self.values))

    def match(self, record: Mapping[str, Any]) -> bool:
        return not In(self.key, self.values).match(record)


@register_query("regex")
@dataclass(frozen=True)
class Regex(Query):
    """A string at ``key`` (or in a list there) contains a match of ``pattern``.

    Patterns use RE2 syntax (Python's ``re`` without backreferences and lookaround) and run in
    time linear in the text on every store (:mod:`intake_broker.queries.regex`); at most
    :data:`~intake_broker.queries.limits.MAX_PATTERN_LENGTH` characters.
    """

    key: str
    pattern: str
    case_sensitive: bool = True

    def __post_init__(self) -> None:
        resolve_key(self.key)
        if not isinstance(self.pattern, str) or not isinstance(self.case_sensitive, bool):
            raise BadQuery(
                f"Regex needs a str pattern and a bool case_sensitive, got "
                f"{type(self.pattern).__name__} and {self.case_sensitive!r}"
            )
        compile_regex(self.pattern, self.case_sensitive)

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            regex_search(self.pattern, self.case_sensitive, c)
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
    if not isinstance(name, str) or len(name) > 100:
        raise BadQuery(
            f"a time zone must be an IANA name such as 'Europe/Berlin', got {type(name).__name__}"
        )
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
            when = datetime.fromisoformat(check_string(value, f"TimeRange {what}", 100).strip())
        except ValueError:
            when = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        when = datetime.combine(value, dtime())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        seconds = float(check_integer(int(value), f"TimeRange {what}"))
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
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
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
        raise BadQuery(
            f"TimeRange {what}={shown} is not a time: give epoch seconds, a datetime, "
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

    since: float | None = None  # as stored; the constructor takes the times listed above
    until: float | None = None
    timezone: str | None = None

    if TYPE_CHECKING:

        def __init__(
            self,
            since: float | date | str | None = None,
            until: float | date | str | None = None,
            timezone: str | None = None,
        ) -> None: ...

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
        if (
            not isinstance(self.prefix, str)
            or len(self.prefix) > MAX_STRING_LENGTH
            or not _UID_PREFIX.fullmatch(self.prefix)
        ):
            shown = repr(self.prefix)
            shown = shown if len(shown) <= 80 else shown[:80] + "..."
            raise BadQuery(
                f"uid prefix {shown} is not a non-empty string of hex digits and "
                "dashes, such as '3f2a' or '3f2a9c1e-'"
            )

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            isinstance(c, str) and c.startswith(self.prefix)
            for c in _candidates(_values(record, "start.uid"))
        )
