"""Queries as SQL: ``intake_broker.queries`` objects translated for SQLite and PostgreSQL.

A query becomes a :class:`Cond`, a pair of SQL conditions:

``yes``
    rows that certainly match;
``maybe``
    rows that may match (always a superset of ``yes``).

Where SQL gives exactly the generic evaluator's answer (the indexed columns, JSON paths that do
not pass through a list, ...), ``yes`` and ``maybe`` are the same expression and the database
answers alone, with its indexes, sort and pagination. Where it cannot (a path that runs through
a list, a regular expression in PostgreSQL, a comparison with a list, a query type without a
rule, a run marked ``irregular``), the rows in ``maybe`` but not in ``yes`` are evaluated in
Python with :func:`intake_broker.queries.evaluate`. ``Not`` swaps the two (``yes = not
maybe``), so every combination stays correct: a query is never answered wrongly, only more
slowly.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from intake_broker.queries import (
    And,
    Annotated,
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
    TimeRange,
    Translator,
    resolve_key,
)
from intake_broker.queries.limits import MAX_VALUES
from intake_broker.store.summary import summary_path

from .jsonsql import (
    COLUMNS,
    DIALECTS,
    FALSE,
    SQL_OPS,
    TRUE,
    Cond,
    Dialect,
    exact,
    inexact,
    never_null,
    value_class,
)
from .schema import runs, summary_values

__all__ = ["Cond", "order_by", "translate"]


# -- the rules --------------------------------------------------------------------------------


def _json_leaf(dialect: Dialect, key: str, leaf) -> Cond:
    """Apply a JSON leaf rule, adding the 'path runs through a list' uncertainty."""
    part, *rest = resolve_key(key)
    parts = tuple(rest)
    doc = dialect.document(part)
    cond = leaf(doc, parts)
    if part == "summary":  # no summary yet (acquiring) or an inexact query copy: Python
        unsure = sa.or_(doc.is_(None), runs.c.summary_doc.is_not(None))
        cond = Cond(sa.and_(sa.not_(unsure), cond.yes), sa.or_(unsure, cond.maybe))
    unsure = dialect.through_list(doc, parts) if len(parts) > 1 else None
    if unsure is None:
        return cond
    return Cond(sa.and_(sa.not_(unsure), cond.yes), sa.or_(unsure, cond.maybe))


def _column(key: str) -> tuple[Any, str] | None:
    found = COLUMNS.get(resolve_key(key))
    return None if found is None else (runs.c[found[0]], found[1])


_BIGINT = 2**63


def _as_bigint(value: Any) -> int | None:
    """A number as the integer a BIGINT column could hold equal to it, else None."""
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if -_BIGINT <= value < _BIGINT else None


def _int_compare(col: Any, op: str, value: Any) -> Any:
    """``col op value`` for a BIGINT column and any finite number, without the database
    casting ``value`` to an integer (1.5 would become 2)."""
    if op in ("gt", "ge"):
        bound = math.floor(value) + 1 if op == "gt" else math.ceil(value)
        if bound >= _BIGINT:
            return FALSE
        return col >= max(bound, -_BIGINT)
    bound = math.ceil(value) - 1 if op == "lt" else math.floor(value)
    if bound < -_BIGINT:
        return FALSE
    return col <= min(bound, _BIGINT - 1)


def _column_class(value: Any) -> str | None:
    """How a value compares with a column: columns hold exact integers, floats and text."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return "number"
    return None


def _compare(op: str, value: Any) -> Any:
    """A test of ``summary_values.value`` for one comparison with a number."""
    return lambda column: column.op(SQL_OPS[op])(float(value))


def _summary_cond(path: str, test) -> Cond:
    """The runs whose summary number at ``path`` passes ``test``, from the indexed
    ``summary_values`` rows. Runs still acquiring (no summary written) and numbers a float
    cannot hold exactly are left to Python."""
    value = summary_values.c.value
    found = sa.select(summary_values.c.run_uid).where(summary_values.c.path == path, test(value))
    inexact_numbers = sa.select(summary_values.c.run_uid).where(
        summary_values.c.path == path, value.is_(None)
    )
    acquiring = sa.select(runs.c.uid).where(runs.c.summary_q.is_(None))
    return Cond(
        runs.c.uid.in_(found), runs.c.uid.in_(sa.union_all(found, inexact_numbers, acquiring))
    )


