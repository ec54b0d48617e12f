"""``Key``: queries written with Python operators, as databroker 2 (tiled) spells them.

>>> from intake_broker.queries import Key
>>> Key("plan_name") == "scan"
Eq(key='plan_name', value='scan')
>>> (Key("scan_id") >= 3) & (Key("sample").in_(["Au", "Si"]))  # doctest: +ELLIPSIS
And(...)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .base import Query, resolve_key
from .types import Comparison, Eq, In, KeyPresent, NotEq, NotIn


class Key:
    """A metadata key (a dotted path, ``"stop.exit_status"`` for the stop document) whose
    comparisons with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` are queries."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        resolve_key(key)  # the query layer's check: a string of dotted names, bounded
        self.key = key

    def __eq__(self, value: Any) -> Query:  # type: ignore[override]
        return Eq(self.key, value)

    def __ne__(self, value: Any) -> Query:  # type: ignore[override]
        return NotEq(self.key, value)

    def __lt__(self, value: Any) -> Query:
        return Comparison("lt", self.key, value)

    def __le__(self, value: Any) -> Query:
        return Comparison("le", self.key, value)

    def __gt__(self, value: Any) -> Query:
        return Comparison("gt", self.key, value)

    def __ge__(self, value: Any) -> Query:
        return Comparison("ge", self.key, value)

    def in_(self, values: Collection[Any]) -> Query:
        """The value is one of ``values``."""
        return In(self.key, list(values))

    def not_in(self, values: Collection[Any]) -> Query:
        """The value is none of ``values`` (or the key is missing)."""
        return NotIn(self.key, list(values))

    def exists(self, present: bool = True) -> Query:
        """The key is present (or, with ``present=False``, missing)."""
        return KeyPresent(self.key, present)

    __hash__ = None  # type: ignore[assignment]  # == builds a query, so a Key is no dict key

    def __repr__(self) -> str:
        return f"Key({self.key!r})"
