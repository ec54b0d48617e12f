"""Other containers for a stream, a muxed result or a run: pandas, numpy, dask, Arrow and
``xarray.DataTree``.

The rows of a dataset are the dimensions of its ``time`` coordinate: ``("time",)`` for a
stream, an aligned or resampled result, ``(run, "event")`` for merged runs (flattened in
that order). Rules for fields with more than one value per row (waveforms, images):

- ``to_pandas``: one cell per row holding the row's ``numpy`` array (pandas has no
  n-dimensional column); :func:`~intake_broker.views.mux.pivot` turns a waveform into rows.
- ``to_numpy``: a dict of arrays ``(rows, *shape)``, or a structured array whose fields have
  the per-row shape (``structured=True``).
- ``to_arrow``: ``fixed_shape_tensor`` extension columns; other columns wrap the numpy memory
  without a copy where Arrow's layout is numpy's (numbers and datetimes without missing
  values); booleans (bit-packed in Arrow) and texts are copied.

The accessor ``ds.broker`` (registered when this module is imported, which every stream
read does) gives these and the reshaping calls on any dataset:
``run.align([...]).broker.to_arrow()``.

VTK and ITK image objects are not offered, by decision (issue 19 asks for them only if a
well-kept package makes them a thin adapter). Both toolkits already take a numpy array in one
call -- ``itk.image_view_from_array(stack)`` (no copy) or ``itk.image_from_array``, and
``pyvista.wrap(stack)`` for VTK -- so an adapter here would only re-export that call; what
would make one worth having (pixel spacing, origin, orientation) has no standard place in
event-model's data keys, so it would have to be invented; and both are large compiled
toolkits, which the runtime install should not carry for a one-line conversion. Write
``itk.image_view_from_array(run.primary.read()["img"].values)`` (frames first, as ITK reads
numpy's ``[z, y, x]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from intake_broker.views.catalog import Run


def row_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The dimensions that make rows: those of ``time``, else the first of the dataset."""
    if "time" in ds.coords:
        return tuple(str(d) for d in ds["time"].dims)
    if not ds.dims:
        return ()
    return (str(next(iter(ds.dims))),)


def _source(source: Any) -> xr.Dataset:
    from intake_broker.views.mux import _dataset

    return _dataset(source)


def _rows(ds: xr.Dataset) -> tuple[tuple[str, ...], int]:
    dims = row_dims(ds)
    return dims, int(np.prod([ds.sizes[d] for d in dims])) if dims else 1


def columns(source: Any) -> dict[str, np.ndarray]:
    """Every coordinate and field over the row dimensions, computed, as ``(rows, *shape)``
    arrays (row dimensions flattened in order; what varies along fewer of them is
    broadcast). Variables without the row dimensions are left out."""
    ds = _source(source)
    dims, rows = _rows(ds)
    out: dict[str, np.ndarray] = {}
    names = [*dims, *(str(n) for n in ds.coords if str(n) not in dims)]
    names += [str(n) for n in ds.data_vars]
    computed = ds.compute() if any(v.chunks for v in ds.variables.values()) else ds
    for name in names:
        var = computed[name].variable
        if not set(dims) & set(var.dims):
            continue
        other = tuple(d for d in var.dims if d not in dims)
        if set(dims) - set(var.dims):  # broadcast (a run's uid over its events)
            sizes = {d: ds.sizes[d] for d in dims}
            var = var.set_dims({**sizes, **dict(zip(var.dims, var.shape, strict=True))})
        full = var.transpose(*dims, *other)
        values = np.asarray(full.values)
        out[name] = values.reshape(rows, *values.shape[len(dims) :])
    return out


def to_numpy(source: Any, structured: bool = False) -> dict[str, np.ndarray] | np.ndarray:
    """The columns as a dict of arrays, or as one structured array (one record per row,
    array fields as sub-arrays)."""
    cols = columns(source)
    if not structured:
        return cols
    dtype = np.dtype([(name, a.dtype, a.shape[1:]) for name, a in cols.items()])
    rows = len(next(iter(cols.values()))) if cols else 0
    out = np.empty(rows, dtype=dtype)
    for name, array in cols.items():
        out[name] = array
    return out


def to_pandas(source: Any) -> pd.DataFrame:
    """A ``pandas.DataFrame`` with one row per event, indexed by the row dimensions (``time``
    for a stream; ``(run, event)`` for merged runs); array fields as one numpy array per
    cell."""
    import pandas as pd

    ds = _source(source)
    dims, rows = _rows(ds)
    cols = columns(ds)
    index_names = list(dims)
    if index_names == ["time"]:
        index = pd.Index(cols.pop("time"), name="time")
    else:
        index = pd.MultiIndex.from_arrays([cols.pop(d) for d in dims], names=index_names)
    frame: dict[str, Any] = {}
    for name, array in cols.items():
        if array.ndim == 1:
            frame[name] = array
        else:
            cells = np.empty(rows, dtype=object)
            cells[:] = list(array)
            frame[name] = cells
    return pd.DataFrame(frame, index=index)


