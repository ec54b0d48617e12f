"""W3: a run of 200 frames of 512x512 uint16 in one area-detector HDF5 file (AD_HDF5 resource +
datum per frame), in a JSONL files catalog.

Each figure comes from a fresh Python process, best of ``--repeat``. Library imports (h5py, and
for us xarray and dask too, as a notebook has them, with xarray's one-time probe of duck-array
modules) come first and are reported apart; the limit is h5py reading the same bytes in its own
fresh process:

* one frame:  ``cat[-1].primary.to_dask()["cam_image"][100].values``  vs  ``h5py ds[100]``
* the stack:  ``cat[-1].primary.read()``                              vs  ``h5py ds[:]``

and the bytes the process read (``rchar`` of /proc/self/io) while getting one frame.

Run:  python benchmarks/assets_hdf5.py [--frames 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import event_model
import numpy as np

SHAPE = (512, 512)

_PRELUDE = """
import json, time
def rchar():
    for line in open("/proc/self/io"):
        if line.startswith("rchar"):
            return int(line.split()[1])
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
b0 = rchar()
{work}
t2 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "work": t2 - t1, "bytes": rchar() - b0}}))
"""

CASES = {
    "h5py one frame": (
        "import h5py",
        "with h5py.File({h5!r}) as f: x = f['/entry/data/data'][{i}]"),
    "ours one frame": (
        "import h5py, xarray, dask.array; from intake_broker_files import JSONLCatalog; "
        "xarray.Dataset(coords={'t': [0.0]})",
        "x = JSONLCatalog({glob!r})[-1].primary.to_dask()['cam_image'][{i}].values"),
    "h5py whole stack": (
        "import h5py",
        "with h5py.File({h5!r}) as f: x = f['/entry/data/data'][:]"),
    "ours whole stack": (
        "import h5py, xarray, dask.array; from intake_broker_files import JSONLCatalog; "
        "xarray.Dataset(coords={'t': [0.0]})",
        "x = JSONLCatalog({glob!r})[-1].primary.read()['cam_image'].values"),
}


def write_run(folder: Path, frames: int) -> Path:
    import h5py

    from intake_broker_files import JSONLStore

    data = np.random.default_rng(0).integers(0, 4096, size=(frames, *SHAPE), dtype=np.uint16)
    h5 = folder / "detector.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("/entry/data/data", data=data, chunks=(1, *SHAPE))
    store = JSONLStore.in_folder(folder / "runs")
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "count"})
    resource = bundle.compose_resource(spec="AD_HDF5", root=str(folder),
                                       resource_path="detector.h5",
                                       resource_kwargs={"frame_per_point": 1})
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "cam_image": {"dtype": "array", "dtype_numpy": "<u2", "shape": list(SHAPE),
                      "source": "PV:cam", "external": "FILESTORE:"}})
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    store.insert("resource", resource.resource_doc)
    for i in range(frames):
        datum = resource.compose_datum(datum_kwargs={"point_number": i})
        store.insert("datum", datum)
        store.insert("event", desc.compose_event(data={"cam_image": datum["datum_id"]},
                                                 timestamps={"cam_image": 0.0},
                                                 filled={"cam_image": False}))
    store.insert("stop", bundle.compose_stop())
    return h5


def measure(case: str, repeat: int, **values) -> dict:
    imports, work = CASES[case]
    code = _PRELUDE.format(imports=imports, work=work.format(**values))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(repeat)]
    return min(runs, key=lambda r: r["work"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        h5 = write_run(folder, args.frames)
        values = {"h5": str(h5), "glob": str(folder / "runs" / "*.jsonl"), "i": args.frames // 2}
        result = {case: measure(case, args.repeat, **values) for case in CASES}
    frame_bytes = int(np.prod(SHAPE)) * 2
    print(f"W3: {args.frames} frames of {SHAPE[0]}x{SHAPE[1]} uint16 (AD_HDF5), fresh process "
          f"each, best of {args.repeat}")
    for what in ("one frame", "whole stack"):
        ours, limit = result[f"ours {what}"], result[f"h5py {what}"]
        print(f"  {what:<12} ours {ours['work'] * 1e3:8.1f} ms   h5py {limit['work'] * 1e3:8.1f} ms"
              f"   ratio {ours['work'] / limit['work']:5.2f}x   (target <= 1.5x)")
    one = result["ours one frame"]["bytes"]
    print(f"  bytes read for one frame: ours {one / 1e6:.2f} MB, h5py "
          f"{result['h5py one frame']['bytes'] / 1e6:.2f} MB, one frame {frame_bytes / 1e6:.2f} MB"
          " (ours includes the run's JSONL file)")
    print(f"  imports (not in the figures): ours {result['ours one frame']['imports']:.2f} s, "
          f"h5py {result['h5py one frame']['imports']:.2f} s")
    print("peers: databroker 1.2.5 / 2.0.2 not measured here (no peer environment given)")


if __name__ == "__main__":
    main()
