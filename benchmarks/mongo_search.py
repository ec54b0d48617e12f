"""W2 on MongoDB: search among 10,000 runs, and ``cat[-1]``.

10,000 runs (start, descriptor, one event, stop) are written in databroker's normalized layout
with suitcase-mongo's indexes. Each catalog operation is timed beside the limit we can measure
here: the plain pymongo query a client would send for the same answer (start documents only,
no stop documents), against the same server in the same run -- for a search, the ``find`` of
its first page sorted newest first; for ``cat[-1]``, the newest start document; for a stop
key, the stop documents' ``find`` and the start documents' ``$in``; for a range of a data
summary (kept for every run by ``index_summaries``), the ``find`` on our summary-values index
and the start documents' ``$in``. Peers (databroker 1.2.5)
are added with ``--peer-python``.

Run:  python benchmarks/mongo_search.py [--uri mongodb://host:27017] [--runs 10000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import textwrap
import time
import uuid

import event_model
import pymongo
from mongo_server import PEERS_NOTE, mongo_server
from read_stream import best_of

from intake_broker.queries import Comparison, Eq, TimeRange
from intake_broker_mongo import MongoNormalizedCatalog, create_indexes

PLANS = ("scan", "count", "grid_scan", "rel_scan")


def write_runs(db: pymongo.database.Database, count: int, start_time: float) -> list[str]:
    """``count`` small runs, one minute apart, straight into the layout's collections."""
    create_indexes(db, db)
    uids, batch = [], {"run_start": [], "run_stop": [], "event_descriptor": [], "event": []}
    for i in range(count):
        t = start_time + 60 * i
        bundle = event_model.compose_run(
            time=t,
            metadata={
                "scan_id": i + 1,
                "plan_name": PLANS[i % len(PLANS)],
                "sample": f"s{i % 50}",
                "proposal": 1000 + i // 500,
                "detectors": ["det"],
                "motors": ["motor"],
            },
        )
        desc = bundle.compose_descriptor(
            name="primary",
            time=t + 0.1,
            data_keys={"det": {"dtype": "number", "shape": [], "source": "SIM:det"}},
        )
        event = desc.compose_event(data={"det": float(i)}, timestamps={"det": t + 1}, time=t + 1)
        stop = bundle.compose_stop(time=t + 30, exit_status="fail" if i % 97 == 0 else "success")
        uids.append(bundle.start_doc["uid"])
        batch["run_start"].append(dict(bundle.start_doc))
        batch["event_descriptor"].append(dict(desc.descriptor_doc))
        batch["event"].append(dict(event))
        batch["run_stop"].append(dict(stop))
        if len(batch["run_start"]) == 1000 or i == count - 1:
            for name, docs in batch.items():
                db[name].insert_many(docs)
                docs.clear()
    return uids