def arrow_array(array: np.ndarray) -> pa.Array:
    """One column as an Arrow array: numbers and datetimes wrap numpy's memory, arrays of
    two or more dimensions become ``fixed_shape_tensor``, objects are converted."""
    import pyarrow as pa

    if array.ndim > 1:
        flat = np.ascontiguousarray(array)
        return pa.FixedShapeTensorArray.from_numpy_ndarray(flat)
    if array.dtype.kind == "O":
        return pa.array(array.tolist())
    if array.dtype.kind in "fiumM" and array.flags.c_contiguous:
        return pa.array(array)  # numpy's buffer, wrapped (no nulls: no copy)
    return pa.array(np.ascontiguousarray(array))


def to_arrow(source: Any) -> pa.Table:
    """A ``pyarrow.Table`` of the columns (needs ``pyarrow``: ``pip install
    intake-broker[arrow]``); image and waveform fields are ``fixed_shape_tensor`` columns.
    The dataset's attributes that are texts or numbers go into the schema's metadata."""
    try:
        import pyarrow as pa
    except ImportError as err:  # pragma: no cover - pyarrow is in the test extras
        raise ImportError("to_arrow needs pyarrow: pip install 'intake-broker[arrow]'") from err
    ds = _source(source)
    cols = columns(ds)
    arrays = {name: arrow_array(a) for name, a in cols.items()}
    meta = {str(k): str(v) for k, v in ds.attrs.items() if isinstance(v, (str, int, float, bool))}
    return pa.table(arrays, metadata=meta or None)


def to_dask(source: Any) -> xr.Dataset:
    """The dataset backed by dask arrays (chunked as one chunk where it was in memory)."""
    ds = _source(source)
    if all(v.chunks is not None for v in ds.data_vars.values()):
        return ds
    return ds.chunk()


def to_datatree(run: Run, lazy: bool = True) -> xr.DataTree:
    """A run as an ``xarray.DataTree``: the root holds the start and stop documents as
    attributes (``start``, ``stop``), one node per stream (lazy when ``lazy``), its
    configuration as ``<stream>/config/<device>`` nodes."""
    nodes: dict[str, xr.Dataset] = {
        "/": xr.Dataset(
            attrs={
                "uid": run.uid,
                "start": dict(run.metadata["start"]),
                "stop": dict(run.metadata.get("stop") or {}),
            }
        )
    }
    for name, stream in run.items():
        ds = stream.to_dask() if lazy else stream.read()
        nodes[f"/{name}"] = ds
        for device, config in stream.config.items():
            nodes[f"/{name}/config/{device}"] = config.read()
    return xr.DataTree.from_dict(nodes)


@xr.register_dataset_accessor("broker")
class BrokerAccessor:
    """``ds.broker``: the other returns and the reshaping calls on any dataset a stream or a
    muxed call gave."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def to_pandas(self) -> pd.DataFrame:
        """See :func:`to_pandas`."""
        return to_pandas(self._ds)

    def to_numpy(self, structured: bool = False) -> dict[str, np.ndarray] | np.ndarray:
        """See :func:`to_numpy`."""
        return to_numpy(self._ds, structured=structured)

    def to_arrow(self) -> pa.Table:
        """See :func:`to_arrow`."""
        return to_arrow(self._ds)

    def to_dask(self) -> xr.Dataset:
        """See :func:`to_dask`."""
        return to_dask(self._ds)

    def resample(self, period: Any, how: str = "mean") -> xr.Dataset:
        """See :func:`intake_broker.views.mux.resample`."""
        from intake_broker.views.mux import resample

        return resample(self._ds, period, how)

    def split(self, by: str) -> dict[Any, xr.Dataset]:
        """See :func:`intake_broker.views.mux.split`."""
        from intake_broker.views.mux import split

        return split(self._ds, by)

    def pivot(self, fields: Any, *, time: str | None = None) -> xr.Dataset:
        """See :func:`intake_broker.views.mux.pivot`."""
        from intake_broker.views.mux import pivot

        return pivot(self._ds, fields, time=time)

    def stack(self, fields: Any = None, **kwargs: Any) -> xr.Dataset:
        """See :func:`intake_broker.views.mux.stack`."""
        from intake_broker.views.mux import stack

        return stack(self._ds, fields, **kwargs)

    def with_datetimes(self, timezone: str | None = None) -> xr.Dataset:
        """See :func:`intake_broker.views.mux.with_datetimes`."""
        from intake_broker.views.mux import with_datetimes

        return with_datetimes(self._ds, timezone)
