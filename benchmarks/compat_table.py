"""W1 through databroker's v1 API: ``h.table()`` of a 100,000-event x 10-field stream.

Prints, for the memory and native stores, ``h.table()`` (intake_broker.compat) beside
``run.primary.read().to_dataframe()`` (the v2 path) and the floor: a ``pandas.DataFrame`` made
from the 10 columns already in numpy (what any table of these numbers costs at least). With
``--databroker-python /path/to/venv/bin/python`` (a venv holding databroker 1.2.5, e.g. the
one ``tests/compat/make_golden.py --venv`` makes), databroker's own ``h.table()`` of the same
run (read from a JSONL file by its JSONL catalog) is timed too, in that interpreter.

Run:  python benchmarks/compat_table.py [--events 100000] [--repeat 3] [--databroker-python P]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from read_stream import best_of, make_run, report

from intake_broker.store.memory import MemoryStore
from intake_broker.views.catalog import BrokerCatalog

DATABROKER_SCRIPT = """
import glob, sys, time
from databroker._drivers.jsonl import BlueskyJSONLCatalog
from databroker.v1 import Broker
db = Broker(BlueskyJSONLCatalog(glob.glob(sys.argv[1] + "/*.jsonl")))
h = db[-1]
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); df = h.table(); times.append(time.perf_counter() - t)
assert df.shape == (int(sys.argv[3]), 11), df.shape
print(min(times))
"""


def bench(label: str, catalog: BrokerCatalog, columns: dict, repeat: int) -> float:
    import pandas as pd

    h = catalog.v1[-1]
    run = catalog[-1]
    h.table()  # warm: a first read consolidates pages (memory) or opens files (native)
    t_table = best_of(repeat, h.table)
    t_read = best_of(repeat, lambda: run.primary.read().to_dataframe())

    def floor():
        pd.DataFrame({k: v for k, v in columns.items()})

    t_floor = best_of(repeat, floor)
    print(label)
    report("h.table()", t_table, t_floor, "DataFrame of the numpy columns")
    report("run.primary.read().to_dataframe()", t_read, t_floor, "DataFrame of the numpy columns")
    return t_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--databroker-python", default=None)
    args = parser.parse_args()
    docs, columns = make_run(args.events, args.fields)
    print(f"W1 via the v1 API: {args.events:,} events x {args.fields} float64 fields, best of "
          f"{args.repeat}")  # fmt: skip
    store = MemoryStore(validate=False)
    for name, doc in docs:
        store.insert(name, doc)
    ours = bench("memory store", BrokerCatalog(store), columns, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from intake_broker_native import NativeStore
        except ImportError:
            print("native store: skipped (pip install ./drivers/native)")
        else:
            native = NativeStore.in_folder(Path(tmp) / "native")
            for name, doc in docs:
                native.insert(name, doc)
            native.flush()
            bench("native store", BrokerCatalog(native), columns, args.repeat)
        if args.databroker_python:
            folder = Path(tmp) / "jsonl"
            folder.mkdir()
            with open(folder / "run.jsonl", "w") as f:
                for name, doc in docs:
                    f.write(json.dumps([name, doc], default=_plain) + "\n")
            out = subprocess.run(
                [args.databroker_python, "-c", DATABROKER_SCRIPT, str(folder),
                 str(args.repeat), str(args.events)],  # fmt: skip
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            theirs = float(out.stdout.strip().splitlines()[-1])
            print("databroker 1.2.5 (JSONL catalog, its own interpreter)")
            report("databroker h.table()", theirs, ours, "ours, h.table() (memory)")
        else:
            print("databroker 1.2.5: skipped (--databroker-python /path/to/python)")


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
