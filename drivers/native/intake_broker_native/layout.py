"""How a descriptor's events become zarr arrays, and checking event pages against it.

Each data key of a descriptor (except those whose values live in stream_resource assets,
``external: "STREAM:"``) gets an array for its values and one for its timestamps; external
keys also get one for their ``filled`` flags. A value is stored one of three ways:

``numeric``
    the descriptor's numpy dtype (``dtype_numpy``, else ``number`` -> float64, ``integer`` ->
    int64, ``boolean`` -> bool) and per-event shape;
``str``
    variable-length UTF-8 strings (``dtype: string`` and datum ids of external keys);
``json``
    each value as JSON text (arrays without a declared shape, structured dtypes, anything else).

Pages are checked and converted here, before anything is written: a value that does not fit its
key's declaration is refused with :class:`~intake_broker.errors.InvalidDocument`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intake_broker.errors import InvalidDocument
from intake_broker.store.documents import doc_label
from intake_broker.store.memory import in_stream_assets
from intake_broker.views.datakeys import field_dims, field_dtype, field_shape

from .docs import to_json

#: Arrays every descriptor group has, besides the fields'.
INDEX_ARRAYS = ("time", "seq_num", "uid")
_STR_ROW_BYTES = 64  # a guess at the size of a string value, for choosing chunk rows


@dataclass
class FieldSpec:
    """Where and how one data key is stored."""

    key: str
    array: str
    timestamps: str
    encoding: str  # "numeric", "str" or "json"
    dtype: str  # numpy dtype string for numeric fields, "str" otherwise
    shape: list[int]
    dims: list[str]
    filled: str | None = None

    @property
    def row_bytes(self) -> int:
        if self.encoding != "numeric":
            return _STR_ROW_BYTES
        return np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64))


#: Live runs: rows per chunk chosen at the first flush are at least this (see
#: :func:`fitted_chunk_rows`).
LIVE_CHUNK_ROWS = 1024
#: String arrays whose chunks hold at most this many rows are not compressed: a few kB gain
#: nothing from zstd, and reading them then needs no codec library (see ``columns``).
SMALL_STRING_CHUNK = 4096


@dataclass
class Layout:
    """The arrays of one descriptor's zarr group and its rows per chunk.

    ``chunk_rows`` is the most a chunk may hold until the descriptor's first rows are written;
    the first flush fits it to the rows at hand (:func:`fitted_chunk_rows`) and records it with
    the first chunk, and from then on it never changes. Layouts written before this was done
    keep their chunk_rows (readers take a chunk's size from each array's ``zarr.json``).
    ``compress_strings``: string arrays are compressed (zstd); False only for small chunks.
    ``packed``: the descriptor's events are not a zarr group but one file of all its columns
    (a small stream of a stopped run, see :mod:`.packed`); its one chunk holds every row.
    """

    chunk_rows: int
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    compress_strings: bool = True
    packed: bool = False
    #: a packed stream kept in its run's journal: ``[offset, length]`` of its line there
    packed_at: list[int] | None = None

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """The layout as plain JSON values (what :meth:`to_json` writes)."""
        obj: dict[str, Any] = {
            "chunk_rows": self.chunk_rows,
            "fields": [dict(vars(f)) for f in self.fields.values()],
        }
        if not self.compress_strings:
            obj["compress_strings"] = False
        if self.packed:
            obj["packed"] = True
        if self.packed_at is not None:
            obj["packed_at"] = list(self.packed_at)
        return obj

    @classmethod
    def from_json(cls, text: str) -> Layout:
        obj = json.loads(text)
        fields = [FieldSpec(**f) for f in obj["fields"]]
        return cls(
            obj["chunk_rows"],
            {f.key: f for f in fields},
            bool(obj.get("compress_strings", True)),
            bool(obj.get("packed", False)),
            obj.get("packed_at"),
        )

    def fitted(self, rows: int, *, final: bool) -> Layout:
        """This layout with its chunk rows fitted to the first ``rows`` to be written (see
        :func:`fitted_chunk_rows`)."""
        chunk_rows = fitted_chunk_rows(self.chunk_rows, rows, final=final)
        return Layout(chunk_rows, self.fields, chunk_rows > SMALL_STRING_CHUNK)

    def packed_for(self, rows: int) -> Layout:
        """This layout for a packed stream of exactly ``rows`` rows (one chunk)."""
        return Layout(max(1, rows), self.fields, False, packed=True)

    def row_bytes(self) -> int:
        """About how many bytes one event takes in the columns (strings guessed)."""
        return (
            16
            + _STR_ROW_BYTES
            + sum(
                f.row_bytes + 8 + (_STR_ROW_BYTES if f.filled else 0) for f in self.fields.values()
            )
        )


def fitted_chunk_rows(limit: int, rows: int, *, final: bool) -> int:
    """Rows per chunk for a descriptor whose first ``rows`` rows are being written.

    A chunk is stored whole however few of its rows hold events (zarr pads the last chunk),
    and a string chunk is decoded whole to read any of its rows: a run of 200 events in
    chunks of 100,000 rows stores and decodes 500 times what it holds. ``final`` (the run has
    stopped): exactly ``rows`` (one chunk), at most ``limit``. Otherwise (a live run's first
    flush, more events to come): the power of two at or above ``rows``, at least
    :data:`LIVE_CHUNK_ROWS`, at most ``limit``.
    """
    if final:
        return max(1, min(limit, rows))
    fitted = max(LIVE_CHUNK_ROWS, 1 << max(0, rows - 1).bit_length())
    return max(1, min(limit, fitted))


def _node_name(key: str, taken: set[str]) -> str:
    name = key.replace("/", "_").replace("\\", "_")
    if name.startswith("__") or name in ("", ".", ".."):
        name = f"k{name}"
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _encoding(data_key: Mapping[str, Any], dtype: np.dtype, shape: tuple[int, ...]) -> str:
    if data_key.get("external"):
        return "str"
    if dtype.kind == "O":
        return "str" if data_key.get("dtype") == "string" or data_key.get("dtype_numpy") else "json"
    if dtype.kind not in "biuf" or (data_key.get("dtype") == "array" and not shape):
        return "json"
    return "numeric"


def make_layout(descriptor: Mapping[str, Any], chunk_rows: int, chunk_bytes: int) -> Layout:
    """Decide the arrays of a descriptor (names unique, dimension names consistent)."""
    taken = set(INDEX_ARRAYS)
    dim_sizes: dict[str, int] = {"time": -1}
    fields: dict[str, FieldSpec] = {}
    for key, dk in descriptor.get("data_keys", {}).items():
        if in_stream_assets(dk):
            continue
        dtype, shape = field_dtype(dk), field_shape(dk)
        encoding = _encoding(dk, dtype, shape)
        if encoding != "numeric":
            shape = ()
        dims = list(field_dims(key, dk)[1:]) if shape else []
        if any(dim_sizes.get(d, n) != n for d, n in zip(dims, shape, strict=True)):
            dims = [f"{key}_dim_{i}" for i in range(len(shape))]  # keep xarray's dims consistent
        dim_sizes.update(zip(dims, shape, strict=True))
        array = _node_name(key, taken)
        fields[key] = FieldSpec(
            key=key,
            array=array,
            timestamps=_node_name(f"timestamps_{array}", taken),
            encoding=encoding,
            dtype=dtype.str if encoding == "numeric" else "str",
            shape=list(shape),
            dims=dims,
            filled=_node_name(f"filled_{array}", taken) if dk.get("external") else None,
        )
    widest = max([f.row_bytes for f in fields.values()] + [16])
    return Layout(max(1, min(chunk_rows, chunk_bytes // widest)), fields)


# -- checking and converting pages ------------------------------------------------------------


def _refuse(page: Mapping[str, Any], message: str) -> InvalidDocument:
    return InvalidDocument(f"{doc_label('event_page', page)}: {message}")


def _numeric(spec: FieldSpec, values: Any, rows: int, page: Mapping[str, Any]) -> np.ndarray:
    target = np.dtype(spec.dtype)
    try:
        array = np.asarray(values)
        if array.dtype.kind == "O":
            array = np.asarray(values, dtype=target)
    except (ValueError, TypeError) as err:
        raise _refuse(
            page,
            f"data key {spec.key!r} is declared {spec.dtype} with shape "
            f"{spec.shape} per event, but its values are not: {err}",
        ) from None
    if array.dtype.kind not in "biuf":
        raise _refuse(
            page,
            f"data key {spec.key!r} is declared {spec.dtype} but holds "
            f"{array.dtype} values such as {str(array.flat[0])[:40]!r}",
        )
    cast = array.astype(target, copy=False)
    lossy = (
        target.kind in "iub" and array.dtype.kind in "fc" and not np.array_equal(cast, array)
    ) or (target.kind == "b" and array.dtype.kind in "iu" and not np.isin(array, (0, 1)).all())
    if lossy:
        raise _refuse(
            page,
            f"data key {spec.key!r} is declared {spec.dtype} but holds values "
            f"that are not, such as {array.flat[0]!r}",
        )
    if cast.shape != (rows, *spec.shape):
        raise _refuse(
            page,
            f"data key {spec.key!r} is declared with shape {spec.shape} per "
            f"event, but the page holds shape {list(cast.shape[1:])} "
            f"({cast.shape[0] if cast.ndim else 0} rows of {rows})",
        )
    return cast


def _strings(spec: FieldSpec, values: Any, rows: int, page: Mapping[str, Any]) -> np.ndarray:
    values = list(values)
    if spec.encoding == "json":
        return np.array([to_json("event_page", v) for v in values], dtype=object)
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None:
        raise _refuse(
            page,
            f"data key {spec.key!r} holds strings (dtype string, or datum ids "
            f"of external data) but a value is {bad!r}; store unfilled events",
        )
    _check_utf8(page, f"data key {spec.key!r}", values)
    return np.array(values, dtype=object)


def utf8(text: str) -> bool:
    """Whether a string can be stored as UTF-8 (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_utf8(page: Mapping[str, Any], what: str, values: list) -> None:
    bad = next((v for v in values if not utf8(v)), None)
    if bad is not None:
        raise _refuse(
            page,
            f"{what} holds {bad!r}, which is not valid Unicode text (a lone surrogate) "
            "and cannot be stored as UTF-8",
        )


def _column(page: Mapping[str, Any], name: str, values: Any, dtype: str, rows: int) -> np.ndarray:
    try:
        column = np.asarray(values)
        cast = column.astype(dtype)
    except (ValueError, TypeError) as err:
        raise _refuse(page, f"column {name!r} must hold {dtype} values: {err}") from None
    if column.dtype.kind == "f" and cast.dtype.kind == "i" and not np.array_equal(cast, column):
        raise _refuse(page, f"column {name!r} must hold integers")
    if cast.shape != (rows,):
        raise _refuse(page, f"column {name!r} has shape {list(cast.shape)}, expected [{rows}]")
    return cast


def convert_page(layout: Layout, descriptor: Mapping[str, Any], page: Mapping[str, Any]) -> dict:
    """An event page as the columns this layout stores: checked, converted, nothing written.

    Raises
    ------
    InvalidDocument
        Naming the page and the key whose values do not fit the descriptor.
    """
    uids = (
        [str(u) for u in page["uid"]]
        if isinstance(page.get("uid"), list | tuple | np.ndarray)
        else None
    )
    if uids is None:
        raise _refuse(page, "'uid' must be a list of event uids")
    rows = len(uids)
    _check_utf8(page, "'uid'", uids)
    if len(set(uids)) != rows:
        raise _refuse(page, "the page holds the same event uid twice")
    given = set(page.get("data", {}))
    wanted = set(layout.fields)
    if given != wanted:
        declared = set(descriptor["data_keys"])
        raise _refuse(
            page,
            f"its data keys do not match descriptor {descriptor['uid']!r}: "
            f"unexpected {sorted(given - declared)}, missing "
            f"{sorted(wanted - given)}, not kept in events (STREAM: external) "
            f"{sorted((given & declared) - wanted)}; every event carries "
            "exactly the keys its descriptor declares",
        )
    timestamps = page.get("timestamps", {})
    missing_ts = sorted(wanted - set(timestamps))
    if missing_ts:
        raise _refuse(page, f"no timestamps for data keys {missing_ts}")
    out: dict[str, Any] = {
        "rows": rows,
        "uid": np.array(uids, dtype=object),
        "time": _column(page, "time", page.get("time"), "float64", rows),
        "seq_num": _column(page, "seq_num", page.get("seq_num"), "int64", rows),
        "data": {},
        "timestamps": {},
        "filled": {},
    }
    filled = page.get("filled") or {}
    for key, spec in layout.fields.items():
        convert = _numeric if spec.encoding == "numeric" else _strings
        out["data"][key] = convert(spec, page["data"][key], rows, page)
        out["timestamps"][key] = _column(
            page, f"timestamps[{key!r}]", timestamps[key], "float64", rows
        )
        if spec.filled is not None:
            flags = filled.get(key)
            if flags is None:
                out["filled"][key] = np.full(rows, "", dtype=object)
            else:
                if len(flags) != rows:
                    raise _refuse(page, f"filled[{key!r}] has {len(flags)} rows, not {rows}")
                out["filled"][key] = np.array(
                    [to_json("event_page", f) for f in flags], dtype=object
                )
    return out


def empty_columns(layout: Layout) -> dict:
    """Converted columns with no rows."""
    return {
        "rows": 0,
        "uid": np.empty(0, object),
        "time": np.empty(0),
        "seq_num": np.empty(0, np.int64),
        "data": {
            k: np.empty((0, *s.shape), s.dtype if s.encoding == "numeric" else object)
            for k, s in layout.fields.items()
        },
        "timestamps": {k: np.empty(0) for k in layout.fields},
        "filled": {k: np.empty(0, object) for k, s in layout.fields.items() if s.filled},
    }


def concat_columns(parts: list[dict]) -> dict:
    """Converted pages joined into one."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return {
        "rows": sum(p["rows"] for p in parts),
        "uid": np.concatenate([p["uid"] for p in parts]),
        "time": np.concatenate([p["time"] for p in parts]),
        "seq_num": np.concatenate([p["seq_num"] for p in parts]),
        **{
            group: {k: np.concatenate([p[group][k] for p in parts]) for k in first[group]}
            for group in ("data", "timestamps", "filled")
        },
    }


def slice_columns(columns: dict, start: int, stop: int) -> dict:
    """Rows ``start:stop`` of converted columns."""
    return {
        "rows": max(0, min(stop, columns["rows"]) - start),
        **{name: columns[name][start:stop] for name in ("uid", "time", "seq_num")},
        **{
            group: {k: v[start:stop] for k, v in columns[group].items()}
            for group in ("data", "timestamps", "filled")
        },
    }
