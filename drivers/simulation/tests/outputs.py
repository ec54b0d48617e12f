"""Simulation outputs as simulation codes write them (not through ``write_run``): CF
attributes, ISO dates, groups, a second leading dimension, plain HDF5."""

from __future__ import annotations

import numpy as np
import xarray as xr

ATTRS = {
    "title": "Molecular dynamics of LaB6 under heating",
    "institution": "Digital twin group",
    "model": "md-heat",
    "sample": "LaB6",
    "run_number": 17,
    "date_created": "2026-03-04T05:06:07Z",
    "conventions": "CF-1.8",
}


def md_dataset(steps: int = 40, layers: int = 3, seed: int = 0, **attrs) -> xr.Dataset:
    """A root group: ``time`` (CF days since 2026-03-04) with temperature, energy, a 2-D
    field; ``layer`` with a depth profile; a 0-d ``timestep`` parameter."""
    rng = np.random.default_rng(seed)
    ds = xr.Dataset(
        {
            "temperature": (("time",), 300.0 + rng.normal(0, 1, steps), {"units": "K"}),
            "energy": (("time",), rng.normal(-5, 0.1, steps), {"units": "eV"}),
            "step": (("time",), np.arange(steps, dtype="int32")),
            "density": (("time", "y", "x"), rng.random((steps, 4, 6)).astype("float32")),
            "depth": (("layer",), np.linspace(0, 1, layers), {"units": "nm"}),
            "timestep": ((), 0.002, {"units": "ps"}),
        },
        coords={
            "time": (
                ("time",),
                np.arange(steps) / 86400.0,
                {"units": "days since 2026-03-04 05:06:07", "calendar": "standard"},
            )
        },
        attrs={**ATTRS, **attrs},
    )
    return ds


def diagnostics(points: int = 25) -> xr.Dataset:
    """A subgroup without a time coordinate: ``iteration`` with a residual."""
    return xr.Dataset(
        {
            "residual": (("iteration",), np.logspace(0, -6, points)),
            "iteration": (("iteration",), np.arange(points)),
            "tolerance": ((), 1e-6),
        }
    )


def write_netcdf4(path, **attrs) -> str:
    """A NetCDF-4 file with a ``diagnostics`` group (the ``time`` variables chunked by 10)."""
    ds = md_dataset(**attrs)
    encoding = {
        name: {"chunksizes": (10, *ds[name].shape[1:])} for name in ("temperature", "density")
    }
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    diagnostics().to_netcdf(path, engine="h5netcdf", group="diagnostics", mode="a")
    return str(path)


def write_netcdf3(path, **attrs) -> str:
    """A classic NetCDF-3 file (scipy), no groups."""
    ds = md_dataset(**attrs).drop_vars("step")
    ds.to_netcdf(path, engine="scipy", format="NETCDF3_64BIT")
    return str(path)


def write_zarr(path, storage_options=None, **attrs) -> str:
    ds = md_dataset(**attrs)
    ds.to_zarr(path, mode="w", storage_options=storage_options)
    diagnostics().to_zarr(path, group="diagnostics", mode="a", storage_options=storage_options)
    return str(path)


def write_plain_hdf5(path, **attrs) -> str:
    """An HDF5 file written with h5py, no netCDF dimension scales."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update({**ATTRS, **attrs})
        f["signal"] = np.arange(30.0)
        f["frames"] = np.ones((30, 2, 2))
    return str(path)
