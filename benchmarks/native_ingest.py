"""Ingest into the native store: scalar events in bulk (event pages) and live (one at a time).

* bulk: ``store.insert("event_page", page)`` of pages of ``--page`` events x 10 float64 fields,
  schema validation on (the default), until stop (everything flushed); target >= 50,000
  events/s. Also with ``validate=False`` (what ``copy_runs`` does).
* live: ``store.insert("event", event)`` one event at a time, as a RunEngine subscriber does
  (validated, packed into a one-row page, buffered, flushed by whole chunks).

The floor printed beside: writing the same columns with ``np.save`` (one .npy per column, the
least any store that keeps the values must do), measured in the same run.

Run:  python benchmarks/native_ingest.py [--events 500000] [--live 20000] [--page 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import event_model
import numpy as np

FIELDS = [f"f{i}" for i in range(10)]


def new_run(store):
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "ingest"})
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={k: {"dtype": "number", "shape": [], "source": "bench"} for k in FIELDS},
    )
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    return bundle, desc


def bulk(folder: Path, events: int, page: int, validate: bool) -> float:
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder, validate=validate)
    bundle, desc = new_run(store)
    uid = desc.descriptor_doc["uid"]
    rng = np.random.default_rng(0)
    pages = []
    for lo in range(0, events, page):  # prepared first: producing documents is not ingest
        hi = min(lo + page, events)
        times = (1.7e9 + np.arange(lo, hi) * 1e-3).tolist()
        pages.append(
            {
                "descriptor": uid,
                "uid": [f"{uid}-{i}" for i in range(lo, hi)],
                "seq_num": list(range(lo + 1, hi + 1)),
                "time": times,
                "data": {k: rng.normal(size=hi - lo).tolist() for k in FIELDS},
                "timestamps": {k: times for k in FIELDS},
                "filled": {},
            }
        )
    t = time.perf_counter()
    for doc in pages:
        store.insert("event_page", doc)
    store.insert("stop", bundle.compose_stop())
    took = time.perf_counter() - t
    assert sum(c.rows for c in store.event_chunks(uid)) == events
    store.close()
    return took


def live(folder: Path, events: int, validate: bool = True) -> float:
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder, validate=validate)
    bundle, desc = new_run(store)
    rng = np.random.default_rng(1)
    docs = []
    for i in range(events):
        t = 1.7e9 + i * 1e-3
        docs.append(
            desc.compose_event(
                data={k: float(rng.normal()) for k in FIELDS},
                timestamps=dict.fromkeys(FIELDS, t),
                time=t,
            )
        )
    t = time.perf_counter()
    for doc in docs:
        store.insert("event", doc)
    store.insert("stop", bundle.compose_stop())
    took = time.perf_counter() - t
    assert sum(c.rows for c in store.event_chunks(desc.descriptor_doc["uid"])) == events
    store.close()
    return took


def floor(folder: Path, events: int) -> float:
    rng = np.random.default_rng(0)
    columns = [rng.normal(size=events) for _ in range(2 * len(FIELDS) + 2)]
    t = time.perf_counter()
    for i, column in enumerate(columns):  # values, timestamps, time, seq_num
        np.save(folder / f"c{i}.npy", column)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--live", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("a", "b", "c", "d", "e"):
            (root / name).mkdir()
        validated = bulk(root / "a", args.events, args.page, validate=True)
        unvalidated = bulk(root / "b", args.events, args.page, validate=False)
        one_by_one = live(root / "c", args.live)
        one_by_one_raw = live(root / "e", args.live, validate=False)
        limit = floor(root / "d", args.events)
    rate = args.events / validated
    print("Ingest into the native store (SQLite + local folder), 10 float64 fields per event")
    print(
        f"  bulk, pages of {args.page:,}, validated      {rate:12,.0f} events/s  "
        f"(target >= 50,000: {'ok' if rate >= 50_000 else 'MISSED'})   np.save floor "
        f"{args.events / limit:12,.0f} events/s   ratio {validated / limit:5.1f}x slower"
    )
    print(
        f"  bulk, pages of {args.page:,}, validate=False {args.events / unvalidated:12,.0f} "
        f"events/s"
    )
    print(
        f"  live, one event at a time, validated  {args.live / one_by_one:12,.0f} events/s  "
        f"({one_by_one / args.live * 1e6:.0f} us per event)"
    )
    print(
        f"  live, one event at a time, validate=False {args.live / one_by_one_raw:8,.0f} "
        f"events/s  ({one_by_one_raw / args.live * 1e6:.0f} us per event; the rest of the "
        "validated figure is event-model's jsonschema check in the core)"
    )
    print("  peers: databroker is not installed here: no peer figures")


if __name__ == "__main__":
    main()
