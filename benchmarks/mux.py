"""Muxing and other returns (issue 19), each beside its floor, as ratios (best of --repeat):

* align: a 100,000-event primary stream (3 fields) with a baseline (2 readings) and a
  1,000,000-reading monitor, ``method="previous"``, both results materialised, two ways:
  from the store, ``run.align([...]).load()`` (lazy, then computed)  vs  ``read()`` of the
  same streams and a hand-written ``pandas.merge_asof`` of their columns; in memory,
  ``align`` of the read datasets  vs  ``merge_asof`` of DataFrames of the same columns
  (goal: within 1.5x); each side the best of --repeat, the two run in turns;
* to_arrow: W1 (1,000,000 events x 10 fields) ``run.primary.to_arrow()`` from a memory store
  vs  ``np.load`` of the same 10 columns from .npy files (goal: within 1.2x);
* merge: 100 runs of 1,000 events x 3 fields, ``merge_runs`` (open: goal under 100 ms), then
  ``.compute()``  vs  ``np.stack`` of the same columns held in numpy.

Run:  python benchmarks/mux.py [--events 100000] [--monitor 1000000] [--w1 1000000] [--repeat 5]
      [--only align|arrow|merge]
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
from intake_broker.views.mux import align, merge_runs

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


def best_pair(ours, floor, repeat: int) -> tuple[float, float]:
    """The best of ``repeat`` runs of each, run in turns (ours, floor, ours, ...) so that
    both see the same load on a shared machine."""
    a, f = [], []
    for _ in range(repeat):
        for func, out in ((ours, a), (floor, f)):
            t = time.perf_counter()
            func()
            out.append(time.perf_counter() - t)
    return min(a), min(f)


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
    names = ["primary", "baseline", "monitor"]

    def frames(columns: dict[str, dict[str, np.ndarray]]) -> list[pd.DataFrame]:
        return [pd.DataFrame(columns[name], copy=False) for name in names]  # no copies

    def merge(p_frame, b_frame, m_frame) -> pd.DataFrame:
        out = pd.merge_asof(p_frame, m_frame, on="time", direction="backward")
        return pd.merge_asof(out, b_frame, on="time", direction="backward")

    # 1. From the store: our lazy align, computed, against reading the same columns
    # (``read()``, numpy) and a hand-written merge_asof of them.
    def ours():
        return run.align(names, method="previous").load()

    def floor():
        columns = {}
        for name in names:
            ds = run[name].read()
            columns[name] = {"time": ds["time"].values, **{k: ds[k].values for k in ds.data_vars}}
        return merge(*frames(columns))

    # 2. Columns already in memory: align of the read datasets (numpy, eager) against
    # merge_asof of DataFrames of the same columns.
    held = {name: run[name].read() for name in names}
    p_frame, b_frame, m_frame = frames(
        {
            name: {"time": ds["time"].values, **{k: ds[k].values for k in ds.data_vars}}
            for name, ds in held.items()
        }
    )

    def ours_memory():
        return align(held, names, method="previous")

    def floor_memory():
        return merge(p_frame, b_frame, m_frame)

    for check in (ours(), ours_memory()):
        expected = floor()
        for key in ("current", "temperature", "det0"):
            np.testing.assert_array_equal(check[key].values, expected[key].values)
    lazy = run.align(names, method="previous")
    assert all(v.chunks for v in lazy.data_vars.values())  # lazy as the streams are
    a, f = best_pair(ours, floor, repeat)
    am, fm = best_pair(ours_memory, floor_memory, repeat)
    print(
        f"align {events:,} events + baseline + {monitor:,}-reading monitor (previous): "
        f"from the store: ours (lazy, .load()) {a * 1e3:.1f} ms, read() + pandas.merge_asof "
        f"{f * 1e3:.1f} ms, ratio {a / f:.2f}; in memory: ours {am * 1e3:.1f} ms, "
        f"pandas.merge_asof {fm * 1e3:.1f} ms, ratio {am / fm:.2f} (goal <= 1.5)"
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=("align", "arrow", "merge"))
    args = parser.parse_args()
    if args.only in (None, "align"):
        bench_align(args.events, args.monitor, args.repeat)
    if args.only in (None, "arrow"):
        bench_arrow(args.w1, 10, args.repeat)
    if args.only in (None, "merge"):
        bench_merge(args.runs, 1000, args.repeat)


if __name__ == "__main__":
    main()
