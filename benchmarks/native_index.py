"""W2 for the native store: searching and listing a large run index (SQLite by default).

* 10,000 runs: ``cat.search(Eq("plan_name", "scan") & 4000 <= scan_id <= 4100)`` with its uids
  in hand (median; limit 20 ms), and ``cat[-1]`` (median; limit 10 ms);
* 100,000 runs: the first page of a listing, ``itertools.islice(iter(cat), 500)`` (the catalog
  reads runs in pages of 500; median; limit 50 ms), and ``len(cat)``.

The indexes are built with :meth:`NativeStore.bulk_insert_runs`, which inserts start and stop
documents (realistic ones, about 1 kB of metadata each) 10,000 rows per SQL statement, with no
events: the fast way to build a large run index (the same rows ``insert("start", ...)`` and
``insert("stop", ...)`` write, without the per-document transactions).
The summary range query (``summary.primary.theta.max`` in [0, 1), 10,000 runs with summaries
written by :meth:`NativeStore.index_summaries`) is answered from the ``summary_values`` index.
The floor printed beside (SQLite only): the same SQL answered by sqlite3 directly, plus
``json.loads`` of the documents it returns (any reader returning documents pays that), with no
catalog and no query translation, measured in the same run.

Run:  python benchmarks/native_index.py [--index postgresql://...] [--data DIR] [--repeat 51]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from intake_broker.queries import Comparison, Eq
from intake_broker.store import RunRecord
from intake_broker.views.catalog import BrokerCatalog


def records(count: int, seed: int = 0):
    """``count`` runs one minute apart, scan_ids 1..count, plans alternating."""
    rng = random.Random(seed)
    plans = ["scan", "count", "grid_scan", "rel_scan"]
    for i in range(count):
        start = {
            "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": 1_600_000_000.0 + 60 * i,
            "scan_id": i + 1,
            "plan_name": plans[i % 4],
            "plan_type": "generator",
            "versions": {"ophyd": "1.9.0", "bluesky": "1.12.0"},
            "detectors": ["det", "det4"],
            "motors": ["motor"],
            "num_points": 11,
            "num_intervals": 10,
            "plan_args": {
                "detectors": ["SynGauss(name='det')"],
                "num": 11,
                "args": ["motor", -1, 1],
            },
            "hints": {"dimensions": [[["motor"], "primary"]]},
            "sample": {"name": f"sample-{i % 37}", "composition": "LaB6"},
            "operator": rng.choice(["alice", "bob", "carol"]),
            "proposal": 300000 + i % 50,
        }
        stop = {
            "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "run_start": start["uid"],
            "time": start["time"] + 30,
            "exit_status": "success",
            "reason": "",
            "num_events": {"primary": 11},
        }
        yield RunRecord(start, stop)


def parsed(cursor) -> list:
    """Rows of (start, stop) JSON text as documents."""
    return [(json.loads(a), b and json.loads(b)) for a, b in cursor]


def median_ms(repeat: int, func) -> float:
    func()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def line(label: str, ours: float, limit_label: str, limit: float | None, target: float) -> None:
    floor = (
        "   (no floor measured for this database)"
        if limit is None
        else f"   {limit_label:<26} {limit:7.2f} ms   ratio {ours / limit:6.1f}x"
    )
    print(
        f"  {label:<44} {ours:7.2f} ms  (target < {target:g} ms: "
        f"{'ok' if ours < target else 'MISSED'}){floor}"
    )


def build(index: str | None, data: Path, runs: int):
    from intake_broker_native import NativeStore

    store = NativeStore(index, str(data)) if index else NativeStore.in_folder(data)
    t = time.perf_counter()
    added = store.bulk_insert_runs(records(runs))
    return store, added, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index",
        default=None,
        help="a SQL URL (default: SQLite in a temporary folder); a PostgreSQL index must be empty",
    )
    parser.add_argument("--repeat", type=int, default=51)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, added, took = build(args.index, Path(tmp) / "runs10k", 10_000)
        print(
            f"W2 native store ({store.engine.dialect.name}): index of {added:,} runs built "
            f"in {took:.1f} s by bulk_insert_runs"
        )
        cat = BrokerCatalog(store)
        query = (
            Eq("plan_name", "scan")
            & Comparison("ge", "scan_id", 4000)
            & Comparison("le", "scan_id", 4100)
        )
        uids = list(cat.search(query))
        assert len(uids) == 25, len(uids)
        search = median_ms(args.repeat, lambda: list(cat.search(query)))
        newest = median_ms(args.repeat, lambda: cat[-1])
        raw_search = raw_newest = None
        if store.engine.dialect.name == "sqlite":
            path = str(Path(tmp) / "runs10k" / "index.sqlite")
            conn = sqlite3.connect(path)
            raw_search = median_ms(
                args.repeat,
                lambda: parsed(
                    conn.execute(
                        "SELECT start_doc, stop_doc FROM runs WHERE plan_name = 'scan' AND "
                        "scan_id >= 4000 AND scan_id <= 4100 ORDER BY time DESC, uid"
                    )
                ),
            )
            raw_newest = median_ms(
                args.repeat,
                lambda: parsed(
                    conn.execute(
                        "SELECT start_doc, stop_doc FROM runs ORDER BY time DESC, uid LIMIT 1"
                    )
                ),
            )
        line("search (25 hits, uids in hand)", search, "raw sqlite3 + json.loads", raw_search, 20)
        line("cat[-1]", newest, "raw sqlite3 + json.loads", raw_newest, 10)

        # data summaries, as the store indexes them at stop (here all in one transaction)
        rng = random.Random(1)
        store.index_summaries(
            {
                uid: {
                    "primary": {
                        "theta": {
                            "min": low,
                            "max": low + 5.0,
                            "mean": low + 2.5,
                            "count": 11,
                            "sum": 11 * (low + 2.5),
                        }
                    }
                }
                for uid in (r.uid for r in store.runs())
                for low in (rng.uniform(-100, 100),)
            }
        )
        if store.engine.dialect.name == "postgresql":  # what autovacuum does after such updates
            with store.engine.connect() as sql:
                sql.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
        summary = Comparison("ge", "summary.primary.theta.max", 0.0) & Comparison(
            "lt", "summary.primary.theta.max", 1.0
        )
        hits = len(list(cat.search(summary)))
        summary_ms = median_ms(args.repeat, lambda: list(cat.search(summary)))
        raw_summary = scan_summary = None
        if store.engine.dialect.name == "sqlite":
            conn = sqlite3.connect(path)
            raw_summary = median_ms(
                args.repeat,
                lambda: parsed(
                    conn.execute(
                        "SELECT start_doc, stop_doc FROM runs WHERE uid IN (SELECT run_uid FROM "
                        "summary_values WHERE path = 'primary.theta.max' "
                        "AND value >= 0 AND value < 1) "
                        "ORDER BY time DESC, uid"
                    )
                ),
            )
            scan_summary = median_ms(
                args.repeat,
                lambda: parsed(
                    conn.execute(
                        "SELECT start_doc, stop_doc FROM runs WHERE "
                        "json_extract(summary_q, '$.primary.theta.max') >= 0 AND "
                        "json_extract(summary_q, '$.primary.theta.max') < 1 ORDER BY time DESC, uid"
                    )
                ),
            )
        line(
            f"summary.primary.theta.max in [0, 1) ({hits} hits)",
            summary_ms,
            "raw sqlite3 + json.loads",
            raw_summary,
            20,
        )
        if scan_summary is not None:
            print(
                f"  {'':<44} {'':>7}     (without the summary_values index, a json_extract "
                f"scan of every run: {scan_summary:.2f} ms)"
            )
        store.close()

        if args.index:
            print("  (100,000-run listing: skipped with --index; it needs its own empty index)")
            return
        store, added, took = build(None, Path(tmp) / "runs100k", 100_000)
        print(f"  index of {added:,} runs built in {took:.1f} s by bulk_insert_runs")
        cat = BrokerCatalog(store)
        page = median_ms(args.repeat, lambda: list(itertools.islice(iter(cat), 500)))
        first = median_ms(args.repeat, lambda: list(itertools.islice(iter(cat), 20)))
        count = median_ms(args.repeat, lambda: len(cat))
        conn = sqlite3.connect(str(Path(tmp) / "runs100k" / "index.sqlite"))
        raw_page = median_ms(
            args.repeat,
            lambda: parsed(
                conn.execute(
                    "SELECT start_doc, stop_doc FROM runs ORDER BY time DESC, uid LIMIT 500"
                )
            ),
        )
        raw_20 = median_ms(
            args.repeat,
            lambda: parsed(
                conn.execute(
                    "SELECT start_doc, stop_doc FROM runs ORDER BY time DESC, uid LIMIT 20"
                )
            ),
        )
        line("first page of the listing (500 runs)", page, "raw sqlite3 + json.loads", raw_page, 50)
        line("first 20 runs (the catalog reads 500)", first, "raw sqlite3 + json.loads", raw_20, 50)
        print(f"  {'len(cat)':<44} {count:7.2f} ms")
        store.close()
        print("  peers: databroker is not installed here: no peer figures")


if __name__ == "__main__":
    main()
