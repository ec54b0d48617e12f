"""Writing a run as a simulation-style output: what a simulation code that knows Bluesky would
write, and what the tests and benchmarks make their outputs with.

The layout is the one :class:`~intake_broker_simulation.SimulationStore` reads back to the same
start document and stream values:

* global attributes: ``bluesky_start`` (the start document as JSON) and, for other tools, the
  plain ``uid``, ``time``, ``plan_name``, ``scan_id`` and ``sample``; ``stop_time`` and
  ``exit_status`` once the run has stopped;
* the ``primary`` stream in the root group, every other stream in a group of its name, each
  with dimension ``time`` (a CF time coordinate: seconds since 1970-01-01) and one variable per
  data key (with its ``source``, ``units`` and ``object_name``);
* each stream's configuration as 0-d variables with an ``object_name`` attribute.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from intake_broker.errors import InvalidDocument

FORMATS = ("netcdf4", "zarr")
TIME_UNITS = "seconds since 1970-01-01T00:00:00"


def _attributes(start: Mapping[str, Any], stop: Mapping[str, Any] | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"bluesky_start": json.dumps(start, sort_keys=True)}
    for key in ("uid", "time", "plan_name", "scan_id", "sample"):
        value = start.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            attrs[key] = value
    if stop is not None:
        attrs["stop_time"] = float(stop["time"])
        attrs["exit_status"] = str(stop.get("exit_status", "success"))
    return attrs


def _datasets(documents: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[dict, dict]:
    """``(global attributes, {stream: xarray.Dataset})`` of a run's documents."""
    import xarray as xr

    from intake_broker.store.memory import MemoryStore
    from intake_broker.views.catalog import BrokerCatalog

    store = MemoryStore(validate=False)
    start: Mapping[str, Any] | None = None
    stop: Mapping[str, Any] | None = None
    for name, doc in documents:
        store.insert(name, doc)
        if name == "start":
            if start is not None:
                raise InvalidDocument("write_run writes one run: the documents hold two starts")
            start = doc
        elif name == "stop":
            stop = doc
    if start is None:
        raise InvalidDocument("write_run needs a run's documents, starting with its start")
    run = BrokerCatalog(store)[start["uid"]]
    streams = {}
    descriptor_uids = {}
    for stream_name in run:
        stream = run[stream_name]
        ds = stream.read()
        ds["time"].attrs = {"units": TIME_UNITS, "standard_name": "time"}
        for descriptor in stream.metadata["descriptors"][:1]:
            for obj, config in descriptor.get("configuration", {}).items():
                for key, value in config.get("data", {}).items():
                    if key not in ds.variables:
                        ds[key] = xr.DataArray(value, attrs={"object_name": obj})
        for name, dk in (
            (k, v) for d in stream.metadata["descriptors"] for k, v in d["data_keys"].items()
        ):
            if name in ds and "object_name" in dk:
                ds[name].attrs["object_name"] = dk["object_name"]
        ds.attrs = {}
        streams[stream_name] = ds
        descriptor_uids[stream_name] = stream.metadata["descriptors"][0]["uid"]
    attrs = _attributes(start, stop)
    attrs["bluesky_descriptor_uids"] = json.dumps(descriptor_uids, sort_keys=True)
    return attrs, streams


def write_run(
    documents: Iterable[tuple[str, Mapping[str, Any]]],
    path: str | os.PathLike,
    *,
    format: str = "netcdf4",
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write one run's documents as a simulation output at ``path`` (a local path or fsspec
    URL): ``format="netcdf4"`` (an HDF5 file, through h5netcdf) or ``"zarr"`` (a store).
    Returns the path written."""
    import fsspec

    if format not in FORMATS:
        raise ValueError(f"format {format!r} is not one of {FORMATS}")
    attrs, streams = _datasets(documents)
    import xarray as xr

    path = os.fspath(path)
    root = streams.pop("primary", None)
    root = xr.Dataset() if root is None else root
    root.attrs = attrs
    if format == "zarr":
        options = dict(storage_options or {})
        root.to_zarr(path, mode="w", storage_options=options or None)
        for name, ds in streams.items():
            ds.to_zarr(path, group=name, mode="a", storage_options=options or None)
        return path
    fs, target = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    with tempfile.TemporaryDirectory() as scratch:
        out = target if local else os.path.join(scratch, "output.nc")
        root.to_netcdf(out, engine="h5netcdf", mode="w")
        for name, ds in streams.items():
            ds.to_netcdf(out, engine="h5netcdf", mode="a", group=name)
        if not local:
            fs.put_file(out, target)
    return path
