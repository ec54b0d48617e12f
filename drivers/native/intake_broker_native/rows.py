"""One event at a time, fast: the live path (a RunEngine inserts one event per call).

:func:`~.layout.convert_page` turns a page into numpy columns, which costs a few
microseconds per array however few rows a page holds: a one-event page of ten fields makes
some forty small arrays. For the common descriptor (every field a scalar ``float64``,
``int64``, ``bool`` or string) a :class:`RowPlan` instead checks the event's plain Python
values and keeps them as one tuple; tuples are turned into columns all at once when the
buffer is read (:func:`columns`), and logged as one ``struct.pack``. Any value the plan is
not sure of (a numpy scalar, a float for an integer key, a missing key, ...) sends the page
to ``convert_page``, which accepts or refuses it exactly as before: the fast path never
accepts what the slow one would refuse.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from typing import Any

import google_crc32c
import numpy as np

from .layout import Layout, utf8
from .wal import _FRAME, _HEAD, MAGIC

#: strings that are their own JSON text between quotes (uuids and the like)
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]*")
_F53 = 2**53
_I63 = 2**63
#: struct codes of the dtypes the fast path takes
_CODES = {"<f8": "d", "<i8": "q", "|b1": "?"}


def _float(v: Any) -> bool:
    t = type(v)
    return t is float or (t is int and -_F53 <= v <= _F53)


def _int(v: Any) -> bool:
    return type(v) is int and -_I63 <= v < _I63


def _text(v: Any) -> bool:
    return type(v) is str and utf8(v)


_CHECKS = {"d": _float, "q": _int, "?": lambda v: type(v) is bool, "s": _text}


class RowPlan:
    """How one event of a layout becomes a row tuple ``(uid, time, seq_num, *data,
    *timestamps)``, or None when the layout has a field the fast path does not take."""

    def __init__(self, layout: Layout):
        self.keys = list(layout.fields)
        self.keyset = set(self.keys)
        self.codes = []
        for spec in layout.fields.values():
            if spec.filled or spec.shape:
                raise ValueError("not a scalar field")
            code = "s" if spec.encoding == "str" else _CODES.get(spec.dtype)
            if code is None:
                raise ValueError("not a fast dtype")
            self.codes.append(code)
        self.checks = [_CHECKS[c] for c in self.codes]
        self.dtypes = [
            np.dtype(object) if c == "s" else np.dtype(spec.dtype)
            for c, spec in zip(self.codes, layout.fields.values(), strict=True)
        ]
        k = len(self.keys)
        # the log's numeric order (wal._numeric_columns): time, seq_num, then per field its
        # value (if numeric) and its timestamp; strings: uid, then string values
        self.numeric = [1, 2]
        self.strings = [0]
        fmt = "<dq"
        for i, code in enumerate(self.codes):
            if code == "s":
                self.strings.append(3 + i)
            else:
                self.numeric.append(3 + i)
                fmt += code
            self.numeric.append(3 + k + i)
            fmt += "d"
        self.struct = struct.Struct(fmt)
        self._head_key: tuple | None = None
        self._head = b""

    @classmethod
    def of(cls, layout: Layout) -> RowPlan | None:
        try:
            return cls(layout)
        except ValueError:
            return None

    def row(self, page: Mapping[str, Any]) -> tuple | None:
        """The row of a one-event page, or None (then convert it the slow way)."""
        try:
            (uid,) = page["uid"]
            (time,) = page["time"]
            (seq,) = page["seq_num"]
            data, stamps = page["data"], page["timestamps"]
            if page.get("filled") or data.keys() != self.keyset or not stamps.keys() >= self.keyset:
                return None
            values = [data[k][0] for k in self.keys]
            times = [stamps[k][0] for k in self.keys]
            if len(data) != len(self.keys) or any(len(data[k]) != 1 for k in self.keys):
                return None
            if any(len(stamps[k]) != 1 for k in self.keys):
                return None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None
        if not _text(uid) or not _float(time) or not _int(seq):
            return None
        for check, v, t in zip(self.checks, values, times, strict=True):
            if not check(v) or not _float(t):
                return None
        return (uid, time, seq, *values, *times)

    def record(self, run_uid: str, descriptor_uid: str, ord_: int | None, row: tuple) -> bytes:
        """The event log record of one row (what :func:`.wal.encode_rows` makes of it)."""
        key = (run_uid, descriptor_uid, ord_)
        if self._head_key != key:
            head = json.dumps(
                {"r": run_uid, "d": descriptor_uid, "o": ord_, "n": 1, "b": self.struct.size}
            ).encode()
            self._head, self._head_key = _HEAD.pack(len(head)) + head, key
        numeric = self.struct.pack(*[row[i] for i in self.numeric])
        if len(self.strings) == 1 and _PLAIN.fullmatch(row[0]):
            strings = b'[["' + row[0].encode() + b'"]]'
        else:
            strings = json.dumps([[row[i]] for i in self.strings]).encode()
        payload = b"".join((self._head, numeric, strings))
        return _FRAME.pack(MAGIC, len(payload), google_crc32c.value(payload)) + payload

    def columns(self, rows: list[tuple]) -> dict:
        """Row tuples as converted columns (what ``convert_page`` makes)."""
        k = len(self.keys)
        cols = list(zip(*rows, strict=True))
        uid = np.empty(len(rows), dtype=object)
        uid[:] = cols[0]
        data = {}
        for i, key in enumerate(self.keys):
            if self.codes[i] == "s":
                values = np.empty(len(rows), dtype=object)
                values[:] = cols[3 + i]
            else:
                values = np.array(cols[3 + i], dtype=self.dtypes[i])
            data[key] = values
        return {
            "rows": len(rows),
            "uid": uid,
            "time": np.array(cols[1], dtype=np.float64),
            "seq_num": np.array(cols[2], dtype=np.int64),
            "data": data,
            "timestamps": {
                key: np.array(cols[3 + k + i], dtype=np.float64) for i, key in enumerate(self.keys)
            },
            "filled": {},
        }
