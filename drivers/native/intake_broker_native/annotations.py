"""Annotations in the SQL run index: the :class:`~intake_broker.store.abilities.Annotations`
ability of the native store, and of :class:`AnnotationIndex`, an index that keeps only
annotations (what ``annotations: sqlite:///~/notes.db`` attaches to a read-only catalog).

A change runs in one write transaction (SQLite: ``BEGIN IMMEDIATE``, one writer at a time in
every process; PostgreSQL: an advisory lock on the annotation's id), so concurrent writers in
any number of processes never lose an update; the core's
:func:`~intake_broker.store.annotations.apply_change` decides what the change does.

Searches (:func:`annotated_cond`): an :class:`~intake_broker.queries.Annotated` query becomes
SQL over the annotations a viewer may see; tags, numbers and strings of fields, and the
presence of a field are answered from indexed tables, the rest (a note's words, structured
values) narrow the candidates that Python then checks.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from intake_broker.errors import AnnotationConflict
from intake_broker.queries import (
    And,
    Annotated,
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    Not,
    NoteText,
    Or,
    Query,
    Viewer,
)
from intake_broker.queries.search import words
from intake_broker.store.annotations import MAX_HISTORY, apply_change, history_entry

from .jsonsql import FALSE, SQL_OPS, TRUE, Cond, exact, inexact, never_null
from .schema import (
    annotation_audience,
    annotation_fields,
    annotation_history,
    annotation_table,
    annotation_tags,
    runs,
    write_transaction,
)

#: Integers beyond this are not exactly a float: their rows say "ask Python".
_EXACT = 2**53


def _field_rows(annotation_id: str, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, value in fields.items():
        rows.append({"annotation_id": annotation_id, "name": name, "kind": "key"})
        candidates = [value, *(value if isinstance(value, list) else [])]
        for c in candidates:
            if isinstance(c, str):
                rows.append(
                    {"annotation_id": annotation_id, "name": name, "kind": "str", "text": c}
                )
            elif isinstance(c, numbers.Real) and not isinstance(c, bool):
                exact_value = abs(float(c)) < _EXACT
                rows.append(
                    {
                        "annotation_id": annotation_id,
                        "name": name,
                        "kind": "num" if exact_value else "big",
                        "num": float(c) if exact_value else None,
                    }
                )
    for row in rows:
        row.setdefault("num", None)
        row.setdefault("text", None)
    return rows


class SQLAnnotations:
    """The annotations ability over an engine holding the schema's annotation tables.

    ``_annotated_run(run_uid)`` is the hook a store of runs uses to refuse unknown runs."""

    engine: sa.Engine

    def _annotated_run(self, run_uid: str) -> None:
        """RunNotFound for a run the store does not hold (an annotation index holds none)."""

    def annotations(self, run_uid: str) -> list[dict]:
        """Every annotation of a run, oldest first."""
        self._annotated_run(run_uid)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(annotation_table.c.doc)
                .where(annotation_table.c.run_uid == run_uid)
                .order_by(annotation_table.c.created, annotation_table.c.id)
            ).all()
        return [json.loads(doc) for (doc,) in rows]

    def annotation_history(self, run_uid: str) -> list[dict]:
        """Every change of a run's annotations, oldest first (the newest ``MAX_HISTORY``)."""
        self._annotated_run(run_uid)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(annotation_history.c.doc)
                .where(annotation_history.c.run_uid == run_uid)
                .order_by(annotation_history.c.id.desc())
                .limit(MAX_HISTORY)
            ).all()
        return [json.loads(doc) for (doc,) in reversed(rows)]

    def change_annotation(self, run_uid: str, change: Mapping[str, Any]) -> dict:
        """Apply one change in one write transaction; return the annotation after it."""
        self._annotated_run(run_uid)
        key = change["id"]
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":  # one writer of this annotation at a time
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))
            doc = conn.execute(
                sa.select(annotation_table.c.doc).where(annotation_table.c.id == key)
            ).scalar()
            current = None if doc is None else json.loads(doc)
            if current is not None and current["run_uid"] != run_uid:
                raise AnnotationConflict("this annotation belongs to another run", None)
            new = apply_change(run_uid, current, change)
            if new is None:
                return current  # type: ignore[return-value]
            self._write(conn, current, new)
            # kept outside the index before the commit (a store with a data folder)
            self._journal_change(history_entry(current, new))
        return new

    def _journal_change(self, entry: dict) -> None:
        """Hook: keep a change outside the index (the native store's data folder)."""

    def _restore_annotations(self, annotations: list[dict], history: list[dict]) -> None:
        """Put annotations (each at its newest version) and their history entries (in order)
        into the index: what a reindex replays from the data folder."""
        with write_transaction(self.engine) as conn:
            for new in annotations:
                self._write(conn, None, new, history=False)
            if history:
                conn.execute(
                    annotation_history.insert(),
                    [
                        {
                            "run_uid": e["after"]["run_uid"],
                            "annotation_id": e["annotation"],
                            "version": e["version"],
                            "doc": json.dumps(e),
                        }
                        for e in history
                    ],
                )

    @staticmethod
    def _write(conn: sa.Connection, current: dict | None, new: dict, history: bool = True) -> None:
        key = new["id"]
        text = json.dumps(new)
        if current is None:
            conn.execute(
                annotation_table.insert().values(
                    id=key,
                    run_uid=new["run_uid"],
                    author=new["author"],
                    visibility=new["visibility"],
                    version=new["version"],
                    created=new["created"],
                    note=new["note"],
                    doc=text,
                )
            )
            labels = [f"proposal:{p}" for p in new["proposals"]]
            labels += [f"group:{g}" for g in new["groups"]]
            if labels:
                conn.execute(
                    annotation_audience.insert(),
                    [{"annotation_id": key, "label": label} for label in labels],
                )
        else:
            conn.execute(
                annotation_table.update()
                .where(annotation_table.c.id == key)
                .values(version=new["version"], note=new["note"], doc=text)
            )
            conn.execute(annotation_tags.delete().where(annotation_tags.c.annotation_id == key))
            conn.execute(annotation_fields.delete().where(annotation_fields.c.annotation_id == key))
        if new["tags"]:
            conn.execute(
                annotation_tags.insert(),
                [{"annotation_id": key, "tag": tag} for tag in new["tags"]],
            )
        rows = _field_rows(key, new["fields"])
        if rows:
            conn.execute(annotation_fields.insert(), rows)
        if not history:
            return
        conn.execute(
            annotation_history.insert().values(
                run_uid=new["run_uid"],
                annotation_id=key,
                version=new["version"],
                doc=json.dumps(history_entry(current, new)),
            )
        )


