"""W1 for the native store: ``run.primary.read()`` of a 1,000,000-event x 10-field stream.

Prints our time and peak memory beside the physical limit measured in the same run:

* time: ``np.load`` of the same 10 columns and the time column from local ``.npy`` files on the
  same disk (median of ``--repeat`` runs, files in the page cache for both);
* memory: the bytes of those 11 arrays; our peak is measured with ``tracemalloc`` (which sees
  numpy's allocations) in a fresh subprocess, around ``.read()`` only;
* also the store's own ``read_events`` of the whole stream, to separate the store from the
  core's ``Stream.read()`` path (``StreamLayout.arrays``);
* steady state: the same ``.read()`` repeated in one process (a notebook reading a run again)
  beside ``np.load`` of the same 11 columns repeated in the same process, the two taken in turns
  (``--steady`` rounds after one warm-up of each), both with their files in the page cache and
  every result freshly allocated and dropped before the next (fair on both sides: each pays the
  same page faults); the median of each and their ratio.

Peers: databroker 1.2.5 is not installed here; if it is, nothing compares it yet (say so).

Run:  python benchmarks/native_read.py [--events 1000000] [--fields 10] [--repeat 9]
      [--steady 21] [--folder DIR]  (keep the store and .npy files there; default: a temporary
      folder)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import event_model
import numpy as np

PAGE = 10_000


def build(folder: Path, events: int, fields: int) -> dict:
    """The store (bulk ingest in event pages) and the .npy files of the same columns."""
    from intake_broker_native import NativeStore

    rng = np.random.default_rng(0)
    keys = [f"f{i}" for i in range(fields)]
    columns = {k: rng.normal(size=events) for k in keys}
    times = 1_700_000_000.0 + np.arange(events) * 1e-3
    for k, v in columns.items():
        np.save(folder / f"{k}.npy", v)
    np.save(folder / "time.npy", times)
    store = NativeStore.in_folder(folder / "store", validate=False)
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "benchmark"})
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"dtype": "number", "shape": [], "source": "bench"} for k in keys},
    )
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    uid = desc.descriptor_doc["uid"]
    t0 = time.perf_counter()
    for lo in range(0, events, PAGE):
        hi = min(lo + PAGE, events)
        store.insert(
            "event_page",
            {
                "descriptor": uid,
                "uid": [f"{uid}-{i}" for i in range(lo, hi)],
                "seq_num": np.arange(lo + 1, hi + 1),
                "time": times[lo:hi],
                "data": {k: columns[k][lo:hi] for k in keys},
                "timestamps": {k: times[lo:hi] for k in keys},
                "filled": {},
            },
        )
    store.insert("stop", bundle.compose_stop())
    ingest = time.perf_counter() - t0
    store.close()
    return {
        "ingest_s": ingest,
        "nbytes": int(sum(v.nbytes for v in columns.values()) + times.nbytes),
    }


_CHILD = r"""
import json, statistics, sys, time, tracemalloc
import numpy as np
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore
folder, what, fields, bench, repeat = sys.argv[1:6]
fields, repeat = int(fields), int(repeat)
run = BrokerCatalog(NativeStore.in_folder(folder + "/store"))[-1]
stream = run.primary
desc = stream._descriptors[0]["uid"]
names = [f"f{i}" for i in range(fields)] + ["time"]
work = {
    "ours": stream.read,
    "store": lambda: run._store.read_events(desc),
    "limit": lambda: [np.load(f"{folder}/{name}.npy") for name in names],
}[what]
work()  # warm: what a second read in a notebook sees
times = []
for _ in range(repeat):
    t = time.perf_counter()
    result = work()
    times.append(time.perf_counter() - t)
    del result
if what == "ours":
    ds = work()
    assert ds.sizes["time"] > 0 and np.array_equal(ds["f3"].values, np.load(folder + "/f3.npy"))
    del ds