PEER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    uri, repeat = sys.argv[1], int(sys.argv[2])
    import databroker
    from databroker._drivers.mongo_normalized import BlueskyMongoCatalog
    def best(func):
        times = []
        for _ in range(repeat):
            t = time.perf_counter(); func(); times.append(time.perf_counter() - t)
        return min(times)
    cat = BlueskyMongoCatalog(uri, uri)
    out = {"version": databroker.__version__,
           "search": best(lambda: list(zip(range(500), cat.search({"plan_name": "scan"})))),
           "last": best(lambda: cat[-1])}
    print(json.dumps(out))
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a MongoDB server (default: start SecantusDB here)")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--peer-python",
        action="append",
        default=[],
        help="a Python with databroker 1.2 installed (repeatable)",
    )
    args = parser.parse_args()
    with mongo_server(args.uri) as (server, description):
        name = f"bench-w2-{uuid.uuid4().hex[:8]}"
        client = pymongo.MongoClient(server)
        db = client[name]
        now = time.time()
        start_time = now - 60 * args.runs  # the newest run started a minute ago
        written = time.perf_counter()
        uids = write_runs(db, args.runs, start_time)
        print(
            f"W2: search among {args.runs:,} runs, best of {args.repeat}; server: "
            f"{description} (written in {time.perf_counter() - written:.1f} s)"
        )
        cat = MongoNormalizedCatalog(uri=f"{server}/{name}")
        runs = db["run_start"]
        try:
            newest = [("time", -1)]
            first_page = 500
            cases = [
                ("cat[-1]", lambda: cat[-1], lambda: runs.find_one({}, sort=newest)),
                ("cat[uid]", lambda: cat[uids[1234]], lambda: runs.find_one({"uid": uids[1234]})),
                (
                    "cat[scan_id]",
                    lambda: cat[4321],
                    lambda: runs.find_one({"scan_id": 4321}, sort=newest),
                ),
                (
                    "cat[uid[:8]] (partial uid)",
                    lambda: cat[uids[777][:8]],
                    lambda: list(runs.find({"uid": {"$regex": f"^{uids[777][:8]}"}}).limit(2)),
                ),
            ]
            searches = [
                ("plan_name == 'scan'", Eq("plan_name", "scan"), {"plan_name": "scan"}),
                (
                    "scan_id > 9000 & plan",
                    Comparison("gt", "scan_id", args.runs - 1000) & Eq("plan_name", "count"),
                    {"scan_id": {"$gt": args.runs - 1000}, "plan_name": "count"},
                ),
                (
                    "TimeRange (last 2 days)",
                    TimeRange(since=now - 2 * 86400),
                    {"time": {"$gte": now - 2 * 86400}},
                ),
                ("stop.exit_status == 'fail'", Eq("stop.exit_status", "fail"), "stop"),
            ]
            stops = db["run_stop"]

            def stop_join(limit):
                failed = [s["run_start"] for s in stops.find({"exit_status": "fail"})]
                return list(runs.find({"uid": {"$in": failed}}, sort=newest, limit=limit))

            for label, query, mongo in searches:

                def search(query=query):
                    return list(itertools.islice(cat.search(query), first_page))

                def search_last(query=query):
                    return cat.search(query)[-1]

                if mongo == "stop":
                    page = (lambda: stop_join(first_page), lambda: stop_join(1))
                else:
                    page = (
                        lambda mongo=mongo: list(runs.find(mongo, sort=newest, limit=first_page)),
                        lambda mongo=mongo: runs.find_one(mongo, sort=newest),
                    )
                cases.append((f"search {label}: first {first_page} uids", search, page[0]))
                cases.append((f"search {label}: [-1]", search_last, page[1]))
            # data summaries, as the store keeps them at stop (here for all runs at once)
            rng = random.Random(1)
            cat.store.index_summaries(
                {
                    uid: {
                        "primary": {
                            "det": {
                                "min": low,
                                "max": low + 5.0,
                                "mean": low + 2.5,
                                "sum": low + 2.5,
                                "count": 1,
                            }
                        }
                    }
                    for uid in uids
                    for low in (rng.uniform(-100, 100),)
                }
            )
            summary = Comparison("ge", "summary.primary.det.max", 0.0) & Comparison(
                "lt", "summary.primary.det.max", 1.0
            )
            values = db["intake_broker_summary_values"]

            def summary_floor():
                found = [
                    v["run_start"]
                    for v in values.find(
                        {"path": "primary.det.max", "value": {"$gte": 0.0, "$lt": 1.0}}
                    )
                ]
                return list(runs.find({"uid": {"$in": found}}, sort=newest))

            cases.append(
                (
                    f"search summary.primary.det.max in [0, 1) ({len(cat.search(summary))} runs)",
                    lambda: list(cat.search(summary)),
                    summary_floor,
                )
            )
            cases.append(
                (
                    "len(cat.search(plan_name == 'scan'))",
                    lambda: len(cat.search(Eq("plan_name", "scan"))),
                    lambda: runs.count_documents({"plan_name": "scan"}),
                )
            )
            print(f"  {'operation':<50} {'ours':>10}   {'plain pymongo':>13}   ratio")
            for label, ours, limit in cases:
                ours()  # warm: first use of the client
                t_ours = best_of(args.repeat, ours)
                t_limit = best_of(args.repeat, limit)
                print(
                    f"  {label:<50} {t_ours * 1e3:7.1f} ms   {t_limit * 1e3:10.1f} ms"
                    f"   {t_ours / t_limit:5.2f}x"
                )
            for python in args.peer_python:
                result = subprocess.run(
                    [python, "-c", PEER_SCRIPT, f"{server}/{name}", str(args.repeat)],
                    capture_output=True,
                    text=True,
                )
                if result.returncode:
                    print(f"  databroker via {python}: failed: {result.stderr[-300:]}")
                    continue
                found = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"  databroker {found['version']}: search first {first_page}: "
                    f"{found['search'] * 1e3:.1f} ms, cat[-1]: {found['last'] * 1e3:.1f} ms"
                )
            counts = best_of(args.repeat, cat.store._summaries._unlisted)
            print(
                f"  (of a summary search, {counts * 1e3:.1f} ms are the two estimated counts "
                "that tell whether other tools wrote runs without summaries: O(1) metadata in"
                " mongod, a scan in SecantusDB; a catalog search asks twice: len and page)"
            )
            if not args.peer_python:
                print(PEERS_NOTE)
        finally:
            cat.store.close()
            client.drop_database(name)
            client.close()


if __name__ == "__main__":
    main()