def _eq_values(dialect: Dialect, key: str, values: Sequence[Any]) -> Cond:
    """The value at ``key`` (or an element of it) equals one of ``values``."""
    classes = [value_class(v) for v in values]
    path = summary_path(key)
    if path is not None and classes and all(c in ("number", "nan") for c in classes):
        wanted = [float(v) for v in values if v == v]  # NaN equals nothing; inf may be kept
        if not wanted:
            return exact(FALSE)
        return _summary_cond(path, lambda column: column.in_(wanted))
    column = _column(key)
    if column is not None:
        col, kind = column
        wanted = [v for v in values if _column_class(v) == kind]
        if col.name == "scan_id":
            wanted = [i for i in map(_as_bigint, wanted) if i is not None]
        elif kind == "number":
            wanted = [float(v) for v in wanted]
        return exact(col.in_(wanted)) if wanted else exact(FALSE)
    if None in classes:  # a list or dict: SQL cannot compare structures like Python
        return _json_leaf(dialect, key, lambda doc, parts: inexact(dialect.present(doc, parts)))
    wanted = [v for v, c in zip(values, classes, strict=True) if c != "nan"]
    if not wanted:
        return exact(FALSE)
    return _json_leaf(dialect, key, lambda doc, parts: dialect.any_equal(doc, parts, wanted))


def _distinct(values: Sequence[Any]) -> list:
    """Values without repeats (False and 0 are different values here, as in queries)."""
    seen: dict[tuple[bool, Any], Any] = {}
    for value in values:
        seen.setdefault((isinstance(value, bool), value), value)
    return list(seen.values())


def _combine(conds: list[Cond], join) -> Cond:
    if all(c.exact for c in conds):
        return exact(join(*(c.yes for c in conds)))
    return Cond(join(*(c.yes for c in conds)), join(*(c.maybe for c in conds)))


def _not(cond: Cond) -> Cond:
    # Conditions may be NULL where a column or JSON value is missing; a WHERE treats NULL as
    # false, but NOT NULL is NULL too: negations see NULL as false first.
    if cond.exact:
        return exact(sa.not_(never_null(cond.yes)))
    return Cond(sa.not_(never_null(cond.maybe)), sa.not_(never_null(cond.yes)))


def _infinite_bound(q: Comparison) -> Cond | Comparison:
    """A comparison with an infinity, as the generic evaluator answers it.

    Summary numbers (which may be infinite) compare with it in SQL. Elsewhere the rows SQL
    answers hold only finite numbers (a run with an infinity is ``irregular``, evaluated in
    Python): every number is below ``inf`` and above ``-inf``, so ``x < inf`` is ``x`` being a
    number (``x >= -DBL_MAX``), and ``x > inf`` matches nothing.
    """
    path = summary_path(q.key)
    if path is not None:
        return _summary_cond(path, _compare(q.operator, q.value))
    below = q.operator in ("lt", "le")
    if below != (q.value > 0):
        return exact(FALSE)
    return Comparison("ge", q.key, -sys.float_info.max)


def _merge_values(queries: Sequence[Query], one: type, many: type) -> list[Query]:
    """``queries`` with the tests of one key against values merged into one list test:
    ``Eq(k, a) | Eq(k, b)`` is ``In(k, [a, b])`` (``one=Eq, many=In``) and ``NotEq(k, a) &
    NotEq(k, b)`` is ``NotIn(k, [a, b])``, exactly as the evaluator sees them. A long query of
    such terms then costs one SQL test per key instead of one per value."""
    values: dict[str, list] = {}
    merged: list[Query] = []
    for query in queries:
        if type(query) is one or type(query) is many:
            key = query.key
            if key not in values:
                values[key] = []
                merged.append(key)  # type: ignore[arg-type] (its place, filled below)
            values[key] += [query.value] if type(query) is one else list(query.values)
        else:
            merged.append(query)
    out: list[Query] = []
    for part in merged:
        if not isinstance(part, str):
            out.append(part)
            continue
        found = values[part]
        # an empty list stays one (empty) test: In(k, []) matches nothing, NotIn(k, []) all
        chunks = range(0, max(len(found), 1), MAX_VALUES)
        out += [many(part, found[i : i + MAX_VALUES]) for i in chunks]
    return out


