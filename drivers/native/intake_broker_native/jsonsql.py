"""How SQLite and PostgreSQL read JSON: the leaves of a query translation.

A leaf becomes a :class:`Cond` (see :mod:`.sqlquery`): ``yes`` for the rows that certainly
match, ``maybe`` for those that may. The exact leaves hold wherever a key's path does not run
through a list (the caller adds that guard, :meth:`Dialect.through_list`).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from intake_broker.queries import Regex

from .schema import runs

TRUE = sa.true()
FALSE = sa.false()
_EXACT_INT = 2**53
SQL_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
#: Keys with a column of their own: (column, the value class it holds).
COLUMNS = {
    ("start", "uid"): ("uid", "str"),
    ("start", "time"): ("time", "number"),
    ("start", "scan_id"): ("scan_id", "number"),
    ("start", "plan_name"): ("plan_name", "str"),
}


@dataclass(frozen=True)
class Cond:
    """``yes``: the rows that certainly match; ``maybe``: those that may (a superset)."""

    yes: Any
    maybe: Any

    @property
    def exact(self) -> bool:
        return self.yes is self.maybe


def exact(expr: Any) -> Cond:
    return Cond(expr, expr)


def inexact(superset: Any = TRUE) -> Cond:
    return Cond(FALSE, superset)


def never_null(expr: Any) -> Any:
    """A condition that is never NULL (so that NOT keeps meaning 'does not match').

    Leaves stay NULL-able (a coalesce around an indexed column hides it from the index);
    :func:`_not` and the through-list guards apply this."""
    return sa.func.coalesce(expr, FALSE, type_=sa.Boolean)


def value_class(value: Any) -> str | None:
    """How a query value compares in SQL: "str", "number", "bool", "null", or None when SQL
    cannot compare it exactly (lists, dicts, huge integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    if isinstance(value, numbers.Integral):
        return "number" if abs(int(value)) <= _EXACT_INT else None
    if isinstance(value, numbers.Real):
        return "number" if math.isfinite(value) else "nan"
    return None


# -- the dialects -----------------------------------------------------------------------------


class Dialect:
    """How one database reads JSON: the leaves of a translation."""

    name = ""

    def document(self, part: str) -> Any:
        return {"start": runs.c.start_q, "stop": runs.c.stop_q, "summary": runs.c.summary_q}[part]

    def through_list(self, doc: Any, parts: tuple[str, ...]) -> Any | None:
        """True where a proper prefix of the path holds a list (then SQL's path lookup and the
        generic evaluator's may differ); None when that cannot happen."""
        raise NotImplementedError

    def any_equal(self, doc: Any, parts: tuple[str, ...], values: list) -> Cond:
        raise NotImplementedError

    def compare(self, doc: Any, parts: tuple[str, ...], op: str, value: Any) -> Cond:
        raise NotImplementedError

    def regex(self, doc: Any, parts: tuple[str, ...], query: Regex) -> Cond:
        raise NotImplementedError

    def contains(self, doc: Any, parts: tuple[str, ...], value: Any) -> Cond:
        raise NotImplementedError

    def present(self, doc: Any, parts: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def column_regex(self, column: Any, query: Regex) -> Cond:
        raise NotImplementedError


_SQLITE_TYPES = {"str": ("text",), "number": ("integer", "real"), "null": ("null",)}


class _SQLite(Dialect):
    """SQLite's JSON1: ``json_type``/``json_each`` on the JSON text; ``ib_regexp`` (a Python
    function registered on every connection) for regular expressions."""

    name = "sqlite"

    @staticmethod
    def path(parts: Sequence[str]) -> str | None:
        if any('"' in p or "\\" in p or not p.isprintable() for p in parts):
            return None
        return "$" + "".join(f'."{p}"' for p in parts)

    def through_list(self, doc, parts):
        prefixes = [self.path(parts[:i]) for i in range(1, len(parts))]
        if not prefixes:
            return None
        return sa.or_(*(never_null(sa.func.json_type(doc, p) == "array") for p in prefixes))

    def _elements(self, doc, path, where, *, list_only=False):
        each = sa.func.json_each(doc, path).table_valued("key", "value", "type").alias("je")
        member = sa.func.typeof(each.c.key) == "integer"
        if not list_only:
            member = sa.or_(each.c.key.is_(None), member)
        return sa.exists().select_from(each).where(member, where(each))

    @staticmethod
    def _match(each, value):
        kind = value_class(value)
        if kind == "bool":
            return each.c.type == ("true" if value else "false")
        if kind == "null":
            return each.c.type == "null"
        return sa.and_(each.c.type.in_(_SQLITE_TYPES[kind]), each.c.value == value)

    @classmethod
    def _match_any(cls, each, values):
        """The element equals one of ``values``: one ``IN`` per class of value, so that the
        expression stays shallow for a long list (SQLite refuses trees deeper than 1000)."""
        by_class: dict[str, list] = {}
        for value in values:
            by_class.setdefault(value_class(value), []).append(value)
        tests = [  # true, false, null: three tests at most
            cls._match(each, value)
            for kind in ("bool", "null")
            for value in {repr(v): v for v in by_class.get(kind, ())}.values()
        ]
        for kind in ("str", "number"):
            if kind in by_class:
                tests.append(
                    sa.and_(each.c.type.in_(_SQLITE_TYPES[kind]), each.c.value.in_(by_class[kind]))
                )
        return sa.or_(*tests)

    def any_equal(self, doc, parts, values):
        path = self.path(parts)
        if path is None:
            return inexact()
        return exact(self._elements(doc, path, lambda e: self._match_any(e, values)))

    def compare(self, doc, parts, op, value):
        path, kind = self.path(parts), value_class(value)
        if path is None or kind not in ("str", "number"):
            return inexact(self.present(doc, parts)) if path else inexact()
        return exact(
            self._elements(
                doc,
                path,
                lambda e: sa.and_(
                    e.c.type.in_(_SQLITE_TYPES[kind]), e.c.value.op(SQL_OPS[op])(value)
                ),
            )
        )

    def regex(self, doc, parts, query):
        path = self.path(parts)
        if path is None:
            return inexact()
        flags = 0 if query.case_sensitive else re.IGNORECASE
        return exact(
            self._elements(
                doc,
                path,
                lambda e: sa.and_(
                    e.c.type == "text", sa.func.ib_regexp(query.pattern, flags, e.c.value) == 1
                ),
            )
        )

    def contains(self, doc, parts, value):
        path = self.path(parts)
        if path is None:
            return inexact()
        is_list = sa.func.json_type(doc, path) == "array"
        if value_class(value) in (None, "nan"):
            return inexact(is_list) if value_class(value) is None else exact(FALSE)
        return exact(
            sa.and_(
                is_list, self._elements(doc, path, lambda e: self._match(e, value), list_only=True)
            )
        )

    def present(self, doc, parts):
        path = self.path(parts)
        return TRUE if path is None else sa.func.json_type(doc, path).is_not(None)

    def column_regex(self, column, query):
        flags = 0 if query.case_sensitive else re.IGNORECASE
        return exact(sa.func.ib_regexp(query.pattern, flags, column) == 1)


class _Postgres(Dialect):
    """PostgreSQL's SQL/JSON path language on JSONB (``@?``, served by the GIN index).

    Paths are evaluated in *strict* mode (lax mode would also unwrap lists nested in lists,
    which the generic evaluator does not), each test once on the value and once on its
    elements (``[*]``); a path through a list is left to Python (:meth:`through_list`).
    """

    name = "postgresql"

    @staticmethod
    def jsonpath(parts: Sequence[str]) -> str:
        return "strict $" + "".join("." + json.dumps(p) for p in parts)

    @staticmethod
    def _test(doc, jsonpath: str) -> Any:
        return doc.op("@?", is_comparison=True)(
            sa.cast(sa.literal(jsonpath, sa.Text), postgresql.JSONPATH)
        )

    def _value_or_elements(self, doc, parts, test: str) -> Any:
        path = self.jsonpath(parts)
        return sa.or_(
            self._test(doc, f"{path} ? ({test})"), self._test(doc, f"{path}[*] ? ({test})")
        )

    def through_list(self, doc, parts):
        return sa.or_(
            *(
                never_null(
                    sa.func.jsonb_typeof(sa.func.jsonb_extract_path(doc, *parts[:i])) == "array"
                )
                for i in range(1, len(parts))
            )
        )

    def any_equal(self, doc, parts, values):
        tests = " || ".join(f"@ == {json.dumps(v)}" for v in values)
        return exact(self._value_or_elements(doc, parts, tests))

    def compare(self, doc, parts, op, value):
        if value_class(value) != "number":  # string order in jsonpath may follow a collation
            return inexact(self.present(doc, parts))
        return exact(self._value_or_elements(doc, parts, f"@ {SQL_OPS[op]} {json.dumps(value)}"))

    def regex(self, doc, parts, query):
        return inexact(self.present(doc, parts))  # POSIX regular expressions are not Python's

    def contains(self, doc, parts, value):
        kind = value_class(value)
        if kind is None:
            return inexact(self.present(doc, parts))
        if kind == "nan":
            return exact(FALSE)
        return exact(self._test(doc, f"{self.jsonpath(parts)}[*] ? (@ == {json.dumps(value)})"))

    def present(self, doc, parts):
        return self._test(doc, self.jsonpath(parts))

    def column_regex(self, column, query):
        return inexact(column.is_not(None))


DIALECTS: dict[str, Dialect] = {"sqlite": _SQLite(), "postgresql": _Postgres()}
