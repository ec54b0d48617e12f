"""The document model: checking incoming documents and turning them into the forms stores keep.

Stores never see a single ``event`` or ``datum``: :func:`normalize` packs them into one-row
``event_page`` / ``datum_page`` documents with event-model's own helpers, so that every store
handles pages only. Validation uses event-model's JSON schemas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import event_model
import numpy as np

from intake_broker.errors import DocumentConflict, InvalidDocument

#: Names of the documents a run is made of, in the form stores keep them.
STORED_KINDS = (
    "start",
    "stop",
    "descriptor",
    "event_page",
    "resource",
    "datum_page",
    "stream_resource",
    "stream_datum",
)
#: Every document name that :func:`normalize` accepts.
DOCUMENT_NAMES = (*STORED_KINDS, "event", "datum")

_UID_FIELD = {"datum": "datum_id"}


def doc_label(name: str, doc: Any) -> str:
    """A short description of a document for error messages: its name and uid."""
    if not isinstance(doc, Mapping):
        return f"{name} document"
    ident = doc.get(_UID_FIELD.get(name, "uid"))
    if name in ("event_page", "datum_page"):
        ids = doc.get("datum_id" if name == "datum_page" else "uid")
        if isinstance(ids, list | tuple | np.ndarray) and len(ids):
            more = f" (+{len(ids) - 1} more)" if len(ids) > 1 else ""
            return f"{name} document {str(ids[0])!r}{more}"
        ident = None
    return f"{name} document {ident!r}" if isinstance(ident, str) else f"{name} document"


def validate(name: str, doc: Mapping[str, Any]) -> None:
    """Check ``doc`` against event-model's schema for ``name``.

    Raises
    ------
    InvalidDocument
        Naming the document, the failing field and what the schema expects.
    """
    validator = event_model.schema_validators[event_model.DocumentNames[name]]
    if name == "event_page" and _page_shaped(doc):
        _check_page_lengths(doc)
        doc = _first_row(doc)  # the schema types every row alike: one row shows the structure
    error = next(iter(validator.iter_errors(doc)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidDocument(
            f"{doc_label(name, doc)} does not follow the event-model schema: "
            f"at {where}: {error.message}"
        )


def _page_shaped(page: Mapping[str, Any]) -> bool:
    """Whether a page has its columns where the schema wants them (else validate it whole)."""
    columns = all(isinstance(page.get(k), list | np.ndarray) for k in ("uid", "time", "seq_num"))
    groups = all(
        isinstance(page.get(g), Mapping)
        and all(isinstance(v, list | np.ndarray) for v in page[g].values())
        for g in ("data", "timestamps")
    )
    return columns and groups


def _first_row(page: Mapping[str, Any]) -> dict:
    """A page cut to its first row, with the time and seq_num columns checked whole."""
    for key, kinds in (("time", "iuf"), ("seq_num", "iu")):
        column = np.asarray(page[key]) if isinstance(page[key], list | np.ndarray) else None
        if column is None or (len(column) and column.dtype.kind not in kinds):
            raise InvalidDocument(
                f"{doc_label('event_page', page)}: column {key!r} must be a list of "
                f"{'numbers' if key == 'time' else 'integers'}, got {str(page[key])[:60]}"
            )
    row = dict(page)
    for key in ("uid", "time", "seq_num"):
        row[key] = list(page[key][:1])
    for group in ("data", "timestamps", "filled"):
        if isinstance(page.get(group), Mapping):
            row[group] = {k: list(v[:1]) for k, v in page[group].items()}
    return row


def _check_page_lengths(page: Mapping[str, Any]) -> None:
    n = len(page["uid"])
    columns = {"time": page["time"], "seq_num": page["seq_num"]}
    for group in ("data", "timestamps"):
        columns.update({f"{group}.{k}": v for k, v in page[group].items()})
    for key, column in columns.items():
        if len(column) != n:
            raise InvalidDocument(
                f"{doc_label('event_page', page)}: column {key!r} has {len(column)} rows but the "
                f"page has {n} uids; every column of a page must have one value per event"
            )


def normalize(name: str, doc: Any, *, check: bool = True) -> tuple[str, dict]:
    """Turn one incoming ``(name, doc)`` pair into the ``(kind, doc)`` a store keeps.

    ``event`` becomes a one-row ``event_page`` and ``datum`` a one-row ``datum_page``; other
    documents pass through. With ``check`` (the default) the document is validated first.

    Raises
    ------
    InvalidDocument
        For an unknown document name, a non-dict document, or a schema failure.
    """
    if name not in DOCUMENT_NAMES:
        raise InvalidDocument(
            f"unknown document name {name!r}; expected one of {', '.join(DOCUMENT_NAMES)}"
        )
    if not isinstance(doc, Mapping):
        raise InvalidDocument(
            f"a {name} document must be a dict, not {type(doc).__name__}: {str(doc)[:80]!r}"
        )
    doc = dict(doc)
    if check:
        validate(name, doc)
    if name == "event":
        return "event_page", dict(event_model.pack_event_page(doc))
    if name == "datum":
        return "datum_page", dict(event_model.pack_datum_page(doc))
    if name == "event_page":
        doc.setdefault("filled", {})
    return name, doc


def same_document(a: Any, b: Any) -> bool:
    """Whether two documents are equal, comparing numpy arrays, lists and NaN by value."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_document(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return False
        if a_arr.dtype.kind in "biufc" and b_arr.dtype.kind in "biufc":
            return bool(np.array_equal(a_arr, b_arr, equal_nan=a_arr.dtype.kind in "fc"))
        a, b = a_arr.tolist(), b_arr.tolist()
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):  # JSON makes tuples lists
        return len(a) == len(b) and all(same_document(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, np.generic) or isinstance(b, np.generic):
        return same_document(np.asarray(a).tolist(), np.asarray(b).tolist())
    return bool(a == b)


def check_reinsert(kind: str, existing: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Decide what inserting ``new`` over the stored ``existing`` (same uid) means.

    Returns quietly when both are the same document (re-inserting is a no-op) and raises
    :class:`DocumentConflict` naming the differing fields otherwise.
    """
    if same_document(existing, new):
        return
    keys = sorted(set(existing) | set(new))
    differ = [
        k
        for k in keys
        if k not in existing or k not in new or not same_document(existing[k], new[k])
    ]
    raise DocumentConflict(
        f"{doc_label(kind, new)} reuses a stored uid but differs from the stored document in "
        f"{', '.join(differ)}; stored documents are never overwritten: give the new document "
        "its own uid"
    )


def event_page_rows(page: Mapping[str, Any]) -> list[dict]:
    """The events of a page as event documents (event-model's ``unpack_event_page``)."""
    return list(event_model.unpack_event_page(page))  # type: ignore[arg-type]  # a TypedDict


def datum_page_rows(page: Mapping[str, Any]) -> list[dict]:
    """The datums of a page as datum documents (event-model's ``unpack_datum_page``)."""
    return list(event_model.unpack_datum_page(page))  # type: ignore[arg-type]  # a TypedDict


def run_uid_of(kind: str, doc: Mapping[str, Any]) -> str | None:
    """The run a document names directly (``run_start``), or its own uid for a start."""
    if kind == "start":
        return doc["uid"]
    return doc.get("run_start")