class AnnotationIndex(SQLAnnotations):
    """A SQL index that keeps only annotations, of runs held elsewhere (attach it to a
    read-only catalog: ``annotations: sqlite:///~/notes.db``).

    Parameters
    ----------
    index : str
        ``sqlite:///path`` (created if missing) or ``postgresql://...``; the same schema as a
        native run index, so a native index may serve as one too.
    """

    def __init__(self, index: str):
        from .schema import create_engine, ensure_schema, shown

        self.index = index
        self.engine = create_engine(index)
        ensure_schema(self.engine, shown(index))

    def __repr__(self) -> str:
        from .schema import shown

        return f"AnnotationIndex({shown(self.index)!r})"

    def close(self) -> None:
        self.engine.dispose()


# -- searching --------------------------------------------------------------------------------


def _visible(viewer: Viewer | None) -> Any:
    """Annotations ``viewer`` may see (see :func:`intake_broker.queries.annotations.visible`)."""
    if viewer is None:
        return TRUE
    a = annotation_table.c
    labels = [f"proposal:{p}" for p in viewer.proposals] + [f"group:{g}" for g in viewer.groups]
    shared = a.id.in_(
        sa.select(annotation_audience.c.annotation_id).where(
            annotation_audience.c.label.in_(labels)
        )
    )
    options = [a.author == viewer.name, a.visibility == "public"]
    if viewer.admin:
        options.append(a.visibility != "private")
    elif labels:
        options.append(sa.and_(a.visibility.in_(("proposal", "groups")), shared))
    return sa.or_(*options)


def _sql_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(float(value)) < _EXACT
    )


def _field_ids(name: str, test: Any) -> Any:
    f = annotation_fields.c
    return annotation_table.c.id.in_(sa.select(f.annotation_id).where(f.name == name, test))


def _maybe_big(name: str, cond: Cond) -> Cond:
    """``cond``, and annotations holding a huge integer under ``name`` left to Python."""
    big = _field_ids(name, annotation_fields.c.kind == "big")
    return Cond(cond.yes, sa.or_(cond.maybe, big)) if cond.exact else cond


