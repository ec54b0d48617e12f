"""Per-event cost of ``store.insert("event", doc)``: what the document checks add to live ingest.

A RunEngine subscriber sends one event per ``insert``. For each store this times
``--events`` such inserts (10 float64 fields, as ``native_ingest.py`` live) and prints:

* ``checks``: the core's work per event before the store's ``put`` (schema, value and run
  checks, packing into a one-row page), timed on a store whose ``put`` does nothing;
* ``insert``: the whole ``insert`` into the store (memory, files, native SQLite).

The floor printed beside is ``dict(doc)`` + ``event_model.pack_event_page`` (what any store that
takes pages must do to a single event), measured in the same run; figures are the median of
``--repeat`` runs, with the range.

Run:  python benchmarks/insert_checks.py [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import event_model

from intake_broker.store.abilities import flush

FIELDS = [f"f{i}" for i in range(10)]


def documents(n: int) -> tuple[list, list]:
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "checks"})
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"dtype": "number", "shape": [], "source": "bench"} for k in FIELDS},
    )
    head = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    events = [
        desc.compose_event(
            data={k: float(i + j) for j, k in enumerate(FIELDS)},
            timestamps={k: 1.7e9 + i for k in FIELDS},
            seq_num=i + 1,
            time=1.7e9 + i,
        )
        for i in range(n)
    ]
    return head, [("event", e) for e in events] + [("stop", bundle.compose_stop())]


def per_event(store, n: int) -> float:
    head, rest = documents(n)
    for name, doc in head:
        store.insert(name, doc)
    t0 = time.perf_counter()
    for name, doc in rest:
        store.insert(name, doc)
    flush(store)
    return (time.perf_counter() - t0) / n * 1e6


def floor(n: int) -> float:
    _, rest = documents(n)
    t0 = time.perf_counter()
    for _, doc in rest[:-1]:
        event_model.pack_event_page(dict(doc))
    return (time.perf_counter() - t0) / n * 1e6


def make_stores(folder: Path):
    from intake_broker.store.memory import MemoryStore

    class NoPut(MemoryStore):
        def put(self, kind, doc):  # the core's checks only: documents go nowhere
            if kind in ("start", "descriptor", "stop"):
                super().put(kind, doc)

    from intake_broker_files import JSONLStore
    from intake_broker_native import NativeStore

    count = iter(range(10**6))
    return {
        "checks": lambda: NoPut(),
        "memory": lambda: MemoryStore(),
        "files": lambda: JSONLStore.in_folder(folder / f"f{next(count)}"),
        "native": lambda: NativeStore.in_folder(folder / f"n{next(count)}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = make_stores(Path(tmp))
        floors = [floor(args.events) for _ in range(args.repeat)]
        print(
            f"{args.events} events x {len(FIELDS)} float fields, one per insert; "
            f"median (range) of {args.repeat} runs"
        )
        f = statistics.median(floors)
        print(f"  {'floor':7s} {f:7.1f} us/event  ({min(floors):.1f}-{max(floors):.1f})")
        for name, make in stores.items():
            runs = [per_event(make(), args.events) for _ in range(args.repeat)]
            m = statistics.median(runs)
            print(
                f"  {name:7s} {m:7.1f} us/event  ({min(runs):.1f}-{max(runs):.1f})  "
                f"{1e6 / m:9,.0f} events/s  {m / f:5.1f}x floor"
            )


if __name__ == "__main__":
    main()
