"""Annotations on the native store (SQLite): a tag search among 100,000 runs, and annotating one.

Setup (not timed): a native index of ``--runs`` runs (start and stop documents through
``bulk_insert_runs``); a fifth of them carry a public ``common`` tag and a rating, ``--tagged``
of them the tag ``x`` (written in one transaction with the same code a change runs).

Figures (median of ``--repeat``, after one warm-up):

* **search**: ``store.runs(parse_query('tags contains "x"'))`` (every match, newest first, as
  run records) and ``store.count(...)``, also bound to a viewer (what an access guard sends).
  Target: under 20 ms. The floor: the same number of runs found through an indexed column of
  the runs table (``store.runs(In("uid", <the matching uids>))``: the cost of reading and
  decoding those run records), and the bare SQL of the tag index (``SELECT run_uid ...``).
* **annotate**: ``run.tag(...)`` on a stored run, a new version each time (a write
  transaction: the annotation row, its tag and field rows, a history entry). Target: under
  5 ms. The floor: one SQLite write transaction inserting one row into a table of the same
  index (``BEGIN IMMEDIATE; INSERT; COMMIT`` with the same synchronous setting).

Run:  python benchmarks/annotations.py [--runs 100000] [--tagged 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import sqlalchemy as sa

from intake_broker.queries import In, Viewer, bind_viewer
from intake_broker.queries.expression import parse_query
from intake_broker.store.annotations import annotation_change, apply_change, finish_change
from intake_broker.store.contract import RunRecord
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore
from intake_broker_native.schema import write_transaction


def _median_ms(call, repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def build(folder: str, count: int, tagged: int) -> tuple[NativeStore, list[str]]:
    store = NativeStore(f"sqlite:///{folder}/index.sqlite", f"{folder}/data")
    t0 = 1_700_000_000.0
    uids = [str(uuid.uuid4()) for _ in range(count)]
    records = (
        RunRecord(
            {"uid": u, "time": t0 + i, "scan_id": i, "plan_name": "scan", "proposal_id": "p-1"},
            {
                "uid": str(uuid.uuid4()),
                "run_start": u,
                "time": t0 + i + 1,
                "exit_status": "success",
                "num_events": {},
            },  # fmt: skip
        )
        for i, u in enumerate(uids)
    )
    store.bulk_insert_runs(records)
    step = max(count // tagged, 1)
    x_uids = set(uids[::step][:tagged])
    with write_transaction(store.engine) as conn:
        for i, uid in enumerate(uids):
            tags = (["x"] if uid in x_uids else []) + (["common"] if i % 5 == 0 else [])
            if not tags:
                continue
            change = finish_change(
                uid,
                {
                    "author": "ada",
                    "visibility": "public",
                    "groups": [],
                    "stream": None,
                    "seq_range": None,
                    "add_tags": tags,
                    "remove_tags": [],
                    "set_fields": {"rating": i % 6},
                    "remove_fields": [],
                    "note": None,
                    "if_version": None,
                    "restore": None,
                    "viewer": None,
                    "proposals": [],
                },  # fmt: skip
            )
            store._write(conn, None, apply_change(uid, None, change))
    return store, sorted(x_uids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tagged", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        store, x_uids = build(folder, args.runs, args.tagged)
        print(
            f"setup: {args.runs:,} runs, {len(x_uids)} tagged x ({time.perf_counter() - t0:.0f} s)"
        )
        query = parse_query('tags contains "x"')
        bound = bind_viewer(query, Viewer("bob", proposals=("p-2",)))
        assert len(store.runs(query)) == len(x_uids) == store.count(bound)
        same = In("uid", x_uids)
        search = _median_ms(lambda: store.runs(query), args.repeat)
        search_bound = _median_ms(lambda: store.runs(bound), args.repeat)
        count = _median_ms(lambda: store.count(query), args.repeat)
        floor = _median_ms(lambda: store.runs(same), args.repeat)
        sql = sa.text("SELECT annotations.run_uid FROM annotation_tags JOIN annotations ON "
                      "annotations.id = annotation_tags.annotation_id WHERE tag = 'x'")  # fmt: skip

        def bare() -> None:
            with store.engine.connect() as conn:
                conn.execute(sql).all()

        bare_ms = _median_ms(bare, args.repeat)
        print(f'tags contains "x" ({len(x_uids)} of {args.runs:,} runs):')
        print(f"  runs():  {search:7.2f} ms   (target < 20 ms)   {search / floor:.2f}x the floor")
        print(f"  bound to a viewer: {search_bound:7.2f} ms")
        print(f"  count(): {count:7.2f} ms")
        print(f"  floor, the same runs by uid (indexed column): {floor:7.2f} ms")
        print(f"  bare SQL of the tag index: {bare_ms:7.2f} ms")

        run = BrokerCatalog(store)[x_uids[0]]
        counter = iter(range(10**9))
        annotate = _median_ms(lambda: run.tag(f"t{next(counter) % 50}", visibility="private"),
                              args.repeat)  # fmt: skip
        change = annotation_change(store, run.uid, author="ada", fields={"k": 1})
        versions = iter(range(2, 10**9))

        def change_only() -> None:
            store.change_annotation(run.uid, {**change, "set_fields": {"k": next(versions)}})

        change_ms = _median_ms(change_only, args.repeat)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_floor (k INTEGER, v TEXT)")
            conn.commit()

        def floor_write() -> None:
            with write_transaction(store.engine) as conn:
                conn.exec_driver_sql("INSERT INTO bench_floor VALUES (1, 'x')")

        write_floor = _median_ms(floor_write, args.repeat)
        print("annotating one run:")
        print(f"  run.tag(...):            {annotate:6.2f} ms  (target < 5 ms)  "
              f"{annotate / write_floor:.1f}x the floor")  # fmt: skip
        print(f"  store.change_annotation: {change_ms:6.2f} ms  {change_ms / write_floor:.1f}x")
        print(f"  floor, one write transaction of one row: {write_floor:6.2f} ms")
        store.close()


if __name__ == "__main__":
    main()