def make_translator(dialect: Dialect) -> Translator:
    """The rules for one database."""
    tr = Translator(f"sql-{dialect.name}")

    def sub(query: Query) -> Cond:
        try:
            return tr(query)
        except NotTranslatable:
            return inexact()  # a query type without a rule: evaluated in Python

    @tr.register(Eq)
    def _(q: Eq, t) -> Cond:
        return _eq_values(dialect, q.key, [q.value])

    @tr.register(In)
    def _(q: In, t) -> Cond:
        return _eq_values(dialect, q.key, _distinct(q.values))

    @tr.register(NotEq)
    def _(q: NotEq, t) -> Cond:
        return _not(_eq_values(dialect, q.key, [q.value]))

    @tr.register(NotIn)
    def _(q: NotIn, t) -> Cond:
        return _not(_eq_values(dialect, q.key, _distinct(q.values)))

    @tr.register(Comparison)
    def _(q: Comparison, t) -> Cond:
        if isinstance(q.value, float) and math.isinf(q.value):
            bound = _infinite_bound(q)
            return bound if isinstance(bound, Cond) else sub(bound)
        kind = value_class(q.value)
        if kind in ("null", "nan") or (kind is None and not isinstance(q.value, numbers.Real)):
            return exact(FALSE)  # such values are never ordered
        column = _column(q.key)
        if column is not None:
            col, col_kind = column
            if _column_class(q.value) != col_kind:
                return exact(FALSE)
            if col.name == "scan_id":
                return exact(_int_compare(col, q.operator, q.value))
            value = float(q.value) if col_kind == "number" else q.value
            return exact(col.op(SQL_OPS[q.operator])(value))
        path = summary_path(q.key)
        if path is not None and kind == "number":
            return _summary_cond(path, _compare(q.operator, q.value))
        if kind is None:  # a huge integer
            return _json_leaf(dialect, q.key, lambda d, p: inexact(dialect.present(d, p)))
        return _json_leaf(dialect, q.key, lambda d, p: dialect.compare(d, p, q.operator, q.value))

    @tr.register(Regex)
    def _(q: Regex, t) -> Cond:
        column = _column(q.key)
        if column is not None:
            col, kind = column
            return dialect.column_regex(col, q) if kind == "str" else exact(FALSE)
        return _json_leaf(dialect, q.key, lambda d, p: dialect.regex(d, p, q))

    @tr.register(Contains)
    def _(q: Contains, t) -> Cond:
        if _column(q.key) is not None:
            return exact(FALSE)  # these columns hold scalars; irregular runs go to Python
        return _json_leaf(dialect, q.key, lambda d, p: dialect.contains(d, p, q.value))

    @tr.register(KeyPresent)
    def _(q: KeyPresent, t) -> Cond:
        column = _column(q.key)
        if column is not None:
            cond = exact(column[0].is_not(None))
        else:
            cond = _json_leaf(dialect, q.key, lambda d, p: exact(dialect.present(d, p)))
        return cond if q.present else _not(cond)

    @tr.register(TimeRange)
    def _(q: TimeRange, t) -> Cond:
        return _combine([sub(c) for c in q.comparisons()], sa.and_)

    @tr.register(PartialUID)
    def _(q: PartialUID, t) -> Cond:
        upper = q.prefix[:-1] + chr(ord(q.prefix[-1]) + 1)
        return exact(sa.and_(runs.c.uid >= q.prefix, runs.c.uid < upper))

    @tr.register(Annotated)
    def _(q: Annotated, t) -> Cond:
        from .annotations import annotated_cond

        return annotated_cond(q)

    @tr.register(And)
    def _(q: And, t) -> Cond:
        if not q.queries:
            return exact(TRUE)
        # the bounds on one summary number become one range on the index
        ranges: dict[str, list[Comparison]] = {}
        others = []
        for part in _merge_values(q.queries, NotEq, NotIn):
            path = summary_path(part.key) if isinstance(part, Comparison) else None
            if path is not None and value_class(part.value) == "number":
                ranges.setdefault(path, []).append(part)
            else:
                others.append(part)
        conds = [sub(p) for p in others]
        for path, comparisons in ranges.items():
            tests = [_compare(c.operator, c.value) for c in comparisons]
            conds.append(
                _summary_cond(
                    path, lambda column, tests=tests: sa.and_(*(test(column) for test in tests))
                )
            )
        return _combine(conds, sa.and_)

    @tr.register(Or)
    def _(q: Or, t) -> Cond:
        parts = _merge_values(q.queries, Eq, In)
        return _combine([sub(p) for p in parts], sa.or_) if parts else exact(FALSE)

    @tr.register(Not)
    def _(q: Not, t) -> Cond:
        return _not(sub(q.query))

    tr.sub = sub  # type: ignore[attr-defined]
    return tr


TRANSLATORS = {name: make_translator(d) for name, d in DIALECTS.items()}


def translate(query: Query | None, dialect: str, irregular_rows: bool) -> Cond:
    """The SQL conditions of ``query`` for ``dialect`` ("sqlite" or "postgresql").

    With ``irregular_rows`` (the index holds runs marked irregular), those runs are always
    evaluated in Python.
    """
    if query is None:
        return exact(TRUE)
    cond = TRANSLATORS[dialect].sub(query)  # type: ignore[attr-defined]
    if not irregular_rows:
        return cond
    return Cond(
        sa.and_(cond.yes, runs.c.irregular == sa.false()),
        sa.or_(cond.maybe, runs.c.irregular == sa.true()),
    )


def order_by(sort: Sequence[tuple[str, int]], irregular_rows: bool) -> list | None:
    """ORDER BY clauses giving :func:`intake_broker.store.select_runs`'s order, or None when
    the order must be computed in Python (keys without a column of their own)."""
    clauses: list = []
    for key, direction in sort:
        column = _column(key)
        if column is None:
            return None
        col, _ = column
        name = col.name
        if name in ("scan_id", "plan_name"):
            if irregular_rows:  # their column does not hold every value
                return None
            present = col.is_not(None)
            clauses += [present.desc() if direction < 0 else present.asc()]
        clauses.append(col.desc() if direction < 0 else col.asc())
    clauses.append(runs.c.uid.asc())
    return clauses
