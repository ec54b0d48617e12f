"""W1 export: a 1,000,000-event x 10-field float64 stream written to NeXus/HDF5 and to Parquet
with ``run.export``, beside the physical floor measured in the same run: h5py writing the same
ten arrays into one HDF5 file, and pyarrow writing the same ten columns into one Parquet file
(same compression: none for HDF5, snappy for Parquet). The goal: within 1.5x.

Our figure includes what an export does beyond the floor: reading the stream from the store
block by block, the manifest with SHA-256 sums, the temporary name and rename, and for NeXus the
standard-name links, and the embedded documents (event uids, times and timestamps as columns).
``--no-documents`` leaves the documents out (``documents=False``) to show their share.

Run:  python benchmarks/export_w1.py [--events 1000000] [--fields 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from read_stream import best_of, make_run  # noqa: E402

from intake_broker.store.memory import MemoryStore  # noqa: E402
from intake_broker.views.catalog import BrokerCatalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import h5py
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs, columns = make_run(args.events, args.fields, page=10_000)
    cat = BrokerCatalog(MemoryStore(validate=False))
    for name, doc in docs:
        cat.insert(name, doc)
    del docs
    run = cat[-1]
    times = run.primary.read()["time"].values
    tmp = Path(tempfile.mkdtemp(prefix="export-w1-"))
    counter = iter(range(10**6))

    def fresh() -> Path:
        path = tmp / str(next(counter))
        path.mkdir()
        return path

    def h5py_floor() -> None:
        with h5py.File(fresh() / "floor.h5", "w") as f:
            f["time"] = times
            for key, values in columns.items():
                f[key] = values

    def arrow_floor() -> None:
        table = pa.table({"time": times, **columns})
        pq.write_table(table, fresh() / "floor.parquet", compression="snappy")

    try:
        rows = [
            (
                "nexus (documents embedded)",
                lambda: run.export("nexus", fresh(), progress=False),
                h5py_floor,
                "h5py, same arrays",
            ),
            (
                "nexus (documents=False)",
                lambda: run.export("nexus", fresh(), progress=False, documents=False),
                h5py_floor,
                "h5py, same arrays",
            ),
            (
                "parquet",
                lambda: run.export("parquet", fresh(), progress=False),
                arrow_floor,
                "pyarrow, same columns",
            ),
        ]
        mb = args.events * (args.fields + 1) * 8 / 1e6
        print(
            f"W1 export: {args.events:,} events x {args.fields} float64 fields "
            f"({mb:.0f} MB), best of {args.repeat}, memory store"
        )
        for label, ours, floor, floor_label in rows:
            t_ours = best_of(args.repeat, ours)
            t_floor = best_of(args.repeat, floor)
            print(
                f"  {label:<28} {t_ours * 1e3:8.0f} ms   {floor_label:<22} "
                f"{t_floor * 1e3:8.0f} ms   ratio {t_ours / t_floor:5.2f}x"
            )
        t_read = best_of(args.repeat, lambda: run.primary.read())
        print(f"  (reading the stream alone, run.primary.read(): {t_read * 1e3:.0f} ms)")
        assert np.isfinite(times).all()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
