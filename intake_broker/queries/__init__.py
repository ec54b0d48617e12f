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
native form (see :class:`Translator`; the mongo driver's ``intake_broker_mongo.to_mongo``, the
native driver's SQL) return the same runs as stores which evaluate them in Python. The one
deliberate difference: a missing key never equals ``None`` (MongoDB's ``{"x": None}`` also
matches documents without ``x``); the mongo driver adds the ``$exists`` guards that keep its
filters in agreement with :func:`evaluate`.
"""

from __future__ import annotations

from .annotations import Annotated, NoteText, Viewer, bind_viewer
from .base import (
    COMPARISON_OPERATORS,
    DOCUMENT_PREFIXES,
    QUERY_TYPES,
    And,
    Not,
    NotTranslatable,
    Or,
    Query,
    Translator,
    decode_query,
    documents_needed,
    evaluate,
    register_query,
    resolve_key,
)
from .key import Key
from .mongo import as_query, from_mongo
from .search import FullText, Fuzzy, ScanID, ScanIDRange
from .types import (
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    NotEq,
    NotIn,
    PartialUID,
    Regex,
    TimeRange,
)

__all__ = [
    "Annotated",
    "NoteText",
    "Viewer",
    "bind_viewer",
    "COMPARISON_OPERATORS",
    "DOCUMENT_PREFIXES",
    "QUERY_TYPES",
    "And",
    "Comparison",
    "Contains",
    "Eq",
    "FullText",
    "Fuzzy",
    "ScanID",
    "ScanIDRange",
    "In",
    "Key",
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
    "documents_needed",
    "evaluate",
    "from_mongo",
    "register_query",
    "resolve_key",
]
