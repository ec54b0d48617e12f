"""Columns out of raw BSON: many similar documents decoded into numpy arrays at once.

The read path receives events as raw BSON (``find_raw_batches``): one BSON document per event,
all built alike by the same writer. Decoding each into a Python dict and picking values out of
it costs more than the query itself, so this module reads the values straight from the bytes:

1. split the buffer into documents and group them by byte length;
2. parse one document of a group (the *template*) and note where each value lies and which
   bytes are its *skeleton* (type bytes, key names, length prefixes);
3. keep the documents whose skeleton bytes equal the template's -- they have every value at the
   same offset -- and copy each requested value out of all of them with one strided numpy copy;
4. documents that differ get a template of their own (a bounded number of them); what is left,
   or what cannot be read this way (a string inside an array, a nested dict as a value, a
   datetime), is decoded by ``bson.decode_all`` -- always correct, only slower.

The result is the same as picking the values out of ``bson.decode_all`` output, with numbers as
``float64`` / ``int64`` / ``bool`` arrays, numeric arrays stacked to ``(n, *shape)``, strings and
anything else as ``object`` arrays, ObjectIds as ``V12`` bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bson
import numpy as np

Path = tuple[str, ...]

_MISSING = object()
#: Templates tried per group of equal-length documents before decoding the rest generically.
MAX_TEMPLATES = 8
#: Bytes of skeleton compared at once (bounds the temporary memory of the check).
_CHECK_BYTES = 32 * 2**20

# BSON element types: numeric leaves we copy out, and fixed-size values we can step over.
_DOUBLE, _STRING, _DOC, _ARRAY, _BINARY, _OID, _BOOL, _NULL, _INT32, _INT64 = (
    0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x0A, 0x10, 0x12)  # fmt: skip
_NUMERIC: dict[int, np.dtype] = {
    _DOUBLE: np.dtype("<f8"),
    _INT32: np.dtype("<i4"),
    _INT64: np.dtype("<i8"),
    _BOOL: np.dtype("?"),
}
_OPAQUE_SIZES = {0x06: 0, 0x09: 8, 0x11: 8, 0x13: 16, 0xFF: 0, 0x7F: 0}


class _Unsupported(Exception):
    """A document holds a BSON type whose size cannot be known without decoding it."""


@dataclass
class _Node:
    """One element of a template: its type, where its value lies, its children if a container."""

    etype: int
    offset: int
    size: int
    children: dict[str, _Node] | None = None


@dataclass
class _Template:
    root: _Node
    skeleton: np.ndarray  # byte positions that must be equal for a document to fit


@dataclass
class _Parts:
    """Per requested path, the pieces of the final column: (rows, array) pairs."""

    pieces: dict[Path, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def add(self, path: Path, rows: np.ndarray, values: np.ndarray) -> None:
        self.pieces.setdefault(path, []).append((rows, values))


# -- splitting ---------------------------------------------------------------------------


def split_documents(buffer: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of the BSON documents concatenated in ``buffer``."""
    size = len(buffer)
    if size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first = struct.unpack_from("<i", buffer, 0)[0]
    if first >= 5 and size % first == 0:  # all of one length? check without a Python loop
        count = size // first
        heads = np.ndarray((count,), "<i4", buffer=buffer, strides=(first,))
        if bool((heads == first).all()):
            starts = np.arange(count, dtype=np.int64) * first
            return starts, np.full(count, first, np.int64)
    starts, lengths, pos = [], [], 0
    unpack = struct.Struct("<i").unpack_from
    while pos < size:
        length = unpack(buffer, pos)[0] if pos + 4 <= size else 0
        if length < 5 or pos + length > size:
            raise ValueError(
                f"malformed BSON: a document at byte {pos} claims {length} bytes "
                f"of the {size - pos} left"
            )
        starts.append(pos)
        lengths.append(length)
        pos += length
    return np.asarray(starts, np.int64), np.asarray(lengths, np.int64)


