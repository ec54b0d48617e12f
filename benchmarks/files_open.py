"""``open + len`` of a folder of suitcase-jsonl run files, before and after its run index exists.

A folder of ``--runs`` files as suitcase-jsonl writes them (start, a ``primary`` descriptor, one
event page, stop: the runs of ``search_stores.py``), their mtime set an hour back (files
modified in the last 2 s are never stored in the index). Each figure is measured in a fresh
Python process (imports done before the clock starts), ``--repeat`` times, median and range:

* ``first open``: no sidecar (it is deleted first): every file's first and last line is read,
  and the sidecar ``.intake-broker-index-jsonl`` is written;
* ``after the first open``: ``len(JSONLCatalog(folder))`` with the sidecar in place;
* the floor, in the same process right after: one ``os.scandir`` of the folder and a ``stat``
  of each run file (what any check that files did not change must do).

Run:  python benchmarks/files_open.py [--runs 10000] [--repeat 5] [--folder DIR]
(``--folder`` keeps the generated files for another run.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import os, sys, time
from intake_broker_files import JSONLCatalog
folder = sys.argv[1]
t = time.perf_counter()
n = len(JSONLCatalog(folder))
ours = time.perf_counter() - t
t = time.perf_counter()
files = [(e.name, e.stat()) for e in os.scandir(folder) if e.name.endswith(".jsonl")]
floor = time.perf_counter() - t
assert n == len(files), (n, len(files))
print(ours, floor)
"""


def make_folder(folder: Path, count: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from search_stores import runs

    folder.mkdir(parents=True, exist_ok=True)
    if len([p for p in folder.iterdir() if p.suffix == ".jsonl"]) == count:
        return
    for docs, _ in runs(count):
        with open(folder / f"{docs[0][1]['uid']}.jsonl", "w") as file:
            for name, doc in docs:
                file.write(json.dumps([name, doc]) + "\n")
    past = time.time() - 3600
    for path in folder.iterdir():
        os.utime(path, (past, past))


def child(folder: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def show(label: str, times: list[float], floors: list[float]) -> None:
    ms = [1000 * t for t in times]
    fl = [1000 * t for t in floors]
    ratio = statistics.median(ms) / statistics.median(fl)
    print(
        f"  {label:<24} {statistics.median(ms):8.1f} ms (range {min(ms):.1f}-{max(ms):.1f})"
        f"   floor {statistics.median(fl):6.1f} ms ({min(fl):.1f}-{max(fl):.1f})   {ratio:5.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "runs"
        make_folder(folder, args.runs)
        sidecar = folder / ".intake-broker-index-jsonl"
        print(f"open + len of {args.runs:,} JSONL run files, fresh process each, n={args.repeat}")
        first, first_floor = [], []
        for _ in range(args.repeat):
            sidecar.unlink(missing_ok=True)
            ours, floor = child(folder)
            first.append(ours)
            first_floor.append(floor)
        show("first open (no index)", first, first_floor)
        again, floors = [], []
        for _ in range(args.repeat):
            ours, floor = child(folder)
            again.append(ours)
            floors.append(floor)
        show("after the first open", again, floors)
        print(f"  sidecar: {sidecar.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
