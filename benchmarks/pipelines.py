"""The pipeline machinery's cost per input run (issue 21), beside calling the function directly.

Setup (not timed): ``--runs`` small runs (10 events of 3 scalar fields each) in a native store
(SQLite index, local zarr columns); the derived step reads ``det`` of ``primary`` and returns
its sum and maximum.

Figures (each side the best of ``--repeat``, the two in turns):

* **serial**: ``step.run(catalog, dest=MemoryStore(), rerun=True)`` -- listing the inputs, the
  idempotency query, reading each run, calling the function, building the provenance and
  writing the derived run -- against the floor:
  ``for run in catalog: f(run.primary.read(["det"]))``. The figure is the difference per run.
  Goal: under 10 ms per run.
* **dask**: the same step with ``client=`` a ``LocalCluster(n_workers=W, processes=True,
  threads_per_worker=1)`` for W = 1 and 2 (after one warm-up run that imports and opens the
  store on each worker), per shipped run; against the floor: one ``client.submit`` per run of
  a task that opens the run through the same per-process store cache
  (``provenance.shipping.open_store``, the store's pickle scattered once) and calls the
  function, results gathered as they complete. Goal: under 5 ms per shipped run. Also prints
  how many stores each worker process opened (1: reused for every run).

Run:  python benchmarks/pipelines.py [--runs 200] [--repeat 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.provenance.pipeline import derived
from intake_broker.testing import factories, insert_all


@derived(name="bench_sum", version="1", stream="primary", fields=["det"])
def det_sum(ds: Any) -> dict[str, Any]:
    """The sum and the largest value of ``det``."""
    det = np.asarray(ds["det"].values, dtype=float)
    return {"total": float(det.sum()), "peak": float(det.max())}


def direct(ds: Any) -> dict[str, Any]:
    """The same computation as a plain function (the floor calls this)."""
    det = np.asarray(ds["det"].values, dtype=float)
    return {"total": float(det.sum()), "peak": float(det.max())}


def build(folder: str, count: int) -> Any:
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder)
    for i in range(count):
        insert_all(store, factories.scalar_run(n=10, scan_id=i + 1, time=1_700_000_000.0 + i))
    store.flush()
    return store


def serial(catalog: BrokerCatalog, repeat: int) -> tuple[float, float]:
    """Best seconds of the pipeline and of the direct loop over every run of ``catalog``."""
    ours, floor = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        report = det_sum.run(catalog, MemoryStore(), rerun=True, progress=False)
        ours.append(time.perf_counter() - t0)
        assert len(report.written) == len(catalog), report
        t0 = time.perf_counter()
        results = [direct(run.primary.read(["det"])) for run in catalog.values()]
        floor.append(time.perf_counter() - t0)
        assert len(results) == len(catalog)
    return min(ours), min(floor)


def _floor_task(ticket: Any, start: dict, stop: dict) -> dict[str, Any]:
    from intake_broker.provenance.shipping import open_store
    from intake_broker.store.contract import RunRecord
    from intake_broker.views.catalog import Run

    run = Run(open_store(ticket), RunRecord(start, stop))
    return direct(run.primary.read(["det"]))


def on_dask(catalog: BrokerCatalog, workers: int, repeat: int) -> tuple[float, float, dict]:
    """Best seconds of the pipeline and of the floor on a cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster, as_completed

    from intake_broker.provenance.shipping import StoreTicket, cached_stores

    records = [(run.start, run.stop) for run in catalog.values()]
    with (
        LocalCluster(
            n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        ticket = client.scatter(StoreTicket.of(catalog.store), broadcast=True, hash=False)
        det_sum.run(catalog, MemoryStore(), client=client, rerun=True, progress=False)  # warm
        list(as_completed([client.submit(_floor_task, ticket, *r, pure=False) for r in records]))
        ours, floor = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            report = det_sum.run(catalog, MemoryStore(), client=client, rerun=True, progress=False)
            ours.append(time.perf_counter() - t0)
            assert len(report.written) == len(records), report
            t0 = time.perf_counter()
            futures = [client.submit(_floor_task, ticket, *r, pure=False) for r in records]
            done = [f.result() for f in as_completed(futures)]
            floor.append(time.perf_counter() - t0)
            assert len(done) == len(records)
        opened = client.run(cached_stores)
    return min(ours), min(floor), opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--only", choices=["serial", "dask"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = build(folder, args.runs)
        catalog = BrokerCatalog(store)
        n = len(catalog)
        if args.only in (None, "serial"):
            ours, floor = serial(catalog, args.repeat)
            print(
                f"serial, {n} runs: pipeline {ours * 1e3 / n:.2f} ms/run, direct "
                f"{floor * 1e3 / n:.2f} ms/run; overhead {(ours - floor) * 1e3 / n:.2f} ms/run "
                f"(goal < 10), ratio {ours / floor:.2f}x"
            )
        if args.only in (None, "dask"):
            first = None
            for workers in args.workers:
                ours, floor, opened = on_dask(catalog, workers, args.repeat)
                first = first or ours
                print(
                    f"dask, {workers} worker(s), {n} runs: pipeline {ours:.2f} s = "
                    f"{ours * 1e3 / n:.2f} ms/shipped run (goal < 5), floor {floor:.2f} s = "
                    f"{floor * 1e3 / n:.2f} ms/run, ratio {ours / floor:.2f}x; speed-up "
                    f"{first / ours:.2f}x; stores opened per worker process "
                    f"{sorted(opened.values())}"
                )
        store.close()


if __name__ == "__main__":
    main()
