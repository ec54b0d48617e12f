"""Reading events back: columns for a seq_num range, and pages for replaying documents.

The rows to read come from the ``event_chunks`` table (what was flushed), never from the zarr
array shapes. When every chunk's seq_nums increase (the usual case) a seq_num range maps to a
row range by a binary search over the chunks; seq_nums that are contiguous are not even read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from intake_broker.store import Chunk, EventColumns

from .columns import ColumnStore, array_specs
from .layout import FieldSpec, Layout
from .writer import ChunkRow


@dataclass(frozen=True)
class DescriptorInfo:
    """What a reader needs about a descriptor (it never changes once written)."""

    uid: str
    run_uid: str
    path: str
    layout: Layout

    def where(self, what: str) -> str:
        return f"{what} of descriptor {self.uid!r} in run {self.run_uid!r}"

    def names(self, group: str, keys: Sequence[str]) -> list[str]:
        specs = self.layout.fields
        if group == "data":
            return [specs[k].array for k in keys]
        if group == "timestamps":
            return [specs[k].timestamps for k in keys]
        return [specs[k].filled for k in keys if specs[k].filled]  # type: ignore[misc]


class LazyColumns(Mapping):
    """A mapping of columns read when first looked up (timestamps are rarely wanted)."""

    def __init__(self, keys: Sequence[str], load: Callable[[list[str]], dict[str, np.ndarray]]):
        self._keys = list(keys)
        self._load = load
        self._values: dict[str, np.ndarray] | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        if self._values is None:
            self._values = self._load(self._keys)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"LazyColumns({self._keys})"

    def __reduce__(self):  # pickled (e.g. to a dask worker) as the plain dict it stands for
        return (dict, (dict(self.items()),))


def decode(spec: FieldSpec, values: np.ndarray) -> np.ndarray:
    """Stored values as the values events held (JSON text parsed back)."""
    if spec.encoding != "json":
        return values
    out = np.empty(len(values), dtype=object)
    out[:] = [json.loads(v) for v in values]
    return out


def decode_filled(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [json.loads(v) if v else False for v in values]
    return out


def chunk_list(info: DescriptorInfo, rows: list[ChunkRow]) -> list[Chunk]:
    """A descriptor's chunks; one spanning everything when seq_nums do not increase."""
    if not rows:
        return []
    if all(r.increasing for r in rows):
        return [Chunk(info.uid, r.seq_min, r.seq_max + 1, r.rows) for r in rows]
    return [
        Chunk(
            info.uid,
            min(r.seq_min for r in rows),
            max(r.seq_max for r in rows) + 1,
            sum(r.rows for r in rows),
        )
    ]


def _seq_of(columns: ColumnStore, info: DescriptorInfo, rows: list[ChunkRow]) -> np.ndarray:
    """seq_num of the rows of these (consecutive) chunks; computed when contiguous."""
    if all(r.contiguous for r in rows):
        if all(b.seq_first == a.seq_last + 1 for a, b in zip(rows, rows[1:], strict=False)):
            return np.arange(rows[0].seq_first, rows[-1].seq_last + 1, dtype=np.int64)
        return np.concatenate(
            [np.arange(r.seq_first, r.seq_first + r.rows, dtype=np.int64) for r in rows]
        )
    start, stop = rows[0].row_start, rows[-1].row_start + rows[-1].rows
    where = {"seq_num": info.where("seq_num")}
    return columns.read(info.path, ["seq_num"], start, stop, where, info.layout)["seq_num"]


def _rows_for(
    columns: ColumnStore,
    info: DescriptorInfo,
    chunks: list[ChunkRow],
    seq_range: tuple[int, int] | None,
) -> tuple[int, int, np.ndarray | None, np.ndarray]:
    """``(start, stop, take, seq_num)``: the row range to read, the rows to take from it in
    order (None: all, already ordered by seq_num) and their seq_nums."""
    if not chunks:
        return 0, 0, None, np.empty(0, np.int64)
    if all(c.increasing for c in chunks):
        if seq_range is not None:
            lo, hi = seq_range
            chunks = [c for c in chunks if c.seq_max >= lo and c.seq_min < hi]
            if not chunks:
                return 0, 0, None, np.empty(0, np.int64)
        seq = _seq_of(columns, info, chunks)
        start = chunks[0].row_start
        if seq_range is None:
            return start, start + len(seq), None, seq
        a, b = (int(i) for i in np.searchsorted(seq, seq_range))
        return start + a, start + b, None, seq if (a, b) == (0, len(seq)) else seq[a:b].copy()
    seq = _seq_of(columns, info, chunks)
    lo, hi = seq_range if seq_range is not None else (-np.inf, np.inf)
    picked = np.flatnonzero((seq >= lo) & (seq < hi))
    picked = picked[np.argsort(seq[picked], kind="stable")]
    if not len(picked):
        return 0, 0, None, np.empty(0, np.int64)
    start, stop = int(picked.min()), int(picked.max()) + 1
    return start, stop, picked - start, seq[picked]


def _empty(layout: Layout, names: list[str]) -> dict[str, np.ndarray]:
    """No rows of these arrays, with their stored dtypes and shapes (strings: object)."""
    specs = {s.name: s for s in array_specs(layout)}
    return {
        n: np.empty((0, *specs[n].shape), object if specs[n].dtype == "str" else specs[n].dtype)
        for n in names
    }


