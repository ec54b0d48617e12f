"""Muxing and other returns (issue 19), each beside its floor, as ratios (best of --repeat):

* align: a 100,000-event primary stream with a baseline (2 readings) and a 1,000,000-reading
  monitor, ``run.align([...], method="previous").load()`` (reading the stores' columns
  included)  vs  a hand-written ``pandas.merge_asof`` of the same columns already in memory
  (goal: within 1.5x);
* to_arrow: W1 (1,000,000 events x 10 fields) ``run.primary.to_arrow()`` from a memory store
  vs  ``np.load`` of the same 10 columns from .npy files (goal: within 1.2x);
* merge: 100 runs of 1,000 events x 3 fields, ``merge_runs`` (open: goal under 100 ms), then
  ``.compute()``  vs  ``np.stack`` of the same columns held in numpy.

Run:  python benchmarks/mux.py [--events 100000] [--monitor 1000000] [--w1 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import event_model
import numpy as np
import pandas as pd

from intake_broker.store.memory import MemoryStore
from intake_broker.views import returns
from intake_broker.views.catalog import BrokerCatalog
from intake_broker.views.mux import merge_runs

PAGE = 10_000


def _pages(desc, columns: dict[str, np.ndarray], times: np.ndarray):
    uid = desc.descriptor_doc["uid"]
    for lo in range(0, len(times), PAGE):
        hi = min(lo + PAGE, len(times))
        yield (
            "event_page",
            {
                "descriptor": uid,
                "uid": [f"{uid}-{i}" for i in range(lo, hi)],
                "seq_num": list(range(lo + 1, hi + 1)),
                "time": times[lo:hi].tolist(),
                "data": {k: v[lo:hi].tolist() for k, v in columns.items()},
                "timestamps": {k: times[lo:hi].tolist() for k in columns},
                "filled": {},
            },
        )


def insert_run(store, streams: dict[str, tuple[dict[str, np.ndarray], np.ndarray]], **md):
    bundle = event_model.compose_run(metadata={"plan_name": "bench", **md})
    store.insert("start", bundle.start_doc)
    for name, (columns, times) in streams.items():
        desc = bundle.compose_descriptor(
            name=name,
            data_keys={k: {"dtype": "number", "shape": [], "source": "b"} for k in columns},
        )
        store.insert("descriptor", desc.descriptor_doc)
        for kind, doc in _pages(desc, columns, times):
            store.insert(kind, doc)
    store.insert("stop", bundle.compose_stop())
    return bundle.start_doc["uid"]


def best(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_align(events: int, monitor: int, repeat: int) -> None:
    rng = np.random.default_rng(1)
    t0 = 1_700_000_000.0
    p_time = t0 + np.arange(events) * 0.01
    m_time = np.sort(t0 - 1 + rng.uniform(0, events * 0.01 + 2, monitor))
    b_time = np.array([t0 - 0.5, p_time[-1] + 1])
    primary = {f"det{i}": rng.normal(size=events) for i in range(3)}
    mon = {"current": rng.normal(size=monitor)}
    base = {"temperature": np.array([290.0, 300.0])}
    store = MemoryStore(validate=False)
    uid = insert_run(
        store, {"primary": (primary, p_time), "monitor": (mon, m_time), "baseline": (base, b_time)}
    )
    run = BrokerCatalog(store)[uid]

    def ours():
        return run.align(["primary", "baseline", "monitor"], method="previous").load()

    p_frame = pd.DataFrame({"time": p_time, **primary})
    m_frame = pd.DataFrame({"time": m_time, **mon})
    b_frame = pd.DataFrame({"time": b_time, **base})

    def floor():
        out = pd.merge_asof(p_frame, m_frame, on="time", direction="backward")
        return pd.merge_asof(out, b_frame, on="time", direction="backward")

    check = ours()
    expected = floor()
    np.testing.assert_array_equal(check["current"].values, expected["current"].values)
    np.testing.assert_array_equal(check["temperature"].values, expected["temperature"].values)
    a, f = best(ours, repeat), best(floor, repeat)
    print(
        f"align {events:,} events + baseline + {monitor:,}-reading monitor: ours {a * 1e3:.1f} ms,"
        f" pandas.merge_asof {f * 1e3:.1f} ms, ratio {a / f:.2f} (goal <= 1.5)"
    )


def bench_arrow(events: int, fields: int, repeat: int) -> None:
    rng = np.random.default_rng(2)
    columns = {f"f{i}": rng.normal(size=events) for i in range(fields)}
    times = 1_700_000_000.0 + np.arange(events) * 1e-3
    store = MemoryStore(validate=False)
    uid = insert_run(store, {"primary": (columns, times)})
    stream = BrokerCatalog(store)[uid].primary
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for key, values in {"time": times, **columns}.items():
            path = Path(folder) / f"{key}.npy"
            np.save(path, values)
            paths.append(path)

        def floor():
            return [np.load(p) for p in paths]

        table = stream.to_arrow()
        assert table.num_rows == events and table.num_columns == fields + 2
        a, f = best(stream.to_arrow, repeat), best(floor, repeat)
        read = best(stream.read, repeat)
        ds = stream.read()
        wrap = best(lambda: returns.to_arrow(ds), repeat)
    print(
        f"to_arrow W1 {events:,} x {fields}: ours {a * 1e3:.1f} ms (read {read * 1e3:.1f} ms + "
        f"wrap {wrap * 1e3:.2f} ms), np.load {f * 1e3:.1f} ms, ratio {a / f:.2f} (goal <= 1.2)"
    )


def bench_merge(runs: int, events: int, repeat: int) -> None:
    rng = np.random.default_rng(3)
    store = MemoryStore(validate=False)
    held = []
    for i in range(runs):
        columns = {k: rng.normal(size=events) for k in ("a", "b", "c")}
        held.append(columns)
        times = 1_700_000_000.0 + i * 100 + np.arange(events) * 0.01
        insert_run(store, {"primary": (columns, times)}, scan_id=i + 1, temperature=float(i))
    cat = BrokerCatalog(store)
    listed = list(cat.values())

    def open_():
        return merge_runs(listed, coords=["scan_id", "temperature"])

    merged = open_()
    opened = best(open_, repeat)
    computed = best(merged.compute, repeat)
    search_and_open = best(lambda: cat.merge(coords=["scan_id", "temperature"]), repeat)

    def floor():
        return {k: np.stack([c[k] for c in held]) for k in ("a", "b", "c")}

    f = best(floor, repeat)
    print(
        f"merge {runs} runs x {events:,} events x 3 fields: open {opened * 1e3:.1f} ms "
        f"(with the catalog's listing {search_and_open * 1e3:.1f} ms; goal < 100 ms), "
        f"compute {computed * 1e3:.1f} ms, np.stack {f * 1e3:.2f} ms, "
        f"ratio {computed / f:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--monitor", type=int, default=1_000_000)
    parser.add_argument("--w1", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench_align(args.events, args.monitor, args.repeat)
    bench_arrow(args.w1, 10, args.repeat)
    bench_merge(args.runs, 1000, args.repeat)


if __name__ == "__main__":
    main()
