"""Live ingest into the native store with the safe default (``durability="process"``: every
acknowledged document survives ``kill -9`` of the writer).

* live: ``store.insert("event", event)`` one event per call, as a RunEngine subscriber does,
  10 float64 fields, schema validation on (the default) and off; goal >= 20,000 events/s.
* small runs: start, descriptor, 5 events, stop, one document per ``insert``; goal < 5 ms
  (their stream is packed into one journal record at the stop, not a zarr group).
* bulk: ``event_page`` of 1,000 events; no slower than 282,000 events/s (the figure of
  ``native_ingest.py`` before the write-ahead log).

Beside each figure, its floor measured in the same run: for live ingest the same bytes
handed to the kernel one ``os.write`` per event (what makes an event durable against a
process crash) and the core's part of an ``insert`` (``documents.normalize``, with and without
event-model's schema check); for bulk, ``np.save`` of the same columns.

Run:  python benchmarks/ingest_live.py [--live 20000] [--small 200] [--bulk 300000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import event_model
import numpy as np

FIELDS = [f"f{i}" for i in range(10)]
DATA_KEYS = {k: {"dtype": "number", "shape": [], "source": "bench"} for k in FIELDS}


def _events(desc, count: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        t = 1.7e9 + i * 1e-3
        out.append(
            desc.compose_event(
                data={
                    k: float(v) for k, v in zip(FIELDS, rng.normal(size=len(FIELDS)), strict=True)
                },
                timestamps=dict.fromkeys(FIELDS, t),
                time=t,
                validate=False,
            )
        )
    return out


def live(folder: Path, count: int, validate: bool) -> float:
    """Seconds to insert ``count`` events one per call, stop included (all flushed)."""
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder, validate=validate)
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    docs = _events(desc, count)
    stop = bundle.compose_stop()
    t = time.perf_counter()
    for doc in docs:
        store.insert("event", doc)
    store.insert("stop", stop)
    took = time.perf_counter() - t
    assert sum(c.rows for c in store.event_chunks(desc.descriptor_doc["uid"])) == count
    store.close()
    return took


def small_runs(folder: Path, count: int) -> list[float]:
    """Seconds per small run (start, descriptor, 5 events, stop; one document per insert)."""
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder)
    prepared = []
    for _ in range(count):
        bundle = event_model.compose_run()
        desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
        prepared.append(
            [
                ("start", bundle.start_doc),
                ("descriptor", desc.descriptor_doc),
                *(("event", e) for e in _events(desc, 5)),
                ("stop", bundle.compose_stop()),
            ]
        )
    times = []
    for docs in prepared:
        t = time.perf_counter()
        for name, doc in docs:
            store.insert(name, doc)
        times.append(time.perf_counter() - t)
    store.close()
    return times


def bulk(folder: Path, count: int, page: int = 1000) -> float:
    from intake_broker_native import NativeStore

    store = NativeStore.in_folder(folder)
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    uid = desc.descriptor_doc["uid"]
    rng = np.random.default_rng(0)
    pages = []
    for lo in range(0, count, page):
        hi = min(lo + page, count)
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
    store.close()
    return took


def floor_write(folder: Path, count: int) -> float:
    """One os.write per event of its 22 numbers and uid (the bytes a durable log needs)."""
    rng = np.random.default_rng(0)
    records = [rng.normal(size=22).tobytes() + os.urandom(18).hex().encode() for _ in range(count)]
    fd = os.open(folder / "floor.log", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    t = time.perf_counter()
    for record in records:
        os.write(fd, record)
    took = time.perf_counter() - t
    os.close(fd)
    return took


def core_part(count: int, check: bool) -> float:
    """``validation.checked`` (what ``DocumentStore.insert`` does before the store's put)."""
    from intake_broker.store import validation

    desc = event_model.compose_run().compose_descriptor(name="primary", data_keys=DATA_KEYS)
    docs = _events(desc, count)
    t = time.perf_counter()
    for doc in docs:
        validation.checked("event", doc, schema=check)
    return time.perf_counter() - t


def floor_small_files(folder: Path, count: int) -> list[float]:
    """What a small run durably needs on disk, by plain os calls: its run folder and journal
    (created), one appended line per document that is not an event plus one for the packed
    events (start, descriptor, segment, events, stop; each opened, appended, closed), and one
    os.write per event to a log that is already open."""
    line, record = b"x" * 300, b"y" * 250
    fd_log = os.open(folder / "floor.wal", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    times = []
    for i in range(count):
        t = time.perf_counter()
        run = folder / f"run{i}"
        os.mkdir(run)
        for _ in range(5):
            fd = os.open(run / "documents.jsonl", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
            os.write(fd, line)
            os.close(fd)
            os.write(fd_log, record)
        times.append(time.perf_counter() - t)
    os.close(fd_log)
    return times


def floor_small(folder: Path, count: int) -> list[float]:
    """The files a small run's zarr group is made of, written with plain os calls: a group
    folder and zarr.json, and per array (time, seq_num, uid, 10 fields, 10 timestamps) its
    folder, zarr.json, c/ folder and one chunk file: the least that layout costs on this
    disk."""
    arrays = ["time", "seq_num", "uid", *FIELDS, *(f"timestamps_{k}" for k in FIELDS)]
    meta, chunk = b"{" + b" " * 600 + b"}", b"x" * 44
    times = []
    for i in range(count):
        t = time.perf_counter()
        group = folder / f"run{i}" / "descriptor"
        os.makedirs(group)
        (group / "zarr.json").write_bytes(meta)
        for name in arrays:
            os.makedirs(group / name / "c")
            (group / name / "zarr.json").write_bytes(meta)
            (group / name / "c" / "0").write_bytes(chunk)
        times.append(time.perf_counter() - t)
    return times


def floor_save(folder: Path, count: int) -> float:
    rng = np.random.default_rng(0)
    columns = [rng.normal(size=count) for _ in range(2 * len(FIELDS) + 2)]
    t = time.perf_counter()
    for i, column in enumerate(columns):
        np.save(folder / f"c{i}.npy", column)
    return time.perf_counter() - t


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):,.0f} (range {min(values):,.0f}-{max(values):,.0f})"


def _spread1(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (range {min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
                (root / name).mkdir()
            add("live", args.live / live(root / "a", args.live, validate=True))
            add("live_raw", args.live / live(root / "b", args.live, validate=False))
            small = small_runs(root / "c", args.small)
            add("small_ms", statistics.median(small) * 1e3)
            add("floor_small_ms", statistics.median(floor_small(root / "g", args.small)) * 1e3)
            add(
                "floor_files_ms", statistics.median(floor_small_files(root / "h", args.small)) * 1e3
            )
            add("bulk", args.bulk / bulk(root / "d", args.bulk))
            add("floor_write", args.live / floor_write(root / "e", args.live))
            add("floor_save", args.bulk / floor_save(root / "f", args.bulk))
            add("core_checked_us", core_part(args.live // 4, True) / (args.live // 4) * 1e6)
            add("core_unchecked_us", core_part(args.live, False) / args.live * 1e6)
    m = {k: statistics.median(v) for k, v in figures.items()}
    print(
        f"Native store (SQLite + local folder), durability='process', 10 float64 fields; "
        f"medians of {args.repeat} runs"
    )
    print(
        f"  live, one event per insert, validated   {_spread(figures['live'])} events/s "
        f"(goal >= 20,000: {'ok' if m['live'] >= 20_000 else 'MISSED'})"
    )
    print(
        f"  live, one event per insert, validate=False {_spread(figures['live_raw'])} events/s "
        f"(goal >= 20,000: {'ok' if m['live_raw'] >= 20_000 else 'MISSED'})"
    )
    print(
        f"    floor: one os.write per event {m['floor_write']:,.0f} events/s; ratio "
        f"{m['floor_write'] / m['live_raw']:.1f}x (validate=False), "
        f"{m['floor_write'] / m['live']:.1f}x (validated)"
    )
    per_event = 1e6 / m["live"]
    print(
        f"    where an event's {per_event:.0f} us go: the core's checks (validation.checked) "
        f"with schemas on {m['core_checked_us']:.0f} us, without {m['core_unchecked_us']:.1f} us; "
        f"the store {1e6 / m['live_raw'] - m['core_unchecked_us']:.0f} us"
    )
    print(
        f"  small run (start, descriptor, 5 events, stop) {_spread1(figures['small_ms'])} ms "
        f"(goal < 5 ms: {'ok' if m['small_ms'] < 5 else 'MISSED'})"
    )
    print(
        f"    floor: its run folder, journal and 5 appends, 5 log writes by plain os calls "
        f"{_spread1(figures['floor_files_ms'])} ms; "
        f"ratio {m['small_ms'] / m['floor_files_ms']:.1f}x"
    )
    print(
        f"    (a zarr group of its stream, 48 files and 47 folders, by plain os calls "
        f"{_spread(figures['floor_small_ms'])} ms: why small streams are packed)"
    )
    print(
        f"  bulk, pages of 1,000, validated          {_spread(figures['bulk'])} events/s "
        f"(before the log: 282,000)   np.save floor {m['floor_save']:,.0f} events/s, ratio "
        f"{m['floor_save'] / m['bulk']:.1f}x"
    )


if __name__ == "__main__":
    main()