def read_events(
    columns: ColumnStore,
    info: DescriptorInfo,
    chunks: list[ChunkRow],
    fields: Sequence[str] | None,
    seq_range: tuple[int, int] | None,
    uids: bool,
) -> EventColumns:
    """The store's ``read_events`` over the flushed chunks of one descriptor."""
    specs = info.layout.fields
    keys = sorted(specs) if fields is None else [k for k in fields if k in specs]
    start, stop, take, seq = _rows_for(columns, info, chunks, seq_range)

    def load(group: str, wanted: list[str]) -> dict[str, np.ndarray]:
        names = info.names(group, wanted)
        if stop <= start or not names:
            return _empty(info.layout, names)
        where = {n: info.where(f"{group} array {n!r}") for n in names}
        got = columns.read(info.path, names, start, stop, where, info.layout)
        return {n: v if take is None else v[take] for n, v in got.items()}

    base = ["time"] + (["uid"] if uids else [])
    if stop > start:
        # the index columns and the data in one read: the chunks are spread over one pool
        data_names = info.names("data", keys)
        where = {n: info.where(f"the {n} array") for n in base}
        where.update({n: info.where(f"data array {n!r}") for n in data_names})
        got = columns.read(info.path, base + data_names, start, stop, where, info.layout)
        if take is not None:
            got = {n: v[take] for n, v in got.items()}
        data_arrays = {n: got[n] for n in data_names}
    else:
        got = _empty(info.layout, base)
        data_arrays = load("data", keys)
    data = {k: decode(specs[k], data_arrays[specs[k].array]) for k in keys}

    def timestamps(wanted: list[str]) -> dict[str, np.ndarray]:
        arrays = load("timestamps", wanted)
        return {k: arrays.get(specs[k].timestamps, np.empty(0)) for k in wanted}

    def filled(wanted: list[str]) -> dict[str, np.ndarray]:
        arrays = load("filled", wanted)
        return {k: decode_filled(arrays[specs[k].filled]) for k in wanted}  # type: ignore[index]

    return EventColumns(
        seq_num=seq,
        time=got["time"],
        data=data,
        timestamps=LazyColumns(keys, timestamps),  # type: ignore[arg-type]
        filled=LazyColumns([k for k in keys if specs[k].filled], filled),  # type: ignore[arg-type]
        uid=got.get("uid") if uids else None,
    )


# -- raw rows, for replay and for comparing re-inserted events ---------------------------------


def raw_rows(columns: ColumnStore, info: DescriptorInfo, start: int, stop: int) -> dict:
    """Rows ``start:stop`` in insertion order, as converted columns (stored encodings)."""
    names = [s.name for s in array_specs(info.layout)]
    where = {n: info.where(f"array {n!r}") for n in names}
    got = columns.read(info.path, names, start, stop, where, info.layout)
    specs = info.layout.fields
    return {
        "rows": stop - start,
        "uid": got["uid"],
        "time": got["time"],
        "seq_num": got["seq_num"],
        "data": {k: got[s.array] for k, s in specs.items()},
        "timestamps": {k: got[s.timestamps] for k, s in specs.items()},
        "filled": {k: got[s.filled] for k, s in specs.items() if s.filled},
    }


def _plain(spec: FieldSpec, values: np.ndarray) -> list:
    if spec.encoding == "json":
        return [json.loads(v) for v in values]
    if spec.encoding == "str":
        return [str(v) for v in values]
    return values.tolist()


def build_page(layout: Layout, descriptor_uid: str, cols: dict) -> dict:
    """An event_page document from converted columns (plain lists: JSON-ready)."""
    filled = {}
    for key, values in cols["filled"].items():
        if any(values):
            filled[key] = [json.loads(v) if v else False for v in values]
    return {
        "descriptor": descriptor_uid,
        "uid": [str(u) for u in cols["uid"]],
        "time": cols["time"].tolist(),
        "seq_num": cols["seq_num"].tolist(),
        "data": {k: _plain(layout.fields[k], v) for k, v in cols["data"].items()},
        "timestamps": {k: v.tolist() for k, v in cols["timestamps"].items()},
        "filled": filled,
    }


def event_doc(layout: Layout, descriptor_uid: str, cols: dict, row: int) -> dict:
    """One event of converted columns, as an event document."""
    one = {name: cols[name][row : row + 1] for name in ("uid", "time", "seq_num")}
    for group in ("data", "timestamps", "filled"):
        one[group] = {k: v[row : row + 1] for k, v in cols[group].items()}
    page = build_page(layout, descriptor_uid, one)
    return {
        "uid": page["uid"][0],
        "time": page["time"][0],
        "seq_num": page["seq_num"][0],
        "descriptor": descriptor_uid,
        "data": {k: v[0] for k, v in page["data"].items()},
        "timestamps": {k: v[0] for k, v in page["timestamps"].items()},
        "filled": {k: v[0] for k, v in page["filled"].items()},
    }


def same_columns(a: dict, b: dict) -> bool:
    """Whether two sets of converted columns hold the same rows (stored encodings)."""

    def equal(x: np.ndarray, y: np.ndarray) -> bool:
        if x.dtype.kind == "O" or y.dtype.kind == "O":
            return x.shape == y.shape and x.tolist() == y.tolist()
        return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))

    if a["rows"] != b["rows"]:
        return False
    if not all(equal(a[n], b[n]) for n in ("uid", "time", "seq_num")):
        return False
    return all(
        a[g].keys() == b[g].keys() and all(equal(a[g][k], b[g][k]) for k in a[g])
        for g in ("data", "timestamps", "filled")
    )


def take_rows(cols: dict, rows: np.ndarray) -> dict:
    """Converted columns at the given rows."""
    return {
        "rows": len(rows),
        **{n: cols[n][rows] for n in ("uid", "time", "seq_num")},
        **{g: {k: v[rows] for k, v in cols[g].items()} for g in ("data", "timestamps", "filled")},
    }
