"""Shaping runs: align the streams of a run on one time axis, merge runs along a new dimension,
split a stream by a field's value, pivot a waveform into events and stack it back, resample on
the time axis, and datetimes as a coordinate.

Everything here works on what a :class:`~intake_broker.views.stream.Stream` gives (an
``xarray.Dataset`` with dimension ``time``, float seconds since the epoch), so it works for
every store, a remote one and a federation alike. Event times (and the values a call groups
by) are read when the call is made; every other value stays lazy (dask) when the input is.

Rules stated once:

- ``align``: ``previous`` never takes a reading from the future: a reading at exactly an
  event's time counts as before it. ``nearest`` takes the earlier reading on a tie.
  ``linear`` interpolates numbers between the readings around the event (no extrapolation)
  and takes the previous reading for fields that are not numbers. Where no reading is within
  ``tolerance`` the value is NaN (integers and booleans become float64, strings ``None``) and
  the coordinate ``<stream>_valid`` is False.
- ``merge_runs``: padding (a missing field, or fewer events with ``join="outer"``) is NaN;
  integer and boolean fields that need padding become float64, others keep their dtype
  (object fields pad with ``None``).
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from intake_broker.errors import (
    FieldNotFound,
    IncompatibleShapes,
    InvalidArgument,
    NotMonotonic,
    WrongArgumentType,
)
from intake_broker.views.datakeys import field_attrs, field_dims, field_dtype, field_shape

if TYPE_CHECKING:
    import xarray as xr

    from intake_broker.views.catalog import Run

#: At most this many runs in one ``merge_runs`` (a catalog with more: narrow it first).
MAX_MERGE_RUNS = 10_000
#: At most this many start-document keys as coordinates of a merge.
MAX_COORDS = 100
#: At most this many groups from ``split``.
MAX_GROUPS = 10_000
#: At most this many bins from ``resample``.
MAX_BINS = 10_000_000
#: At most this many streams in one ``align``.
MAX_STREAMS = 100

ALIGN_METHODS = ("previous", "nearest", "linear")
RESAMPLE_HOW = ("mean", "sum", "min", "max", "first", "last", "count", "median", "std")
JOINS = ("outer", "inner")


# -- arguments --------------------------------------------------------------------------------


def as_seconds(value: Any, what: str) -> float:
    """A duration in seconds from a number of seconds, a ``datetime.timedelta`` (pandas'
    ``Timedelta`` is one) or a ``numpy.timedelta64``; anything else is a
    :class:`WrongArgumentType`, a negative or non-finite duration an :class:`InvalidArgument`."""
    if isinstance(value, bool) or value is None:
        raise WrongArgumentType(f"{what} must be a number of seconds or a timedelta, not {value!r}")
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, np.timedelta64):
        if np.isnat(value):
            raise InvalidArgument(f"{what} is NaT; give a duration such as 1.5 (seconds)")
        seconds = float(value / np.timedelta64(1, "ns")) / 1e9
    elif isinstance(value, (int, float, np.integer, np.floating)):
        seconds = float(value)
    else:
        raise WrongArgumentType(
            f"{what} must be a number of seconds, a datetime.timedelta or a numpy.timedelta64, "
            f"not {type(value).__name__} {value!r}"
            + (" (a text is taken only by resample's period)" if isinstance(value, str) else "")
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgument(f"{what} must be a finite duration >= 0, not {value!r}")
    return seconds


_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PERIOD = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s|min|h|d)\s*")


def as_period(value: Any) -> float:
    """A resampling period in seconds: ``"1s"``, ``"250ms"``, ``"2min"``, ``"1h"``, a number
    of seconds or a timedelta; it must be > 0."""
    if isinstance(value, str):
        match = _PERIOD.fullmatch(value)
        if match is None:
            raise InvalidArgument(
                f"period {value!r} is not understood; write a number and a unit of "
                f"{', '.join(_UNITS)} (e.g. '1s', '250ms', '2min') or a number of seconds"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        seconds = as_seconds(value, "period")
    if seconds <= 0:
        raise InvalidArgument(f"period must be longer than zero, not {value!r}")
    return seconds


def _choice(value: Any, allowed: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgument(f"{what} must be one of {list(allowed)}, not {value!r}")
    return value


def _dataset(source: Any) -> xr.Dataset:
    """A stream (lazy, with its ``seq_num`` coordinate) or a dataset as it is."""
    import xarray as xr

    if isinstance(source, xr.Dataset):
        return source
    with_seq_num = getattr(source, "_with", None)
    if with_seq_num is not None:
        source = with_seq_num(seq_num=True)
    to_dask = getattr(source, "to_dask", None)
    if to_dask is None:
        raise WrongArgumentType(
            f"expected a Stream or an xarray.Dataset, not {type(source).__name__}"
        )
    return to_dask()


def _times(ds: xr.Dataset, what: str) -> np.ndarray:
    if "time" not in ds.coords or ds["time"].dims != ("time",):
        raise InvalidArgument(
            f"{what} has no one-dimensional 'time' coordinate; these calls take a stream's "
            "dataset (dimension 'time', float seconds)"
        )
    return np.asarray(ds["time"].values, dtype="float64")


def check_monotonic(times: np.ndarray, what: str) -> None:
    """Raise :class:`NotMonotonic` unless ``times`` ascends (equal neighbours allowed)."""
    # One comparison pass in the common case: it is False next to a NaN as well.
    if len(times) > 1 and bool((times[1:] >= times[:-1]).all()):
        return
    if np.isnan(times).any():
        raise NotMonotonic(
            f"the time axis of {what} has NaN times (events "
            f"{np.flatnonzero(np.isnan(times))[:5].tolist()}); drop them before this call"
        )
    steps = np.diff(times)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        raise NotMonotonic(
            f"the time axis of {what} is not ascending: event {i + 1} (time {times[i + 1]!r}) "
            f"comes before event {i} (time {times[i]!r}); sort it first "
            "(ds.sortby('time')) or align on a stream whose times ascend"
        )


def _numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "fiub"


def _filled(dtype: np.dtype) -> tuple[np.dtype, Any]:
    """The dtype a field takes when some rows have no reading, and the value they get:
    numbers NaN (integers and booleans become float64), datetimes NaT, the rest ``None``."""
    if dtype.kind in "iub":
        return np.dtype("float64"), np.nan
    if dtype.kind in "fc":
        return dtype, np.nan
    if dtype.kind in "mM":
        return dtype, np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
    return np.dtype("object"), None


def _pick(
    values: Any,
    key: str | None,
    rows: np.ndarray,
    missing: np.ndarray | None,
    dtype: np.dtype,
    fill: Any,
    upper: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Rows of ``values`` (``values[key]`` when ``values`` is a dict of columns), as
    ``dtype``, ``fill`` where ``missing``. With ``upper`` and ``weight``: the interpolation
    ``values[rows] * (1 - weight) + values[upper] * weight``. The kernel of :func:`align`,
    run eagerly or as one dask task per output chunk."""
    if key is not None:
        values = values[key]
    values = np.asarray(values)
    if upper is None or weight is None:
        out = values[rows]
        if out.dtype != dtype:
            out = out.astype(dtype)
    else:
        a = values[rows].astype("float64")
        b = values[upper].astype("float64")
        w = weight.reshape(-1, *(1,) * (a.ndim - 1))
        out = a * (1 - w) + b * w
    if missing is not None:
        out[missing] = fill
    return out


