"""Documents as JSON text for the run index, and the indexed columns of a start document.

A document is kept twice: its exact JSON text (what is read back, key order and NaN included)
and a *query copy* for the database's JSON functions. The two are the same text unless the
document holds something the databases cannot compare like Python does (NaN or infinity,
integers beyond 2**53); such a run is marked ``irregular`` and every query evaluates it in
Python, so that no query answer depends on the approximation.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from intake_broker.errors import InvalidDocument
from intake_broker.store.documents import doc_label

_BIG_INT = re.compile(r"(?<![\w.])-?\d{16,}(?![\d.eE])")
_BIGINT_RANGE = 2**63


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"a {type(value).__name__} value ({str(value)[:60]!r})")


def to_json(kind: str, doc: Any, *, allow_nan: bool = True) -> str:
    """The exact JSON text of a document (numpy values become numbers and lists).

    Raises
    ------
    InvalidDocument
        When the document holds something JSON cannot represent.
    """
    try:
        return json.dumps(doc, default=_default, allow_nan=allow_nan, separators=(",", ":"))
    except TypeError as err:
        raise InvalidDocument(
            f"{doc_label(kind, doc)} holds {err} that JSON cannot represent; "
            "documents must hold JSON-like values (numbers, strings, lists, "
            "dicts, numpy arrays)"
        ) from None


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # a string: the run is irregular and evaluated in Python anyway
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def encode(kind: str, doc: Mapping[str, Any]) -> tuple[str, str, bool]:
    """``(exact_text, query_text, lossy)`` for a document kept in the run index."""
    try:
        exact = to_json(kind, doc, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere
        exact = to_json(kind, doc)
        return exact, to_json(kind, _finite(json.loads(exact)), allow_nan=False), True
    return exact, exact, _BIG_INT.search(exact) is not None


def start_columns(start: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed columns of a start document and whether they tell the whole truth.

    Raises
    ------
    InvalidDocument
        When ``uid`` is not a string or ``time`` not a finite number.
    """
    uid, time = start.get("uid"), start.get("time")
    if not isinstance(uid, str) or not uid:
        raise InvalidDocument(f"{doc_label('start', start)} needs a non-empty string 'uid'")
    if isinstance(time, bool) or not isinstance(time, numbers.Real) or not math.isfinite(time):
        raise InvalidDocument(
            f"{doc_label('start', start)} needs a finite number 'time' "
            f"(epoch seconds), got {time!r}"
        )
    irregular = False
    scan_id = start.get("scan_id")
    if scan_id is not None or "scan_id" in start:
        if (
            isinstance(scan_id, numbers.Integral)
            and not isinstance(scan_id, bool)
            and -_BIGINT_RANGE <= int(scan_id) < _BIGINT_RANGE
        ):
            scan_id = int(scan_id)
        else:
            scan_id, irregular = None, True
    plan_name = start.get("plan_name")
    if plan_name is not None or "plan_name" in start:
        if not isinstance(plan_name, str):
            plan_name, irregular = None, True
    return {
        "uid": uid,
        "time": float(time),
        "scan_id": scan_id,
        "plan_name": plan_name,
        "irregular": irregular,
    }


def stop_columns(stop: Mapping[str, Any]) -> dict[str, Any]:
    """The stop columns kept beside the stop document (for listings)."""
    time = stop.get("time")
    status = stop.get("exit_status")
    return {
        "stop_time": float(time) if isinstance(time, int | float) else None,
        "exit_status": status if isinstance(status, str) else None,
    }