# -- templates ---------------------------------------------------------------------------


def _parse_document(data: bytes, start: int, variable: list[tuple[int, int]]) -> _Node:
    """Parse the document (or array) at ``start``; value byte ranges go to ``variable``."""
    (length,) = struct.unpack_from("<i", data, start)
    end = start + length - 1
    pos = start + 4
    children: dict[str, _Node] = {}
    while pos < end:
        etype = data[pos]
        key_end = data.index(b"\x00", pos + 1)
        key = data[pos + 1 : key_end].decode("utf-8", "surrogateescape")
        pos = key_end + 1
        if etype in _NUMERIC or etype == _OID:
            size = 12 if etype == _OID else _NUMERIC[etype].itemsize
            children[key] = _Node(etype, pos, size)
            variable.append((pos, size))
        elif etype == _STRING:
            (n,) = struct.unpack_from("<i", data, pos)
            children[key] = _Node(etype, pos + 4, n - 1)
            variable.append((pos + 4, n - 1))
            size = 4 + n
        elif etype in (_DOC, _ARRAY):
            node = _parse_document(data, pos, variable)
            node.etype = etype
            children[key] = node
            size = node.size
        elif etype == _NULL:
            children[key] = _Node(etype, pos, 0)
            size = 0
        elif etype == _BINARY:
            (n,) = struct.unpack_from("<i", data, pos)
            children[key] = _Node(etype, pos + 5, n)
            variable.append((pos + 5, n))
            size = 5 + n
        elif etype in _OPAQUE_SIZES:
            size = _OPAQUE_SIZES[etype]
            children[key] = _Node(etype, pos, size)
            variable.append((pos, size))
        else:
            raise _Unsupported(f"BSON type 0x{etype:02x}")
        pos += size
    return _Node(_DOC, start, length, children)


def _template(row: np.ndarray) -> _Template:
    data = row.tobytes()
    variable: list[tuple[int, int]] = []
    root = _parse_document(data, 0, variable)
    mask = np.ones(len(data), bool)
    for offset, size in variable:
        mask[offset : offset + size] = False
    return _Template(root, np.flatnonzero(mask))


