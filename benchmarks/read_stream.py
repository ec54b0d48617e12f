"""W1: read a 100,000-event x 10-field scalar stream with ``run.primary.read()``.

Prints, for each store, our time beside the physical limit measured in the same run:

* memory store  vs  copying the same 10 columns out of numpy arrays in memory;
* msgpack/JSONL files  vs  ``np.load`` of the same columns from .npy files on the same disk,
  and vs the bare format floor (``msgpack.unpackb`` / ``json.loads`` of the same file, which any
  reader of that format pays).

Run:  python benchmarks/read_stream.py [--events 100000] [--fields 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import event_model
import msgpack
import numpy as np

from intake_broker.store.memory import MemoryStore
from intake_broker.views.catalog import BrokerCatalog


def make_run(events: int, fields: int, page: int = 1000):
    """Documents of one run: a primary stream of ``events`` x ``fields`` float64 values."""
    rng = np.random.default_rng(0)
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "benchmark"})
    keys = [f"f{i}" for i in range(fields)]
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"dtype": "number", "shape": [], "source": "bench"} for k in keys},
    )
    columns = {k: rng.normal(size=events) for k in keys}
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    t0 = time.time()
    for lo in range(0, events, page):
        hi = min(lo + page, events)
        n = hi - lo
        docs.append(
            (
                "event_page",
                {
                    "descriptor": desc.descriptor_doc["uid"],
                    "uid": [f"{desc.descriptor_doc['uid']}-{i}" for i in range(lo, hi)],
                    "seq_num": list(range(lo + 1, hi + 1)),
                    "time": list(t0 + np.arange(lo, hi) * 1e-3),
                    "data": {k: columns[k][lo:hi].tolist() for k in keys},
                    "timestamps": {k: [t0] * n for k in keys},
                    "filled": {},
                },
            )
        )
    stop = bundle.compose_stop()
    stop["num_events"] = {"primary": events}
    docs.append(("stop", stop))
    return docs, columns


def best_of(repeat: int, func) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def report(label: str, ours: float, limit: float, limit_label: str) -> None:
    print(
        f"  {label:<34} {ours * 1e3:9.1f} ms   {limit_label:<34} {limit * 1e3:9.1f} ms"
        f"   ratio {ours / limit:7.1f}x"
    )


def bench_memory(docs, columns, repeat: int) -> None:
    store = MemoryStore(validate=False)
    for name, doc in docs:
        store.insert(name, doc)
    run = BrokerCatalog(store)[-1]
    run.primary.read()  # first read consolidates the pages into columns, as a load would

    def ours():
        run.primary.read()

    def limit():
        np.stack([columns[k].copy() for k in columns])

    print("memory store")
    report(
        "run.primary.read()",
        best_of(repeat, ours),
        best_of(repeat, limit),
        "numpy copy of the columns",
    )


def bench_files(docs, columns, repeat: int, fmt: str, folder: Path) -> None:
    try:
        from intake_broker_files import FilesStore
    except ImportError:
        print(f"{fmt} files: skipped (pip install ./drivers/files)")
        return
    store = FilesStore(
        [str(folder / f"*.{fmt}")], format=fmt, directory=str(folder), validate=False
    )
    for name, doc in docs:
        store.insert(name, doc)
    uid = docs[0][1]["uid"]
    path = folder / f"{uid}.{fmt}"
    for k, v in columns.items():
        np.save(folder / f"{k}.npy", v)

    def ours():  # a new store each time: nothing cached from the previous read
        fresh = FilesStore([str(folder / f"*.{fmt}")], format=fmt, validate=False)
        BrokerCatalog(fresh)[uid].primary.read()

    def limit():
        np.stack([np.load(folder / f"{k}.npy") for k in columns])

    def floor():
        raw = path.read_bytes()
        if fmt == "msgpack":
            list(msgpack.Unpacker(raw_input := __import__("io").BytesIO(raw)))
            del raw_input
        else:
            [json.loads(line) for line in raw.splitlines()]

    size = path.stat().st_size / 1e6
    print(f"{fmt} files ({size:.1f} MB)")
    t_ours = best_of(repeat, ours)
    report(
        "run.primary.read() (cold store)",
        t_ours,
        best_of(repeat, limit),
        "np.load of the columns (.npy)",
    )
    report(
        "run.primary.read() (cold store)",
        t_ours,
        best_of(repeat, floor),
        f"bare {fmt} parse of the file",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    docs, columns = make_run(args.events, args.fields)
    print(f"W1: {args.events:,} events x {args.fields} float64 fields, best of {args.repeat}")
    bench_memory(docs, columns, args.repeat)
    for fmt in ("msgpack", "jsonl"):
        with tempfile.TemporaryDirectory() as tmp:
            bench_files(docs, columns, args.repeat, fmt, Path(tmp))
    print("peers: databroker 1.2.5 / 2.0.2 not measured here (no peer environment given)")


if __name__ == "__main__":
    main()
