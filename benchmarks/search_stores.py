"""W2 for the stores that search in Python: the memory store and a folder of JSONL files.

10,000 runs (start, a ``primary`` descriptor, one event page of 11 ``theta`` values, stop),
searched through the catalog, uids in hand (median of ``--repeat``):

* ``plan_name == "scan" and 4000 <= scan_id <= 4100`` (25 runs);
* ``summary.primary.theta.max`` in [0, 1): what the data showed.

Each timed search is a new question (the range shifted a little), so that the answers these
stores keep for an unchanged store (``RecentMatches``: a catalog asks ``len`` and then pages of
the same question) do not help; the same question asked again is shown apart. Beside each: the
floor for a store that holds its runs in Python objects, a list comprehension over the same
start documents (or over each run's precomputed ``theta`` maximum) that returns
the matching documents sorted newest first, with no catalog, no query objects and no
summaries to compute. The JSONL store reads only the first and last line of each file to list
runs; a summary query makes it read every run's events (the first time: the figure shown
apart), which is what the native store's index avoids (``native_index.py``).

Run:  python benchmarks/search_stores.py [--runs 10000] [--repeat 11]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import event_model
from native_index import median_ms

from intake_broker.queries import Comparison, Eq
from intake_broker.store.abilities import flush
from intake_broker.store.memory import MemoryStore
from intake_broker.views.catalog import BrokerCatalog

PLANS = ("scan", "count", "grid_scan", "rel_scan")


def runs(count: int, seed: int = 0):
    """Each run's documents, and its theta maximum."""
    rng = random.Random(seed)
    for i in range(count):
        t = 1_600_000_000.0 + 60 * i
        bundle = event_model.compose_run(
            time=t,
            metadata={
                "scan_id": i + 1,
                "plan_name": PLANS[i % 4],
                "sample": {"name": f"s{i % 37}"},
                "operator": rng.choice(["alice", "bob"]),
                "proposal": 300000 + i % 50,
            },
        )
        desc = bundle.compose_descriptor(
            name="primary",
            time=t,
            data_keys={"theta": {"dtype": "number", "shape": [], "source": "SIM:theta"}},
        )
        low = rng.uniform(-100, 100)
        theta = [low + 0.5 * k for k in range(11)]
        page = desc.compose_event_page(
            data={"theta": theta},
            timestamps={"theta": [t] * 11},
            seq_num=list(range(1, 12)),
            time=[t] * 11,
        )
        docs = [
            ("start", bundle.start_doc),
            ("descriptor", desc.descriptor_doc),
            ("event_page", page),
            ("stop", bundle.compose_stop(time=t + 30)),
        ]
        yield docs, max(theta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    from intake_broker_files import JSONLStore

    made = list(runs(args.runs))
    starts = [docs[0][1] for docs, _ in made]
    maxima = {docs[0][1]["uid"]: top for docs, top in made}
    newest = sorted(starts, key=lambda s: -s["time"])

    def search(k: int):  # a new question each time (k shifts the range): nothing kept helps
        return (
            Eq("plan_name", "scan")
            & Comparison("ge", "scan_id", 4000 + k)
            & Comparison("le", "scan_id", 4100 + k)
        )

    def summary(k: int):
        return Comparison("ge", "summary.primary.theta.max", k / 1000) & Comparison(
            "lt", "summary.primary.theta.max", 1.0 + k / 1000
        )

    floors = {
        search: lambda k: [
            s
            for s in newest
            if s.get("plan_name") == "scan" and 4000 + k <= s["scan_id"] <= 4100 + k
        ],
        summary: lambda k: [s for s in newest if k / 1000 <= maxima[s["uid"]] < 1 + k / 1000],
    }
    print(f"W2 in Python: {args.runs:,} runs, median of {args.repeat} questions")
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"memory": MemoryStore(), "JSONL files": JSONLStore.in_folder(Path(tmp))}
        for label, store in stores.items():
            t = time.perf_counter()
            for docs, _ in made:
                for name, doc in docs:
                    store.insert(name, doc)
            flush(store)  # what a buffering store holds (JSONL files)
            if label == "JSONL files":  # a reader opening the folder, as a user would
                store = JSONLStore.in_folder(Path(tmp))
            cat = BrokerCatalog(store)
            print(f"  {label}: {args.runs:,} runs written in {time.perf_counter() - t:.1f} s")
            for make, floor_of in floors.items():
                t = time.perf_counter()
                found = list(cat.search(make(0)))
                first = time.perf_counter() - t
                expected = [s["uid"] for s in floor_of(0)]
                assert found == expected, (label, make.__name__, len(found), len(expected))
                shifts = iter(range(1, 10 * args.repeat))
                ours = median_ms(
                    args.repeat, lambda m=make, c=cat, k=shifts: list(c.search(m(next(k))))
                )
                again = median_ms(args.repeat, lambda m=make, c=cat: list(c.search(m(0))))
                floor = median_ms(args.repeat, lambda f=floor_of: f(1))
                what = (
                    "plan_name and scan_id range"
                    if make is search
                    else "summary.primary.theta.max range"
                ) + f" ({len(found)} runs)"
                print(
                    f"    {what:<46} {ours:8.2f} ms   floor {floor:6.2f} ms   ratio "
                    f"{ours / floor:6.1f}x   (first question: {first * 1e3:.0f} ms; the same "
                    f"question again, kept: {again:.2f} ms)"
                )
    print("  peers: databroker is not installed here: no peer figures")


if __name__ == "__main__":
    main()