tracemalloc.start()
result = work()
print(json.dumps({"median": statistics.median(times), "peak": tracemalloc.get_traced_memory()[1]}))
"""


_STEADY = r"""
import json, statistics, sys, time
import numpy as np
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore
folder, fields, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stream = BrokerCatalog(NativeStore.in_folder(folder + "/store"))[-1].primary
names = [f"f{i}" for i in range(fields)] + ["time"]
work = {"ours": stream.read, "limit": lambda: [np.load(f"{folder}/{n}.npy") for n in names]}
for fn in work.values():
    fn()  # warm-up
times = {what: [] for what in work}
for _ in range(rounds):
    for what, fn in work.items():
        t = time.perf_counter()
        result = fn()
        times[what].append(time.perf_counter() - t)
        del result
print(json.dumps({w: [statistics.median(v), min(v), max(v)] for w, v in times.items()}))
"""


def steady(folder: Path, fields: int, rounds: int) -> dict:
    """``.read()`` and ``np.load`` of the same columns, in turns in one process."""
    out = subprocess.run(
        [sys.executable, "-c", _STEADY, str(folder), str(fields), str(rounds)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(folder: Path, what: str, fields: int, repeat: int) -> dict:
    """Median time of ``repeat`` reads after one warm-up, then the traced peak memory of one
    more, in a fresh process of its own (every variant starts from the same state)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(folder),
            what,
            str(fields),
            str(Path(__file__).resolve().parent),
            str(repeat),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--steady", type=int, default=21)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    from intake_broker_native import NativeStore

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        built = build(folder, args.events, args.fields)
        chunk_rows = NativeStore.in_folder(folder / "store").chunk_rows
        got = {w: measure(folder, w, args.fields, args.repeat) for w in ("limit", "ours", "store")}
        same = steady(folder, args.fields, args.steady)
        limit = got["limit"]["median"]
        nbytes = built["nbytes"]

        def row(label: str, what: str) -> None:
            ms, peak = got[what]["median"] * 1e3, got[what]["peak"]
            print(
                f"  {label:<34} {ms:7.1f} ms  ratio {ms / limit / 1e3:5.2f}x   peak "
                f"{peak / 2**20:6.1f} MiB  ratio {peak / nbytes:5.2f}x"
            )

        print(
            f"W1 native store: .read() of {args.events:,} events x {args.fields} float64 "
            f"fields (zarr chunks of {chunk_rows:,} rows, local disk; median of "
            f"{args.repeat}, each in its own process)"
        )
        print(
            f"  {'limit: np.load of the 10+1 .npy':<34} {limit * 1e3:7.1f} ms"
            f"{'':<17}arrays {nbytes / 2**20:6.1f} MiB (np.load peaks at "
            f"{got['limit']['peak'] / nbytes:4.2f}x)"
        )
        row("Stream.read()", "ours")
        row("store.read_events, whole stream", "store")
        print("  targets: time within 2x, peak memory within 2x")
        ours_s, limit_s = same["ours"], same["limit"]
        print(
            f"W1 steady state: .read() and np.load in turns in one process, {args.steady} "
            "rounds after a warm-up (median, min-max)"
        )
        print(
            f"  {'limit: np.load of the 10+1 .npy':<34} {limit_s[0] * 1e3:7.1f} ms  "
            f"({limit_s[1] * 1e3:.1f}-{limit_s[2] * 1e3:.1f})"
        )
        print(
            f"  {'Stream.read()':<34} {ours_s[0] * 1e3:7.1f} ms  "
            f"({ours_s[1] * 1e3:.1f}-{ours_s[2] * 1e3:.1f})  ratio {ours_s[0] / limit_s[0]:5.2f}x"
        )
        print("  target: within 1.5x")
        print(
            f"  (bulk ingest of the stream for this benchmark: {built['ingest_s']:.1f} s, "
            f"{args.events / built['ingest_s']:,.0f} events/s; see native_ingest.py)"
        )
        peer = importlib.util.find_spec("databroker")
        print(
            "  peers: databroker is "
            + (
                "installed, but not compared by this script"
                if peer
                else "not installed here: no peer figures"
            )
        )


if __name__ == "__main__":
    main()
