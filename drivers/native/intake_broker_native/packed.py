"""Packed streams: a small stream of a stopped run kept as one record of all its columns.

A zarr group holds one array per column: a descriptor of ten scalar fields is 23 arrays, 48
files and 47 folders, which take tens of milliseconds to create however few events they
hold. A run that stops with few events would spend nearly all its insert time there. So when
a run stops and one of its streams has had nothing written yet and its events take at most
``pack_bytes`` (1 MiB by default), the stream is written as **one record**: a record in the
format of the write-ahead log (:mod:`.wal`: a frame with a crc32c of the payload, a JSON header
with the run uid, descriptor uid and rows, the numeric columns' raw little-endian bytes in
layout order and a JSON list of the string columns). Where it goes:

* a local data folder: one more line of the run's journal ``<run folder>/documents.jsonl``,
  ``{"kind": "events", "ord": -1, "descriptor": <uid>, "rows": n, "record": <base64>}``
  (appended like every journal line: no file is created); the layout records ``packed_at``,
  the line's byte offset and length;
* an object store: ``<run folder>/<descriptor folder>.events`` (one upload).

The descriptor's layout records ``packed: true`` and its one chunk row (the same
``event_chunks`` row a zarr chunk gets) is committed only after the record was written, as
for zarr. Readers decode the whole record (it is small) and keep a few decoded ones. Plain
xarray cannot open a packed stream; :meth:`NativeStore.zarr_url` writes its zarr group on
first request (a copy: the record stays what the store reads). Events added to a packed stream
later turn it into a zarr group (the packed rows first), and ``reindex`` rebuilds packed
streams from the journal lines (or files).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict

import numpy as np

from .errors import CorruptChunk
from .layout import Layout
from .wal import encode_rows, parse_records

#: The suffix of a packed stream's file (node names never hold a dot).
SUFFIX = ".events"
#: Streams whose events take at most this many bytes are packed when their run stops.
DEFAULT_PACK_BYTES = 1 << 20
#: Decoded packed files kept per column store.
_CACHED = 32


def file_of(rel: str) -> str:
    """The packed file of a descriptor group path ``<run>/<descriptor>``."""
    return rel + SUFFIX


def encode(run_uid: str, descriptor_uid: str, layout: Layout, cols: dict) -> bytes:
    """The packed record of converted columns."""
    return encode_rows(run_uid, descriptor_uid, None, layout, cols)


def journal_line(descriptor_uid: str, rows: int, record: bytes) -> bytes:
    """The journal line holding a packed record."""
    head = json.dumps(
        {"kind": "events", "ord": -1, "descriptor": descriptor_uid, "rows": rows},
        separators=(",", ":"),
    )
    return f'{head[:-1]},"record":"{base64.b64encode(record).decode()}"}}\n'.encode()


def record_of_line(raw: bytes, path: str, where: str) -> bytes:
    """The packed record of a journal line (see :func:`journal_line`).

    Raises
    ------
    CorruptChunk
        When the bytes are not such a line.
    """
    try:
        item = json.loads(raw)
        return base64.b64decode(item["record"], validate=True)
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptChunk(
            f"packed events in {path!r} ({where}) are damaged: the journal line cannot be "
            f"read ({err})"
        ) from None


def decode(raw: bytes, layout: Layout, path: str, where: str, rows: int | None = None) -> dict:
    """Converted columns of a packed file.

    Raises
    ------
    CorruptChunk
        When the file is truncated, fails its checksum or does not hold ``rows`` rows of the
        layout's columns.
    """
    records, end = parse_records(raw)
    if len(records) != 1 or end != len(raw):
        raise CorruptChunk(
            f"packed events {path!r} ({where}) are truncated or damaged (framing or crc32c "
            f"checksum fails after {end} of {len(raw)} bytes)"
        )
    (record,) = records
    if rows is not None and record.rows != rows:
        raise CorruptChunk(
            f"packed events {path!r} ({where}) hold {record.rows} rows, the run index "
            f"records {rows}"
        )
    try:
        return record.columns(layout)
    except (ValueError, TypeError, StopIteration) as err:
        raise CorruptChunk(
            f"packed events {path!r} ({where}) do not hold the columns of their descriptor: {err}"
        ) from None


class PackedCache:
    """The last few decoded packed files (they never change once their chunk row is
    committed), keyed by path and rows."""

    def __init__(self, size: int = _CACHED):
        self.size = size
        self._items: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> dict | None:
        with self._lock:
            cols = self._items.get(key)
            if cols is not None:
                self._items.move_to_end(key)
            return cols

    def put(self, key: tuple[str, int], cols: dict) -> None:
        with self._lock:
            self._items[key] = cols
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, path: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == path]:
                del self._items[key]


def arrays(cols: dict, layout: Layout) -> dict[str, np.ndarray]:
    """Converted ``cols`` by the name of the zarr array each column would be."""
    out = {name: cols[name] for name in ("time", "seq_num", "uid")}
    for key, spec in layout.fields.items():
        out[spec.array] = cols["data"][key]
        out[spec.timestamps] = cols["timestamps"][key]
        if spec.filled:
            out[spec.filled] = cols["filled"][key]
    return out
