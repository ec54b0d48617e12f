"""Queries on annotations: tags, fields and notes kept beside a run's documents.

An annotation (see :mod:`intake_broker.store.annotations`) holds ``tags`` (strings), ``fields``
(JSON values) and a ``note`` (free text), and a visibility. A query on annotations is an
:class:`Annotated`: some annotation of the run that the ``viewer`` may see matches its inner
``query``, which is evaluated against the annotation as if it were a start document
``{**fields, "tags": [...], "note": "..."}``. The query language writes them::

    tags contains "calibration"      Annotated(Contains("tags", "calibration"))
    annotations.rating >= 4          Annotated(Comparison("ge", "rating", 4))
    note text "alignment"            Annotated(NoteText("alignment"))

A viewer of None sees every annotation (a store without access control); an access guard binds
its principal's :class:`Viewer` into every annotation query it answers (:func:`bind_viewer`),
whatever viewer the query arrived with, so a private tag of another user never matches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import BadQuery
from .base import Query, register_query
from .limits import check_count, check_string, combined_shape
from .search import FullText, words

__all__ = [
    "Annotated",
    "NoteText",
    "Viewer",
    "annotation_view",
    "bind_viewer",
    "visible",
]

#: The visibilities an annotation may have.
VISIBILITIES = ("private", "proposal", "groups", "public")


@dataclass(frozen=True)
class Viewer:
    """Who looks at annotations: a user ``name`` with the ``proposals`` and ``groups`` they are
    in; ``admin`` sees every annotation that is not private to someone else."""

    name: str
    proposals: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    admin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise BadQuery(f"a viewer needs a user name, got {self.name!r:.60}")
        check_string(self.name, "a viewer's name")
        for what in ("proposals", "groups"):
            values = getattr(self, what)
            if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
                raise BadQuery(f"a viewer's {what} must be a list of strings")
            check_count(len(values), f"a viewer's {what}")
            object.__setattr__(self, what, tuple(values))
        if not isinstance(self.admin, bool):
            raise BadQuery(f"a viewer's admin flag must be true or false, not {self.admin!r:.40}")

    @classmethod
    def of(cls, value: Viewer | Mapping[str, Any] | None) -> Viewer | None:
        """A viewer from a viewer, its :meth:`encode` dict, or None."""
        if value is None or isinstance(value, Viewer):
            return value
        if not isinstance(value, Mapping):
            raise BadQuery(f"a viewer must be an object with a name, not {type(value).__name__}")
        unknown = set(value) - {"name", "proposals", "groups", "admin"}
        if unknown:
            raise BadQuery(f"unknown viewer fields {sorted(unknown)}")
        return cls(**value)

    @classmethod
    def of_principal(cls, principal: Any) -> Viewer:
        """The viewer of an access principal (:class:`~intake_broker.access.guard.Principal`)."""
        return cls(
            principal.name,
            tuple(principal.proposals),
            tuple(principal.groups),
            bool(principal.is_admin),
        )

    def encode(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "proposals": list(self.proposals),
            "groups": list(self.groups),
            "admin": self.admin,
        }


def visible(annotation: Mapping[str, Any], viewer: Viewer | None) -> bool:
    """Whether ``viewer`` may see ``annotation`` (None: everyone sees everything).

    Its author always; a ``public`` one everyone who sees the run; a ``proposal`` one the
    members of the run's proposals; a ``groups`` one the members of its groups; admins every
    shared one. A ``private`` one nobody else, admins included."""
    if viewer is None:
        return True
    if annotation.get("author") == viewer.name:
        return True
    visibility = annotation.get("visibility")
    if visibility == "public":
        return True
    if visibility == "private":
        return False
    if viewer.admin:
        return True
    if visibility == "proposal":
        return bool(set(annotation.get("proposals") or ()) & set(viewer.proposals))
    if visibility == "groups":
        return bool(set(annotation.get("groups") or ()) & set(viewer.groups))
    return False


def annotation_view(annotation: Mapping[str, Any]) -> dict[str, Any]:
    """The record an :class:`Annotated` query's inner query is evaluated against."""
    return {
        "start": {
            **(annotation.get("fields") or {}),
            "tags": list(annotation.get("tags") or ()),
            "note": annotation.get("note") or "",
        },
        "stop": None,
    }


@register_query("note_text")
@dataclass(frozen=True)
class NoteText(FullText):
    """Every word of ``text`` appears (case-insensitively, as a whole word) in the note of an
    annotation: meaningful inside :class:`Annotated` (``note text "alignment"``)."""

    def match(self, record: Mapping[str, Any]) -> bool:
        note = (record.get("start") or {}).get("note")
        return isinstance(note, str) and words(self.text) <= words(note)


def _contains_annotated(query: Query) -> bool:
    if isinstance(query, Annotated):
        return True
    for name in query._query_fields:
        value = getattr(query, name)
        for nested in (value,) if isinstance(value, Query) else value:
            if _contains_annotated(nested):
                return True
    return False


@register_query("annotated")
@dataclass(frozen=True)
class Annotated(Query):
    """Some annotation of the run that ``viewer`` may see matches ``query`` (evaluated against
    :func:`annotation_view` of the annotation). ``viewer`` None: any annotation."""

    query: Query
    viewer: Viewer | None = None
    _query_fields: ClassVar[tuple[str, ...]] = ("query",)
    _documents: ClassVar[frozenset[str] | None] = frozenset({"annotations"})

    def __post_init__(self) -> None:
        if not isinstance(self.query, Query):
            raise BadQuery(f"Annotated needs a query, got {type(self.query).__name__}")
        if _contains_annotated(self.query):
            raise BadQuery("an Annotated query cannot hold another Annotated query")
        object.__setattr__(self, "viewer", Viewer.of(self.viewer))
        object.__setattr__(self, "_shape", combined_shape((self.query,)))

    def match(self, record: Mapping[str, Any]) -> bool:
        for annotation in record.get("annotations") or ():
            if visible(annotation, self.viewer) and self.query.match(annotation_view(annotation)):
                return True
        return False

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "query": self.query.encode(),
            "viewer": None if self.viewer is None else self.viewer.encode(),
        }


def bind_viewer(query: Query | None, viewer: Viewer | None) -> Query | None:
    """``query`` with every :class:`Annotated` in it answering for ``viewer`` (whatever viewer
    it named before): what an access guard applies to every query it is given."""
    if query is None:
        return None
    if isinstance(query, Annotated):
        return query if query.viewer == viewer else Annotated(query.query, viewer)
    if not query._query_fields:
        return query
    changes: dict[str, Any] = {}
    for name in query._query_fields:
        value = getattr(query, name)
        if isinstance(value, Query):
            bound = bind_viewer(value, viewer)
            if bound is not value:
                changes[name] = bound
        else:
            parts = tuple(bind_viewer(q, viewer) for q in value)
            if any(a is not b for a, b in zip(parts, value, strict=True)):
                changes[name] = parts
    return dataclasses.replace(query, **changes) if changes else query


def annotation_queries(query: Query | None) -> Iterable[Annotated]:
    """Every :class:`Annotated` inside ``query``."""
    if query is None:
        return
    if isinstance(query, Annotated):
        yield query
        return
    for name in query._query_fields:
        value = getattr(query, name)
        for nested in (value,) if isinstance(value, Query) else value:
            yield from annotation_queries(nested)