def _values_cond(name: str, values: list) -> Cond:
    """The field ``name`` (or an element of it) equals one of ``values``."""
    f = annotation_fields.c
    if name == "tags":
        if all(isinstance(v, str) for v in values):
            tagged = sa.select(annotation_tags.c.annotation_id).where(
                annotation_tags.c.tag.in_(values)
            )
            return exact(annotation_table.c.id.in_(tagged))
        return inexact()
    if name == "note" or not values:
        return inexact() if values else exact(FALSE)
    strings = [v for v in values if isinstance(v, str)]
    nums = [float(v) for v in values if _sql_number(v)]
    others = [v for v in values if not isinstance(v, str) and not _sql_number(v)]
    tests = []
    if strings:
        tests.append(sa.and_(f.kind == "str", f.text.in_(strings)))
    if nums:
        tests.append(sa.and_(f.kind == "num", f.num.in_(nums)))
    cond = exact(_field_ids(name, sa.or_(*tests)) if tests else FALSE)
    if others:  # bools, None, structures: SQL cannot compare these like Python
        return Cond(cond.yes, _field_ids(name, f.kind == "key"))
    return _maybe_big(name, cond) if nums else cond


def _ann_cond(query: Query) -> Cond:
    """A condition on rows of ``annotations`` for a query on one annotation's view."""
    f = annotation_fields.c
    if isinstance(query, Eq | Contains):
        return _values_cond(query.key, [query.value])
    if isinstance(query, In):
        return _values_cond(query.key, list(query.values))
    if isinstance(query, Comparison):
        value = query.value
        if query.key in ("tags", "note"):
            return inexact()
        if isinstance(value, str):
            test = sa.and_(f.kind == "str", f.text.op(SQL_OPS[query.operator])(value))
            return exact(_field_ids(query.key, test))
        if _sql_number(value):
            test = sa.and_(f.kind == "num", f.num.op(SQL_OPS[query.operator])(float(value)))
            return _maybe_big(query.key, exact(_field_ids(query.key, test)))
        return inexact()
    if isinstance(query, KeyPresent):
        if query.key in ("tags", "note"):
            return exact(TRUE if query.present else FALSE)
        present = _field_ids(query.key, f.kind == "key")
        return exact(present if query.present else sa.not_(never_null(present)))
    if isinstance(query, NoteText):
        found = words(query.text)
        if not all(w.isascii() for w in found):
            return inexact(annotation_table.c.note != "")
        note = sa.func.lower(annotation_table.c.note)
        return inexact(sa.and_(*(note.contains(w, autoescape=True) for w in found)))
    if isinstance(query, And):
        return _combine([_ann_cond(q) for q in query.queries], sa.and_, TRUE)
    if isinstance(query, Or):
        return _combine([_ann_cond(q) for q in query.queries], sa.or_, FALSE)
    if isinstance(query, Not):
        inner = _ann_cond(query.query)
        if inner.exact:
            return exact(sa.not_(never_null(inner.yes)))
        return Cond(sa.not_(never_null(inner.maybe)), sa.not_(never_null(inner.yes)))
    return inexact()


def _combine(conds: list[Cond], join: Any, empty: Any) -> Cond:
    if not conds:
        return exact(empty)
    if all(c.exact for c in conds):
        return exact(join(*(c.yes for c in conds)))
    return Cond(join(*(c.yes for c in conds)), join(*(c.maybe for c in conds)))


def annotated_cond(query: Annotated) -> Cond:
    """The runs (rows of ``runs``) with an annotation ``query.viewer`` sees matching it."""
    inner = _ann_cond(query.query)
    seen = _visible(query.viewer)

    def runs_with(test: Any) -> Any:
        if test is FALSE:
            return FALSE
        return runs.c.uid.in_(sa.select(annotation_table.c.run_uid).where(seen, test))

    yes = runs_with(inner.yes)
    return exact(yes) if inner.exact else Cond(yes, runs_with(inner.maybe))


def history_rows(conn: sa.Connection, run_uid: str) -> Iterator[dict]:
    """The history entries of a run, oldest first (for tools that copy an index)."""
    for (doc,) in conn.execute(
        sa.select(annotation_history.c.doc)
        .where(annotation_history.c.run_uid == run_uid)
        .order_by(annotation_history.c.id)
    ):
        yield json.loads(doc)
