"""Simulation outputs as runs (drivers/simulation): opening a folder of outputs, searching it,
and reading one variable lazily.

1. ``--outputs`` NetCDF-4 files (default 1,000; global attributes, a ``time`` dimension of 100
   rows with three variables, a ``diagnostics`` group) are written to a temporary folder.
2. **First open**: a new ``SimulationStore`` over the folder in a fresh process (every file's
   metadata read: groups, variables, attributes). Floor: h5py opening each file and reading its
   global attributes and every dataset's shape and dtype, in the same process.
3. **Reopen**: a second store in the same process (metadata remembered per file version: one
   listing of the folder), and a fresh process with the ``cache`` file.
4. **Search** (median of ``--repeat``): ``plan_name == "md" and 400 <= scan_id < 500`` through
   the catalog, a new range each time; floor: a list comprehension over the same start
   documents.
5. **Lazy read**: one output with ``--rows`` float64 values (chunked by 100,000) read as
   ``run.primary.to_dask()["v"].values`` (stream built and read each time) against
   ``xr.open_dataset(path, engine="h5netcdf")["v"].values`` of the same file (goal: within
   1.5x), and h5py reading the dataset as the physical floor.

Run:  python benchmarks/simulation_outputs.py [--outputs 1000] [--repeat 7] [--rows 4000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

OPEN = """
import sys, time
t = time.perf_counter()
from intake_broker_simulation import SimulationStore
imported = time.perf_counter()
store = SimulationStore(sys.argv[1], cache=sys.argv[2] or None)
n = store.count()
print(f"{(time.perf_counter() - imported) * 1e3:.1f} {n}")
"""


def write_outputs(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        ds = xr.Dataset(
            {
                "temperature": (("time",), 300 + rng.normal(0, 5, 100)),
                "energy": (("time",), rng.normal(-5, 1, 100)),
                "pressure": (("time",), rng.normal(1, 0.1, 100)),
            },
            coords={"time": (("time",), np.arange(100.0), {"units": "seconds since 2026-01-01"})},
            attrs={
                "model": "md" if i % 2 else "dft",
                "sample": f"s{i % 37}",
                "run_number": i,
                "date_created": f"2026-01-{1 + i % 28:02d}T00:00:00",
                "title": f"output {i}",
            },
        )
        path = folder / f"out{i:05d}.nc"
        ds.to_netcdf(path, engine="h5netcdf")
        xr.Dataset({"residual": (("it",), np.logspace(0, -6, 10))}).to_netcdf(
            path, engine="h5netcdf", group="diagnostics", mode="a"
        )


def h5py_floor(folder: Path) -> float:
    import h5py

    t = time.perf_counter()
    for path in sorted(folder.glob("*.nc")):
        with h5py.File(path, "r") as f:
            dict(f.attrs)
            f.visititems(lambda name, obj: getattr(obj, "shape", None) and obj.dtype)
    return (time.perf_counter() - t) * 1e3


def fresh_process(folder: Path, cache: str = "") -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", OPEN, str(folder), cache], capture_output=True, text=True, check=True
    )
    ms, n = out.stdout.split()
    return float(ms), int(n)


def median(repeat: int, func) -> tuple[float, float, float]:
    func()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rows", type=int, default=4_000_000)
    args = parser.parse_args()

    from intake_broker.queries import Comparison, Eq
    from intake_broker.views.catalog import BrokerCatalog
    from intake_broker_simulation import SimulationStore

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "outputs"
        folder.mkdir()
        t = time.perf_counter()
        write_outputs(folder, args.outputs)
        print(f"wrote {args.outputs} outputs in {time.perf_counter() - t:.1f} s")

        first, n = fresh_process(folder)
        assert n == args.outputs, n
        floor = h5py_floor(folder)
        print(
            f"first open, {n} outputs:     {first:8.0f} ms   h5py metadata {floor:6.0f} ms"
            f"   ratio {first / floor:5.1f}x"
        )
        store = SimulationStore(str(folder))
        t = time.perf_counter()
        again = SimulationStore(str(folder))
        again.count()
        reopen = (time.perf_counter() - t) * 1e3
        print(f"reopen, same process:         {reopen:8.1f} ms   (one listing of the folder)")
        cache = str(Path(scratch) / "scan.json")
        fresh_process(folder, cache)  # writes the cache
        cached, _ = fresh_process(folder, cache)
        print(f"reopen, new process + cache:  {cached:8.1f} ms")

        cat = BrokerCatalog(store)
        starts = [r.start for r in store.runs()]
        low = iter(range(0, 10_000, 7))

        def ours():
            lo = 400 + next(low) % 100
            query = Eq("plan_name", "md") & Comparison("ge", "scan_id", lo)
            query = query & Comparison("lt", "scan_id", lo + 100)
            return list(cat.search(query))

        def floor_search():
            lo = 400 + next(low) % 100
            found = [
                s
                for s in starts
                if s.get("plan_name") == "md" and lo <= s.get("scan_id", -1) < lo + 100
            ]
            return [s["uid"] for s in sorted(found, key=lambda s: -s["time"])]

        m, lo_, hi_ = median(args.repeat, ours)
        f, _, _ = median(args.repeat, floor_search)
        print(
            f"search (a new range each time): {m:6.2f} ms [{lo_:.2f}-{hi_:.2f}]   "
            f"list comprehension {f:6.2f} ms   ratio {m / f:5.1f}x"
        )

        big = Path(scratch) / "big"
        big.mkdir()
        values = np.random.default_rng(1).random(args.rows)
        ds = xr.Dataset(
            {"v": (("time",), values)},
            coords={
                "time": (
                    ("time",),
                    np.arange(args.rows, dtype=float),
                    {"units": "seconds since 2026-01-01"},
                )
            },
            attrs={"model": "big"},
        )
        path = big / "big.nc"
        ds.to_netcdf(path, engine="h5netcdf", encoding={"v": {"chunksizes": (100_000,)}})
        sim = BrokerCatalog(SimulationStore(str(big)))
        run = sim[-1]

        def lazy():
            return run.primary.to_dask()["v"].values

        def xarray_read():
            with xr.open_dataset(path, engine="h5netcdf") as opened:
                return opened["v"].values

        def h5py_read():
            import h5py

            with h5py.File(path, "r") as f:
                return f["v"][()]

        np.testing.assert_array_equal(lazy(), values)
        m, lo_, hi_ = median(args.repeat, lazy)
        x, _, _ = median(args.repeat, xarray_read)
        h, _, _ = median(args.repeat, h5py_read)
        mb = values.nbytes / 2**20
        print(
            f"lazy read of {mb:.0f} MB:  ours {m:7.1f} ms [{lo_:.1f}-{hi_:.1f}]   "
            f"xr.open_dataset {x:7.1f} ms   ratio {m / x:4.2f}x (goal 1.5x)   "
            f"h5py {h:7.1f} ms   ratio {m / h:4.2f}x"
        )


if __name__ == "__main__":
    main()