def _fits(rows: np.ndarray, template: _Template) -> np.ndarray:
    """Which rows (documents of one length, as a 2-D uint8 array) share the skeleton."""
    skeleton = template.skeleton
    reference = rows[0, skeleton]
    out = np.empty(len(rows), bool)
    step = max(1, _CHECK_BYTES // max(1, skeleton.size))
    for lo in range(0, len(rows), step):
        out[lo : lo + step] = (rows[lo : lo + step, skeleton] == reference).all(axis=1)
    return out


# -- copying values out ------------------------------------------------------------------


def _leaves(node: _Node) -> tuple[tuple[int, ...], list[_Node]] | None:
    """Shape and leaves (C order) of a rectangular numeric array; None if it is not one."""
    if node.etype != _ARRAY:
        return ((), [node]) if node.etype in _NUMERIC else None
    assert node.children is not None  # _parse_document gives every array its children
    items = list(node.children.values())
    if not items:
        return (0,), []
    found = [_leaves(item) for item in items]
    parts = [p for p in found if p is not None]
    if len(parts) != len(found) or len({p[0] for p in parts}) != 1:
        return None
    shape = (len(items), *parts[0][0])
    return shape, [leaf for _, leaves in parts for leaf in leaves]


def _copy_numeric(rows: np.ndarray, leaves: list[_Node], shape: tuple[int, ...]) -> np.ndarray:
    """Copy numeric leaves out of every row, one strided copy per run of evenly spaced leaves."""
    kinds = {leaf.etype for leaf in leaves}
    dtype: np.dtype
    if kinds <= {_BOOL}:
        dtype = np.dtype(bool)
    elif kinds <= {_INT32, _INT64, _BOOL}:
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(np.float64)
    out = np.empty((len(rows), len(leaves)), dtype)
    i = 0
    while i < len(leaves):
        etype, first = leaves[i].etype, leaves[i].offset
        j = i + 1
        stride = leaves[j].offset - first if j < len(leaves) else 1
        while (
            j < len(leaves)
            and leaves[j].etype == etype
            and leaves[j].offset - leaves[j - 1].offset == stride
        ):
            j += 1
        item = _NUMERIC[etype].itemsize
        view = np.lib.stride_tricks.as_strided(
            rows[:, first:],
            shape=(len(rows), j - i, item),
            strides=(rows.strides[0], stride, 1),
            writeable=False,
        )
        values = np.ascontiguousarray(view).view(_NUMERIC[etype]).reshape(len(rows), j - i)
        out[:, i:j] = values
        i = j
    return out.reshape((len(rows), *shape))


def _copy_strings(rows: np.ndarray, node: _Node) -> np.ndarray | None:
    raw = np.ascontiguousarray(rows[:, node.offset : node.offset + node.size])
    if node.size and bool((raw == 0).any()):
        return None  # an embedded NUL: fixed-width bytes would lose it
    fixed = raw.view(f"S{max(node.size, 1)}").ravel() if node.size else np.full(len(rows), b"")
    try:
        return np.char.decode(fixed, "utf-8").astype(object)
    except UnicodeDecodeError:
        return None


def _copy_value(rows: np.ndarray, node: _Node | None) -> np.ndarray | None:
    """The column of one path for rows fitting a template, or None to decode generically."""
    if node is None:
        return np.full(len(rows), None, dtype=object)
    if node.etype == _NULL:
        return np.full(len(rows), None, dtype=object)
    if node.etype == _OID:
        return np.ascontiguousarray(rows[:, node.offset : node.offset + 12]).view("V12").ravel()
    if node.etype == _STRING:
        return _copy_strings(rows, node)
    found = _leaves(node)
    if found is None:
        return None
    shape, leaves = found
    if not leaves:
        return np.empty((len(rows), *shape), np.float64)
    return _copy_numeric(rows, leaves, shape)


def _find(root: _Node, path: Path) -> _Node | None:
    node: _Node | None = root
    for key in path:
        if node is None or node.etype != _DOC or node.children is None:
            return None
        node = node.children.get(key)
    return node


# -- the generic way ---------------------------------------------------------------------


def _lookup(doc: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def values_to_array(values: list[Any]) -> np.ndarray:
    """A column from Python values, typed as :func:`decode_columns` types its fast path."""
    if not values:
        return np.empty(0, np.float64)
    if all(isinstance(v, bson.ObjectId) for v in values):
        return np.frombuffer(b"".join(v.binary for v in values), "V12")
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.asarray(values, bool)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        is_int = all(isinstance(v, int) for v in values)
        try:
            return np.asarray(values, np.int64 if is_int else np.float64)
        except OverflowError:
            return np.asarray(values, dtype=object)
    if all(isinstance(v, list) for v in values):
        try:
            array = np.asarray(values)
        except ValueError:  # ragged
            array = None
        if array is not None and array.dtype.kind in "biuf":
            return array.astype(np.int64) if array.dtype.kind in "iu" else array
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _generic(
    buffer: bytes,
    starts: np.ndarray,
    lengths: np.ndarray,
    rows: np.ndarray,
    paths: Sequence[Path],
    parts: _Parts,
) -> None:
    chunk = b"".join(
        buffer[s : s + n]
        for s, n in zip(starts[rows].tolist(), lengths[rows].tolist(), strict=True)
    )
    docs = bson.decode_all(chunk)
    for path in paths:
        parts.add(path, rows, values_to_array([_lookup(d, path) for d in docs]))


# -- putting it together -----------------------------------------------------------------


def _combine(n: int, pieces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """One column from the pieces decoded group by group, rows back in document order."""
    if len(pieces) == 1 and len(pieces[0][0]) == n and bool((np.diff(pieces[0][0]) > 0).all()):
        return pieces[0][1]
    arrays = [values for _, values in pieces]
    shapes = {a.shape[1:] for a in arrays}
    numeric = all(a.dtype.kind in "biuf" for a in arrays)
    if len(shapes) == 1 and (numeric or len({a.dtype for a in arrays}) == 1):
        out = np.empty((n, *shapes.pop()), np.result_type(*arrays))
        for rows, values in pieces:
            out[rows] = values
        return out
    out = np.empty(n, dtype=object)
    for rows, values in pieces:
        for row, value in zip(rows.tolist(), _as_objects(values), strict=True):
            out[row] = value
    return out


def _as_objects(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "V":
        return [bson.ObjectId(v.tobytes()) for v in values]
    if values.ndim > 1:
        return list(values)
    return values.tolist() if values.dtype.kind in "biuf" else list(values)


def _tables(buffer: bytes, starts: np.ndarray, lengths: np.ndarray):
    """Documents grouped by length: ``(length, document indices, documents x bytes table)``.

    Consecutive documents of one length are one reshaped view of the buffer, so the common
    cases (all alike; lengths changing rarely, as uids ``x-9`` / ``x-10`` do) copy nothing.
    """
    data = np.frombuffer(buffer, np.uint8)
    n = len(starts)
    edges = np.flatnonzero(np.diff(lengths)) + 1
    runs: dict[int, list[tuple[int, int]]] = {}
    for lo, hi in zip([0, *edges.tolist()], [*edges.tolist(), n], strict=True):
        runs.setdefault(int(lengths[lo]), []).append((lo, hi))
    for length, spans in runs.items():
        blocks = [
            data[starts[lo] : starts[lo] + (hi - lo) * length].reshape(hi - lo, length)
            for lo, hi in spans
        ]
        group = np.concatenate([np.arange(lo, hi) for lo, hi in spans])
        yield length, group, blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def decode_columns(
    batches: Iterable[bytes] | bytes, paths: Sequence[Path]
) -> tuple[int, dict[Path, np.ndarray]]:
    """Decode the values at ``paths`` of every BSON document in ``batches``.

    Parameters
    ----------
    batches : bytes or iterable of bytes
        Concatenated BSON documents, e.g. what ``Collection.find_raw_batches`` yields.
    paths : sequence of tuple of str
        The values wanted, e.g. ``[("seq_num",), ("data", "det")]``.

    Returns
    -------
    n : int
        How many documents there were.
    columns : dict
        One array per path with one row per document, in document order; a value missing from
        a document is None (and its column ``object``).
    """
    buffer = batches if isinstance(batches, bytes) else b"".join(batches)
    starts, lengths = split_documents(buffer)
    n = len(starts)
    paths = list(dict.fromkeys(paths))
    if n == 0:
        return 0, {path: np.empty(0, np.float64) for path in paths}
    parts = _Parts()
    for _length, group, rows in _tables(buffer, starts, lengths):
        remaining = np.arange(len(group))
        for _ in range(MAX_TEMPLATES):
            if not remaining.size:
                break
            try:
                template = _template(rows[remaining[0]])
            except _Unsupported:
                _generic(buffer, starts, lengths, group[remaining[:1]], paths, parts)
                remaining = remaining[1:]
                continue
            whole = len(remaining) == len(rows)
            fits = _fits(rows if whole else rows[remaining], template)
            chosen = remaining[fits]
            table = rows if whole and bool(fits.all()) else rows[chosen]
            for path in paths:
                column = _copy_value(table, _find(template.root, path))
                if column is None:
                    _generic(buffer, starts, lengths, group[chosen], [path], parts)
                else:
                    parts.add(path, group[chosen], column)
            remaining = remaining[~fits]
        if remaining.size:
            _generic(buffer, starts, lengths, group[remaining], paths, parts)
    return n, {path: _combine(n, parts.pieces[path]) for path in paths}