def _concat_rows(blocks: list[np.ndarray]) -> np.ndarray:
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _empty_rows(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty((0, *shape), dtype=dtype)


class _Picks:
    """What one aligned stream takes from another: for every row of the target, a source
    row (``rows``, ``upper`` and ``weight`` for ``linear``), and which rows have none."""

    def __init__(
        self,
        rows: np.ndarray,
        valid: np.ndarray,
        chunks: tuple[int, ...],
        upper: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ):
        self.rows, self.valid, self.upper, self.weight = rows, valid, upper, weight
        self.all_valid = bool(valid.all())
        self.bounds = np.cumsum((0, *chunks))
        self.chunks = chunks

    def windows(self) -> list[tuple[int, int, int, int]]:
        """Per output chunk: its rows ``start:stop`` and the source rows ``lo:hi`` it needs
        (the rows ascend with the target's times, so a chunk needs a narrow window; the
        target's times need not ascend, the window is then just wider)."""
        out = []
        for start, stop in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            start, stop = int(start), int(stop)
            if stop == start:
                out.append((start, stop, 0, 0))
                continue
            rows = self.rows[start:stop]  # ascending when the target's times do
            lo, hi = int(rows.min()), int(rows.max()) + 1
            if self.upper is not None:
                hi = max(hi, int(self.upper[start:stop].max()) + 1)
            out.append((start, stop, lo, hi))
        return out

    def args(self, start: int, stop: int, shift: int) -> tuple:
        """The arguments of :func:`_pick` after ``dtype`` and ``fill`` for one chunk, the
        rows counted from ``shift``."""
        missing = None if self.all_valid else ~self.valid[start:stop]
        if missing is not None and not missing.any():
            missing = None
        upper = None if self.upper is None else self.upper[start:stop] - shift
        weight = None if self.weight is None else self.weight[start:stop]
        return self.rows[start:stop] - shift, missing, upper, weight


def _kind(picks: _Picks, dtype: np.dtype, method: str) -> tuple[np.dtype, Any, bool]:
    """The output dtype, the fill value and whether ``linear`` interpolates this field."""
    interpolate = method == "linear" and _numeric(dtype)
    if interpolate:
        return np.dtype("float64"), np.nan, True
    if picks.all_valid:
        return dtype, None, False
    return (*_filled(dtype), False)


def _pick_numpy(values: np.ndarray, picks: _Picks, method: str) -> np.ndarray:
    dtype, fill, interpolate = _kind(picks, values.dtype, method)
    missing = None if picks.all_valid else ~picks.valid
    if interpolate:
        return _pick(values, None, picks.rows, missing, dtype, fill, picks.upper, picks.weight)
    return _pick(values, None, picks.rows, missing, dtype, fill)


def _pick_dask(data: Any, picks: _Picks, method: str, token: str) -> Any:
    """``_pick`` over a dask array: one task per output chunk, depending only on the source
    chunks its window of rows covers (dask's own fancy indexing would shuffle through many
    more tasks)."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    if any(len(c) > 1 for c in data.chunks[1:]):
        data = data.rechunk({i: -1 for i in range(1, data.ndim)})
    dtype, fill, interpolate = _kind(picks, data.dtype, method)
    offsets = np.cumsum((0, *data.chunks[0]))
    zeros = (0,) * (data.ndim - 1)
    name = f"align-pick-{token}"
    layer: dict[Any, Any] = {}
    for i, (start, stop, lo, hi) in enumerate(picks.windows()):
        if stop == start:
            layer[(name, i, *zeros)] = (_empty_rows, data.shape[1:], dtype)
            continue
        first = int(np.searchsorted(offsets, lo, side="right")) - 1
        last = int(np.searchsorted(offsets, hi - 1, side="right")) - 1
        blocks = [(data.name, j, *zeros) for j in range(first, last + 1)]
        rows, missing, upper, weight = picks.args(start, stop, int(offsets[first]))
        if not interpolate:
            upper = weight = None
        layer[(name, i, *zeros)] = (
            _pick,
            (_concat_rows, blocks),
            None,
            rows,
            missing,
            dtype,
            fill,
            upper,
            weight,
        )
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[data])
    chunks = (picks.chunks, *((n,) for n in data.shape[1:]))
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


def _pick_stream(
    layout: Any, seq_num: np.ndarray, fields: list[str], picks: _Picks, method: str, token: str
) -> dict[str, Any]:
    """``_pick`` for the inline fields of a stream read straight from its store: per output
    chunk one read of the rows its window covers (shared by the fields), not one task per
    stored page and field."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    read_name = f"align-read-{token}"
    windows = picks.windows()
    read_layer: dict[Any, Any] = {}
    for i, (start, stop, lo, hi) in enumerate(windows):
        if stop > start:
            read_layer[(read_name, i)] = (
                layout.read_rows,
                layout.row_reads(seq_num, lo, hi),
                fields,
            )
    shared = len(fields) > 1  # else the read runs inside the field's own task
    out = {}
    descriptors = list(layout.fields_of.values())
    for key in fields:
        dk = layout.data_keys[key]
        dtype, shape = field_dtype(dk), field_shape(dk)
        if dtype.kind in "iub" and any(key not in present for present in descriptors):
            dtype = np.dtype("float64")  # a descriptor without the field pads with NaN
        dtype, fill, interpolate = _kind(picks, dtype, method)
        name = f"align-{key}-{token}"
        zeros = (0,) * len(shape)
        layer: dict[Any, Any] = {}
        for i, (start, stop, lo, _) in enumerate(windows):
            if stop == start:
                layer[(name, i, *zeros)] = (_empty_rows, shape, dtype)
                continue
            rows, missing, upper, weight = picks.args(start, stop, lo)
            if not interpolate:
                upper = weight = None
            layer[(name, i, *zeros)] = (
                _pick,
                (read_name, i) if shared else read_layer[(read_name, i)],
                key,
                rows,
                missing,
                dtype,
                fill,
                upper,
                weight,
            )
        if shared:
            graph = HighLevelGraph(
                {read_name: read_layer, name: layer}, {read_name: set(), name: {read_name}}
            )
        else:
            graph = HighLevelGraph({name: layer}, {name: set()})
        chunks = (picks.chunks, *((n,) for n in shape))
        out[key] = da.Array(graph, name, chunks=chunks, dtype=dtype)
    return out


class _Source:
    """One stream to align: its times and its fields as variables, lazily picked. A
    :class:`~intake_broker.views.stream.Stream` is read straight from its store (only the
    rows the target needs, one read per output chunk); a dataset goes through its arrays."""

    def __init__(self, source: Any, what: str):
        # A Stream (told by its layout; importing the class here would be an import cycle).
        layout = getattr(source, "layout", None)
        self.stream = source if hasattr(layout, "row_reads") else None
        if self.stream is not None:
            layout = self.stream.layout
            self.times, self.seq_num = layout.index()
            self.times = np.asarray(self.times, dtype="float64")
            self.fields = [str(k) for k in self.stream.fields]
            self.ds = None
        else:
            self.ds = _dataset(source)
            self.times = _times(self.ds, what)
            self.fields = [str(k) for k in self.ds.data_vars]

    def variables(self, picks: _Picks, method: str, token: str) -> dict[str, xr.Variable]:
        import dask.array as da
        import xarray as xr

        n = len(self.times)
        out: dict[str, xr.Variable] = {}
        if self.stream is not None:
            layout = self.stream.layout
            inline = [k for k in self.fields if layout.inline(k)]
            picked = (
                _pick_stream(layout, self.seq_num, inline, picks, method, token)
                if n and inline
                else {}
            )
            external = [k for k in self.fields if k not in inline]
            lazy = layout.dask_arrays(external) if n and external else {}
            for key in self.fields:
                dk = layout.data_keys[key]
                dims = field_dims(key, dk)
                if not n:
                    out[key] = _nothing(dims, picks, *_spec(dk))
                    continue
                data = (
                    picked[key]
                    if key in picked
                    else _pick_dask(lazy[key], picks, method, f"{token}-{key}")
                )
                out[key] = xr.Variable(dims, data, field_attrs(dk))
            return out
        assert self.ds is not None
        for key in self.fields:
            var = self.ds[key].variable
            if var.dims[:1] != ("time",):
                continue
            if not n:
                out[key] = _nothing(var.dims, picks, var.dtype, var.shape[1:], var.attrs)
                continue
            if isinstance(var.data, da.Array):
                data = _pick_dask(var.data, picks, method, f"{token}-{key}")
            else:
                data = _pick_numpy(np.asarray(var.data), picks, method)
            out[key] = xr.Variable(var.dims, data, dict(var.attrs))
        return out


def _spec(dk: Mapping[str, Any]) -> tuple[np.dtype, tuple[int, ...], dict[str, Any]]:
    return field_dtype(dk), field_shape(dk), field_attrs(dk)


def _nothing(
    dims: tuple, picks: _Picks, dtype: np.dtype, shape: tuple[int, ...], attrs: Mapping
) -> xr.Variable:
    """A field of a stream without readings: every row missing."""
    import xarray as xr

    dtype, fill = _filled(dtype)
    rows = len(picks.rows)
    return xr.Variable(dims, np.full((rows, *shape), fill, dtype=dtype), dict(attrs))


def _picks(
    times: np.ndarray, target: np.ndarray, method: str, tol: float | None, chunks: tuple[int, ...]
) -> tuple[_Picks, np.ndarray | None]:
    """The source row for each target time (what ``pandas.merge_asof`` finds: one
    ``searchsorted``), the validity under ``tolerance``, and for ``previous`` and
    ``nearest`` the time of the reading taken."""
    n = len(times)
    before = np.searchsorted(times, target, side="right") - 1  # last reading <= t
    has_before = before >= 0
    last = max(n - 1, 0)
    if not n:
        empty = np.zeros(len(target), dtype=np.intp)
        return _Picks(empty, np.zeros(len(target), bool), chunks), np.full(len(target), np.nan)
    index = np.clip(before, 0, last)
    at_before = times[index]
    if method == "previous":
        valid = has_before
        if tol is not None:
            valid = valid & (target - at_before <= tol)
        return _Picks(index, valid, chunks), np.where(valid, at_before, np.nan)
    after = before + 1  # first reading > t
    has_after = after < n
    dt_before = np.where(has_before, target - at_before, np.inf)
    dt_after = np.where(has_after, times[np.clip(after, 0, last)] - target, np.inf)
    if method == "nearest":
        take_before = dt_before <= dt_after
        index = np.clip(np.where(take_before, before, after), 0, last)
        valid = has_before | has_after
        if tol is not None:
            valid = valid & (np.where(take_before, dt_before, dt_after) <= tol)
        return _Picks(index, valid, chunks), np.where(valid, times[index], np.nan)
    # linear: exact readings, or a reading on each side
    exact = has_before & (dt_before == 0)
    valid = exact | (has_before & has_after)
    if tol is not None:
        valid = valid & (np.where(exact, 0.0, np.maximum(dt_before, dt_after)) <= tol)
    lo = np.clip(before, 0, last)
    hi = np.clip(after, 0, last)
    span = times[hi] - times[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(span > 0, (target - times[lo]) / np.where(span > 0, span, 1), 0.0)
    weight = np.where(exact, 0.0, weight)
    return _Picks(lo, valid, chunks, upper=hi, weight=weight), None


# -- align ------------------------------------------------------------------------------------


def align(
    run: Run | Mapping[str, Any],
    streams: Sequence[str],
    *,
    on: str = "primary",
    method: str = "previous",
    tolerance: Any = None,
) -> xr.Dataset:
    """The streams of one run on the time axis of stream ``on``, as one ``xarray.Dataset``.

    Parameters
    ----------
    run : Run
        The run (or a mapping of stream names to streams or datasets).
    streams : list of str
        The streams to put together; ``on`` is added when missing.
    on : str
        The stream whose events give the time axis (its values are kept as they are).
    method : "previous", "nearest" or "linear"
        How a reading of another stream is chosen for an event (see the module's rules).
    tolerance : seconds, ``datetime.timedelta`` or ``numpy.timedelta64``, optional
        The farthest a reading may be from the event; farther gives NaN.

    Variables keep their names; a name found in more than one stream is prefixed
    ``<stream>_`` in every stream but ``on``. For every other stream the result has the
    coordinates ``<stream>_valid`` (whether a reading was found) and, for ``previous`` and
    ``nearest``, ``<stream>_time`` (the time of the reading taken, NaN where none).

    Only the time columns are read when this is called (one ``searchsorted`` of the
    target's times in each stream's, as ``pandas.merge_asof`` does); the values are read
    when computed, one task per chunk of ``on`` reading just the rows that chunk needs.
    """

    method = _choice(method, ALIGN_METHODS, "method")
    tol = None if tolerance is None else as_seconds(tolerance, "tolerance")
    if isinstance(streams, str) or not isinstance(streams, Sequence):
        raise WrongArgumentType(
            f"streams must be a list of stream names, not {type(streams).__name__} {streams!r}"
        )
    names = list(dict.fromkeys([on, *streams]))
    if len(names) > MAX_STREAMS:
        raise InvalidArgument(f"at most {MAX_STREAMS} streams can be aligned, not {len(names)}")
    for name in names:
        if not isinstance(name, str):
            raise WrongArgumentType(f"stream names are texts, not {name!r}")
    base = _dataset(run[on])
    target = _times(base, f"stream {on!r}")
    sources = {name: _Source(run[name], f"stream {name!r}") for name in names[1:]}
    chunks = next((v.chunks[0] for v in base.data_vars.values() if v.chunks), None)
    if not chunks or sum(chunks) != len(target):
        chunks = (len(target),)
    seen: dict[str, int] = {str(k): 1 for k in base.data_vars}
    for source in sources.values():
        for key in source.fields:
            seen[key] = seen.get(key, 0) + 1
    taken = {str(k) for k in base.variables}
    new_vars: dict[str, xr.Variable] = {}
    new_coords: dict[str, tuple[str, np.ndarray]] = {}
    # Task names unique to this call (hashing the time columns would cost more than the
    # searchsorted itself).
    token = uuid.uuid4().hex
    for name, source in sources.items():
        check_monotonic(source.times, f"stream {name!r}")
        picks, when = _picks(source.times, target, method, tol, chunks)
        renamed = {}
        for key in source.fields:
            new = f"{name}_{key}" if seen[key] > 1 else key
            if new in taken:
                raise InvalidArgument(
                    f"aligning stream {name!r}: its field {key!r} would be named {new!r}, "
                    "which the result already has; align fewer streams at once"
                )
            taken.add(new)
            renamed[key] = new
        for key, var in source.variables(picks, method, f"{name}-{token}").items():
            var.attrs = {**var.attrs, "stream": name}
            new_vars[renamed[key]] = var
        new_coords[f"{name}_valid"] = ("time", picks.valid)
        taken.add(f"{name}_valid")
        if when is not None:
            new_coords[f"{name}_time"] = ("time", when)
            taken.add(f"{name}_time")
    out = base.assign_coords(new_coords) if new_coords else base.copy()
    out = out.assign(new_vars)
    out.attrs = {
        **base.attrs,
        "aligned_on": on,
        "streams": names,
        "method": method,
        "tolerance": "none" if tol is None else tol,
    }
    return out


# -- merging runs -----------------------------------------------------------------------------


def _start_value(start: Mapping[str, Any], key: str) -> Any:
    value: Any = start
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _coordinate(values: list[Any]) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present
    ):
        if len(present) == len(values) and all(isinstance(v, (int, np.integer)) for v in values):
            return np.asarray(values, dtype="int64")
        return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    if present and len(present) == len(values) and all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    out = np.empty(len(values), dtype=object)
    out[:] = [v if isinstance(v, (str, int, float, bool)) or v is None else repr(v) for v in values]
    return out


def merge_runs(
    runs: Iterable[Run],
    stream: str = "primary",
    *,
    dim: str = "run",
    coords: Sequence[str] = ("scan_id",),
    join: str = "outer",
    fields: Sequence[str] | None = None,
) -> xr.Dataset:
    """One stream of several runs as one lazy ``xarray.Dataset`` with dimensions
    ``(dim, "event")``.

    Parameters
    ----------
    runs : iterable of Run, or a catalog
        The runs, in the order they get along ``dim`` (a catalog gives its runs newest first).
    stream : str
        The stream taken from each run.
    dim : str
        The name of the new dimension.
    coords : list of str
        Start-document keys (dotted for nested ones, ``"sample.temperature"``) that become
        coordinates along ``dim``; a run without the key gets NaN (or None). ``uid`` is
        always a coordinate.
    join : "outer" or "inner"
        Fields: every field of any run (outer; padded) or those of every run (inner). Events:
        padded to the longest run (outer) or cut to the shortest (inner).
    fields : list of str, optional
        Only these fields.

    ``time`` and ``seq_num`` become coordinates over ``(dim, "event")``, NaN where padded.
    """
    import dask.array as da
    import xarray as xr

    join = _choice(join, JOINS, "join")
    if not isinstance(dim, str) or not dim or dim in ("event", "time"):
        raise InvalidArgument(f"dim must be a name other than 'event' and 'time', not {dim!r}")
    if isinstance(coords, str):
        coords = [coords]
    coords = list(coords)
    if len(coords) > MAX_COORDS or not all(isinstance(c, str) and c for c in coords):
        raise InvalidArgument(
            f"coords must be at most {MAX_COORDS} start-document keys (texts), not {coords!r}"
        )
    values = runs.values() if hasattr(runs, "values") and not isinstance(runs, Mapping) else runs
    if isinstance(runs, Mapping):
        values = runs.values()
    chosen: list[Run] = []
    for run in values:
        chosen.append(run)
        if len(chosen) > MAX_MERGE_RUNS:
            raise InvalidArgument(
                f"merge_runs takes at most {MAX_MERGE_RUNS} runs; narrow the search first"
            )
    if not chosen:
        raise InvalidArgument("merge_runs needs at least one run; the search found none")
    layouts, indexes, field_lists = [], [], []
    for run in chosen:
        source = run[stream]
        layout = source.layout
        layouts.append(layout)
        indexes.append(layout.index())
        keys = source.fields
        if fields is not None:
            keys = [k for k in keys if k in set(fields)]
        field_lists.append(keys)
    if fields is not None:
        known = {k for keys in field_lists for k in keys}
        unknown = [f for f in fields if f not in known]
        if unknown:
            raise FieldNotFound(
                f"no run has the fields {unknown} in stream {stream!r}; they have "
                f"{sorted({k for lay in layouts for k in lay.data_keys})}"
            )
    order: list[str] = []
    for keys in field_lists:
        order += [k for k in keys if k not in order]
    if join == "inner":
        common = set.intersection(*(set(k) for k in field_lists))
        order = [k for k in order if k in common]
    lengths = [len(t) for t, _ in indexes]
    n = max(lengths) if join == "outer" else min(lengths)
    short = any(length < n for length in lengths)
    data_vars = {}
    for key in order:
        holders = [i for i, keys in enumerate(field_lists) if key in keys]
        spec = {
            i: (field_shape(layouts[i].data_keys[key]), field_dtype(layouts[i].data_keys[key]))
            for i in holders
        }
        shapes = {s for s, _ in spec.values()}
        if len(shapes) > 1:
            detail = ", ".join(f"{chosen[i].uid[:8]}: {list(spec[i][0])}" for i in holders[:10])
            raise IncompatibleShapes(
                f"field {key!r} of stream {stream!r} has different shapes per event in the "
                f"runs ({detail}); merge runs of one shape, or leave the field out (fields=...)"
            )
        shape = shapes.pop()
        dtype = np.result_type(*(d for _, d in spec.values()))
        padded = short or len(holders) < len(chosen)
        if padded and dtype.kind in "iub":
            dtype = np.dtype("float64")
        fill = None if dtype.kind == "O" else np.nan
        parts = []
        lazy = {i: layouts[i].dask_arrays([key])[key] for i in holders}
        for i in range(len(chosen)):
            if i not in lazy:
                parts.append(da.full((n, *shape), fill, dtype=dtype))
                continue
            array = lazy[i][:n].astype(dtype)
            if array.shape[0] < n:
                pad = da.full((n - array.shape[0], *shape), fill, dtype=dtype)
                array = da.concatenate([array, pad])
            parts.append(array)
        dims = field_dims(key, layouts[holders[0]].data_keys[key])
        dk = layouts[holders[0]].data_keys[key]
        attrs = {k: dk[k] for k in ("source", "units", "object_name") if k in dk}
        data_vars[key] = xr.Variable((dim, "event", *dims[1:]), da.stack(parts), attrs=attrs)
    time = np.full((len(chosen), n), np.nan)
    seq = np.full((len(chosen), n), np.nan) if short else np.zeros((len(chosen), n), "int64")
    for i, (t, s) in enumerate(indexes):
        m = min(n, len(t))
        time[i, :m] = t[:m]
        seq[i, :m] = s[:m]
    coordinates: dict[str, Any] = {
        "event": np.arange(n),
        "time": ((dim, "event"), time),
        "seq_num": ((dim, "event"), seq),
        "uid": (dim, np.asarray([r.uid for r in chosen], dtype=str)),
    }
    for key in coords:
        if key in coordinates or key in data_vars:
            raise InvalidArgument(f"coordinate {key!r} clashes with a field or coordinate")
        coordinates[key] = (
            dim,
            _coordinate([_start_value(r.metadata["start"], key) for r in chosen]),
        )
    return xr.Dataset(
        data_vars,
        coords=coordinates,
        attrs={
            "stream_name": stream,
            "join": join,
            "padding": "NaN; integer and boolean fields that need padding are float64",
            "events": lengths,
        },
    )


# -- reshaping --------------------------------------------------------------------------------


def _key(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def split(source: Any, by: str) -> dict[Any, xr.Dataset]:
    """The events of a stream (or dataset) grouped by the value of field ``by``:
    ``{value: dataset}`` in order of first appearance, each lazy when the input is. Events
    where ``by`` is NaN or None go under ``None``."""
    ds = _dataset(source)
    _times(ds, "the dataset")
    if not isinstance(by, str):
        raise WrongArgumentType(f"by must be a field name, not {by!r}")
    if by not in ds.variables:
        raise FieldNotFound(
            f"cannot split by {by!r}: the dataset has {sorted(map(str, ds.variables))}"
        )
    if ds[by].dims != ("time",):
        raise InvalidArgument(
            f"cannot split by {by!r}: it is not one value per event (dims {ds[by].dims})"
        )
    keys = [_key(v) for v in np.asarray(ds[by].values).tolist()]
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
        if len(groups) > MAX_GROUPS:
            raise InvalidArgument(
                f"splitting by {by!r} gives more than {MAX_GROUPS} groups; "
                "split by a field with fewer values, or resample"
            )
    return {k: ds.isel(time=np.asarray(rows)) for k, rows in groups.items()}


def pivot(source: Any, fields: Sequence[str], *, time: str | None = None) -> xr.Dataset:
    """Events carrying time series (``fields``: one waveform of ``n`` points per event) as a
    series of events, one per point.

    ``time`` names a field holding each point's time (seconds, same shape); without it each
    point has its event's time. Other fields repeat for every point of their event; the
    coordinates ``seq_num`` and ``event_time`` (the parent event's) and ``point`` (the
    position in the waveform) make :func:`stack` restore the events exactly.
    """
    import xarray as xr

    ds = _dataset(source)
    _times(ds, "the dataset")
    if isinstance(fields, str):
        fields = [fields]
    fields = list(fields)
    series = fields + ([time] if time else [])
    if not fields:
        raise InvalidArgument("pivot needs at least one waveform field")
    missing = [f for f in series if f not in ds.data_vars]
    if missing:
        raise FieldNotFound(
            f"cannot pivot: no fields {missing}; the dataset has {sorted(map(str, ds.data_vars))}"
        )
    shapes = {f: ds[f].shape[1:] for f in series}
    if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise IncompatibleShapes(
            f"pivot takes fields of one dimension and one length per event; got shapes {shapes}"
        )
    points = shapes[series[0]][0]
    events = ds.sizes["time"]
    rows = events * points
    parent_time = ds["time"].values
    point_dim = ds[series[0]].dims[1]
    data_vars: dict[str, xr.Variable] = {}
    for key, var in ds.data_vars.items():
        key = str(key)
        if key == time:
            continue
        if key in fields:
            data_vars[key] = xr.Variable(("time",), var.data.reshape(rows), var.attrs)
        elif var.dims[:1] == ("time",):
            data = var.data
            repeated = data[np.repeat(np.arange(events), points)] if events else data[:0]
            data_vars[key] = xr.Variable(var.dims, repeated, var.attrs)
    new_time = (
        np.asarray(ds[time].values, dtype="float64").reshape(rows)
        if time
        else np.repeat(parent_time, points)
    )
    coords = {
        "time": ("time", new_time, dict(ds[time].attrs) if time else {}),
        "seq_num": (
            "time",
            np.repeat(
                ds["seq_num"].values if "seq_num" in ds.coords else np.arange(events), points
            ),
        ),
        "event_time": ("time", np.repeat(parent_time, points)),
        "point": ("time", np.tile(np.arange(points), events)),
    }
    attrs = {
        **ds.attrs,
        "pivot_fields": fields,
        "pivot_time": time or "",
        "pivot_dim": point_dim,
        "pivot_dims": [str(ds[f].dims[1]) for f in series],
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def stack(
    source: Any,
    fields: Sequence[str] | None = None,
    *,
    by: str = "seq_num",
    time: str | None = None,
    dim: str | None = None,
) -> xr.Dataset:
    """A series of events as fewer events each carrying time series: the inverse of
    :func:`pivot`.

    Rows with the same ``by`` value (default ``seq_num``, which pivot keeps) form one event;
    every group must have the same number of rows. ``fields`` (default: what pivot recorded)
    become waveform fields along ``dim``; ``time`` names the waveform field that receives
    the rows' times (default: what pivot recorded; none when pivot had no time field). Every
    other field must be constant within each group, and stays one value per event. An
    event's time is its ``event_time`` coordinate if the rows have one, else its first row's.
    """
    import xarray as xr

    ds = _dataset(source)
    _times(ds, "the dataset")
    if fields is None:
        fields = list(ds.attrs.get("pivot_fields") or [])
        if not fields:
            raise InvalidArgument("stack needs fields=[...] (the dataset does not come from pivot)")
    if isinstance(fields, str):
        fields = [fields]
    fields = list(fields)
    if time is None:
        time = ds.attrs.get("pivot_time") or None
    dim = dim or ds.attrs.get("pivot_dim") or "point"
    recorded = ds.attrs.get("pivot_dims") or []
    pivoted = list(ds.attrs.get("pivot_fields") or []) + [ds.attrs.get("pivot_time") or ""]
    dims_of = {f: d for f, d in zip(pivoted, recorded, strict=False) if f}
    missing = [f for f in [*fields, by] if f not in ds.variables]
    if missing:
        raise FieldNotFound(
            f"cannot stack: no fields {missing}; the dataset has {sorted(map(str, ds.variables))}"
        )
    labels = np.asarray(ds[by].values)
    if labels.ndim != 1:
        raise InvalidArgument(f"stack groups by a value per row; {by!r} has dims {ds[by].dims}")
    point = np.asarray(ds["point"].values) if "point" in ds.coords else np.zeros(len(labels))
    order = np.lexsort((point, labels)) if len(labels) else np.arange(0)
    labels = labels[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if len(labels) else np.arange(0)
    sizes = np.diff(np.r_[starts, len(labels)])
    if len(set(sizes.tolist())) > 1:
        raise IncompatibleShapes(
            f"the groups of {by!r} have different numbers of rows "
            f"({sorted(set(sizes.tolist()))[:10]}); "
            "every stacked event needs the same number of points"
        )
    points = int(sizes[0]) if len(sizes) else 0
    events = len(starts)
    ds = ds.isel(time=order)
    data_vars: dict[str, xr.Variable] = {}
    for key in fields:
        var = ds[key].variable
        if var.ndim != 1:
            raise IncompatibleShapes(
                f"stack takes fields of one value per row; {key!r} has dims {var.dims}"
            )
        data_vars[key] = xr.Variable(
            ("time", dims_of.get(key, dim)), var.data.reshape(events, points), var.attrs
        )
    if time:
        data_vars[time] = xr.Variable(
            ("time", dims_of.get(time, dim)),
            ds["time"].values.reshape(events, points),
            dict(ds["time"].attrs),
        )
    for name, array in ds.data_vars.items():
        key = str(name)
        if key in fields or key == time or array.dims[:1] != ("time",):
            continue
        values = np.asarray(array.values).reshape(events, points, *array.shape[1:])
        first = values[:, :1]
        same = values == first
        if values.dtype.kind in "fc":
            same |= np.isnan(values) & np.isnan(first)
        if not np.all(same):
            raise IncompatibleShapes(
                f"field {key!r} changes within a group of {by!r}; list it in fields=[...] to "
                "stack it as a time series"
            )
        data_vars[key] = xr.Variable(array.dims, values[:, 0], array.attrs)
    group_time = (
        ds["event_time"].values.reshape(events, points)[:, 0]
        if "event_time" in ds.coords
        else ds["time"].values.reshape(events, points)[:, 0]
    )
    coords: dict[str, Any] = {
        "time": group_time,
        "seq_num": ("time", labels[starts])
        if by == "seq_num"
        else ("time", np.arange(1, events + 1)),
    }
    if by != "seq_num":
        coords[by] = ("time", labels[starts])
    attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("pivot_")}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# -- resampling -------------------------------------------------------------------------------


def _segments(values: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    """``how`` over each segment ``values[starts[i]:starts[i + 1]]`` along axis 0."""
    if len(values) == 0:
        return values[:0]
    stops = np.r_[starts[1:], len(values)]
    if how == "first":
        return values[starts]
    if how == "last":
        return values[stops - 1]
    if values.dtype.kind == "b":
        values = values.astype("int64")
    isfloat = values.dtype.kind in "fc"
    present = ~np.isnan(values) if isfloat else np.ones(values.shape, bool)
    counts = np.add.reduceat(present, starts, axis=0)
    if how == "count":
        return counts
    if how in ("sum", "mean"):
        total = np.add.reduceat(np.where(present, values, 0), starts, axis=0)
        if how == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    if how in ("min", "max"):
        func = np.fmin if how == "min" else np.fmax
        return func.reduceat(values, starts, axis=0)
    reducer = np.nanmedian if how == "median" else np.nanstd
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack(
            [
                reducer(values[a:b].astype("float64"), axis=0)
                for a, b in zip(starts, stops, strict=True)
            ]
        )


def _segment_block(
    block: np.ndarray, starts: np.ndarray, how: str, block_info: Any = None
) -> np.ndarray:
    lo, hi = block_info[0]["array-location"][0]
    local = starts[(starts >= lo) & (starts < hi)] - lo
    return _segments(block, local, how)


def resample(source: Any, period: Any, how: str = "mean") -> xr.Dataset:
    """A stream (or dataset with dimension ``time``) in bins of ``period`` on its time axis.

    Bins start at multiples of ``period`` since the epoch (``time`` of the result is each
    bin's start); every bin from the first event's to the last's is present, empty ones NaN
    (``count``: 0). ``how``: ``mean``, ``sum``, ``min``, ``max``, ``median``, ``std`` (these
    skip NaN and keep only numeric fields; the others are listed in ``attrs["dropped"]``),
    ``first``, ``last`` (the first / last reading of the bin, of any field) or ``count``. The
    coordinate ``events`` counts the events of each bin. Lazy when the input is.
    """
    import dask.array as da
    import xarray as xr

    seconds = as_period(period)
    how = _choice(how, RESAMPLE_HOW, "how")
    ds = _dataset(source)
    times = _times(ds, "the dataset")
    check_monotonic(times, "the dataset")
    if len(times) == 0:
        return ds
    bins = np.floor(times / seconds).astype("int64")
    first, last = int(bins[0]), int(bins[-1])
    if last - first + 1 > MAX_BINS:
        raise InvalidArgument(
            f"resampling by {period!r} gives {last - first + 1} bins (more than {MAX_BINS}); "
            "choose a longer period"
        )
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    present = bins[starts] - first
    full = last - first + 1
    where = np.full(full, -1)
    where[present] = np.arange(len(starts))
    has = where >= 0
    data_vars: dict[str, xr.Variable] = {}
    dropped = []
    for key, var in ds.data_vars.items():
        key = str(key)
        if var.dims[:1] != ("time",):
            continue
        if how not in ("first", "last", "count") and not _numeric(var.dtype):
            dropped.append(key)
            continue
        data = var.data
        if isinstance(data, da.Array):
            bounds = np.cumsum((0, *data.chunks[0]))[1:-1]
            cuts = np.unique(
                starts[np.clip(np.searchsorted(starts, bounds, side="right") - 1, 0, None)]
            )
            cuts = cuts[cuts > 0]
            sizes = np.diff(np.r_[0, cuts, len(times)])
            data = data.rechunk({0: tuple(int(s) for s in sizes)})
            per_block = np.diff(np.searchsorted(starts, np.r_[0, cuts, len(times)]))
            sample = _segments(np.zeros((1, *var.shape[1:]), var.dtype), np.array([0]), how)
            reduced = da.map_blocks(
                _segment_block,
                data,
                starts,
                how,
                chunks=(tuple(int(c) for c in per_block), *data.chunks[1:]),
                dtype=sample.dtype,
            )
        else:
            reduced = _segments(np.asarray(data), starts, how)
        result = xr.Variable(var.dims, reduced, var.attrs)
        if not has.all():
            result = result[np.clip(where, 0, None)]
            if how == "count":
                result = result.where(xr.Variable(("time",), has), 0)
            else:
                result = result.where(
                    xr.Variable(("time",), has), None if result.dtype.kind == "O" else np.nan
                )
        data_vars[key] = result
    counts = np.zeros(full, "int64")
    counts[present] = np.diff(np.r_[starts, len(times)])
    coords = {"time": (first + np.arange(full)) * seconds, "events": ("time", counts)}
    attrs = {**ds.attrs, "period": seconds, "how": how, "dropped": dropped}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# -- datetimes --------------------------------------------------------------------------------


def with_datetimes(source: Any, timezone: str | None = None) -> xr.Dataset:
    """The dataset with a ``datetime`` coordinate beside ``time``: ``datetime64[ns]`` wall
    times in ``timezone`` (an IANA name; UTC when None), ``attrs["timezone"]`` saying which.
    ``time`` stays float seconds since the epoch, as databroker gives it."""
    import pandas as pd

    ds = _dataset(source)
    if "time" not in ds.coords:
        raise InvalidArgument("the dataset has no 'time' coordinate to convert")
    zone = timezone or "UTC"
    if not isinstance(zone, str):
        raise WrongArgumentType(
            f"timezone must be an IANA name such as 'Europe/Berlin', not {zone!r}"
        )
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidArgument(
            f"unknown time zone {zone!r}; give an IANA name such as 'Europe/Berlin'"
        ) from err
    seconds = np.asarray(ds["time"].values, dtype="float64")
    flat = pd.to_datetime(seconds.reshape(-1), unit="s", utc=True)
    local = flat.tz_convert(zone).tz_localize(None)
    values = np.asarray(local.values, dtype="datetime64[ns]").reshape(seconds.shape)
    out = ds.assign_coords(datetime=(ds["time"].dims, values))
    out["datetime"].attrs["timezone"] = zone
    return out
