"""W1 on suitcase files: ``run.primary.read()`` of 100,000 events x 10 float fields, one
``event`` document per line (JSONL) or object (msgpack), as suitcase-jsonl / suitcase-msgpack
write what a RunEngine emits.

Each figure is measured in a fresh Python process (``--repeat`` times; median and range), the
libraries imported before the clock starts and before the baseline of peak memory is taken:

* ours: ``BrokerCatalog(FilesStore(folder))[uid].primary.read()``, time and the growth of the
  process's peak RSS (``resource.getrusage``) over the baseline;
* the decoder floor: the same file decoded with the fastest decoder installed here, every
  line/object, nothing kept (``json.loads`` per line with the stdlib's C scanner;
  ``msgpack.Unpacker`` over the file); orjson and msgspec are not installed;
* the arrays: the bytes of the 10 data columns that ``read()`` returns.

Run:  python benchmarks/files_w1.py [--events 100000] [--fields 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import event_model
import msgpack
import numpy as np

_CHILD = r"""
import resource, sys, time, json
import msgpack, numpy, xarray, dask.array  # imported before the baseline
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_files import FilesStore
mode, fmt, folder, path = sys.argv[1:5]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
nbytes = 0
if mode == "ours":
    cat = BrokerCatalog(FilesStore(folder, format=fmt))
    ds = cat[-1].primary.read()
    nbytes = sum(ds[k].nbytes for k in ds.data_vars)
elif fmt == "jsonl":
    with open(path, "rb") as file:
        for line in file:
            json.loads(line)
else:
    with open(path, "rb") as file:
        for _ in msgpack.Unpacker(file, raw=False, strict_map_key=False):
            pass
took = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(took, (peak - base) * 1024, nbytes)
"""


def write_file(folder: Path, fmt: str, events: int, fields: int) -> Path:
    rng = np.random.default_rng(0)
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "benchmark"})
    keys = [f"f{i}" for i in range(fields)]
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"dtype": "number", "shape": [], "source": "bench"} for k in keys},
    )
    columns = rng.normal(size=(events, fields))
    t0 = time.time()
    path = folder / f"{bundle.start_doc['uid']}.{fmt}"

    def encode(name: str, doc: dict) -> bytes:
        if fmt == "jsonl":
            return (json.dumps([name, doc]) + "\n").encode()
        return msgpack.packb([name, doc], use_bin_type=True)

    with open(path, "wb") as file:
        file.write(encode("start", bundle.start_doc))
        file.write(encode("descriptor", desc.descriptor_doc))
        for i in range(events):
            row = columns[i].tolist()
            event = desc.compose_event(
                data=dict(zip(keys, row, strict=True)),
                timestamps={k: t0 + i for k in keys},
                seq_num=i + 1,
                time=t0 + i * 1e-3,
            )
            file.write(encode("event", event))
        file.write(encode("stop", bundle.compose_stop()))
    return path


def child(mode: str, fmt: str, folder: Path, path: Path) -> tuple[float, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, fmt, str(folder), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def summary(values: list[float], scale: float, unit: str) -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.2f} {unit} ({min(v):.2f}-{max(v):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"W1 on suitcase files: {args.events:,} events x {args.fields} fields, one event per "
        f"document, fresh process each, median (range) of {args.repeat}"
    )
    for fmt in ("jsonl", "msgpack"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = write_file(folder, fmt, args.events, args.fields)
            ours = [child("ours", fmt, folder, path) for _ in range(args.repeat)]
            floor = [child("floor", fmt, folder, path) for _ in range(args.repeat)]
            arrays = ours[0][2]
            t_ours, t_floor = [o[0] for o in ours], [f[0] for f in floor]
            m_ours = [o[1] for o in ours]
            print(f"{fmt} ({path.stat().st_size / 1e6:.0f} MB file, arrays {arrays / 1e6:.1f} MB)")
            print(
                f"  read():  {summary(t_ours, 1, 's')}   decoder floor "
                f"{summary(t_floor, 1, 's')}   "
                f"{statistics.median(t_ours) / statistics.median(t_floor):.1f}x (goal 10x)"
            )
            print(
                f"  peak memory growth: {summary(m_ours, 1e-6, 'MB')}   "
                f"{statistics.median(m_ours) / arrays:.1f}x the arrays (goal 3x)"
            )


if __name__ == "__main__":
    main()
