"""W1 on MongoDB: read a 100,000-event x 10-field stream with ``run.primary.read()``.

The run is written by our store in databroker's normalized layout (one MongoDB document per
event, as suitcase-mongo writes them). Printed beside each other, measured in the same run:

* ours: ``run.primary.read()`` through a fresh catalog (nothing cached): the stream is small
  and its run finished, so the store reads it whole in one pass (read-ahead); the same with
  ``read_ahead=0``: the core's two passes (its ``time`` index, then the values); and the
  store's bare column read (``store.read_events``);
* the limit: the server shipping the same event documents as raw BSON with nothing decoded
  (``find_raw_batches``), and that plus the plainest decoding (``bson.decode_all``);
* peers: databroker 1.2.5 / 2.0.2 on the same database when ``--peer-python`` is given.

Run:  python benchmarks/mongo_read_stream.py [--uri mongodb://host:27017] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import textwrap
import time
import uuid

import bson
import numpy as np
import pymongo
from mongo_server import PEERS_NOTE, mongo_server
from read_stream import best_of, make_run

from intake_broker_mongo import MongoNormalizedCatalog, MongoStore


def report(label: str, seconds: float, limit: float | None = None, what: str = "") -> None:
    ratio = f"   {seconds / limit:5.1f}x {what}" if limit else ""
    print(f"  {label:<58} {seconds * 1e3:9.1f} ms{ratio}")


PEER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    mds, assets, uid, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import databroker
    out = {"version": databroker.__version__}
    try:
        from databroker._drivers.mongo_normalized import BlueskyMongoCatalog
        def read():
            BlueskyMongoCatalog(mds, assets)[uid].primary.read()
    except ImportError:
        from databroker.mongo_normalized import MongoAdapter
        from tiled.client import from_tree
        def read():
            from_tree(MongoAdapter.from_uri(mds, asset_registry_uri=assets))[uid]["primary"].read()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); read(); times.append(time.perf_counter() - t)
    out["read"] = min(times)
    print(json.dumps(out))
""")


def peer(python: str, mds: str, assets: str, uid: str, repeat: int) -> dict:
    result = subprocess.run(
        [python, "-c", PEER_SCRIPT, mds, assets, uid, str(repeat)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a MongoDB server (default: start SecantusDB here)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--peer-python",
        action="append",
        default=[],
        help="a Python with databroker installed (repeatable)",
    )
    args = parser.parse_args()
    with mongo_server(args.uri) as (server, description):
        name = f"bench-w1-{uuid.uuid4().hex[:8]}"
        mds, assets = f"{server}/{name}-mds", f"{server}/{name}-assets"
        print(
            f"W1: {args.events:,} events x {args.fields} float64 fields, best of "
            f"{args.repeat}; server: {description}"
        )
        writer = MongoStore(mds, assets, validate=False)
        start = time.perf_counter()
        docs, _ = make_run(args.events, args.fields)
        for doc_name, doc in docs:
            writer.insert(doc_name, doc)
            if doc_name == "start":
                uid = doc["uid"]
        print(f"  (written in {time.perf_counter() - start:.1f} s through MongoStore.insert)")
        descriptor = writer.descriptors(uid)[0]["uid"]
        events = pymongo.MongoClient(server)[f"{name}-mds"]["event"]
        try:

            def raw():
                return list(events.find_raw_batches({"descriptor": descriptor}, batch_size=100_000))

            def raw_decoded():
                docs = [d for batch in raw() for d in bson.decode_all(batch)]
                return {k: np.array([d["data"][k] for d in docs]) for k in docs[0]["data"]}

            def ours_read(**options):
                cat = MongoNormalizedCatalog(mds, assets, **options)
                try:
                    return cat[uid].primary.read()
                finally:
                    cat.store.close()

            def ours_columns():
                store = MongoStore(mds, assets)
                try:
                    return store.read_events(descriptor)
                finally:
                    store.close()

            ds = ours_read()
            assert ds.sizes["time"] == args.events
            limit = best_of(args.repeat, raw)
            report("limit: server ships the events, raw BSON (find_raw_batches)", limit)
            report(
                "limit + bson.decode_all + numpy columns",
                best_of(args.repeat, raw_decoded),
                limit,
                "the limit",
            )
            report(
                "ours: run.primary.read() (fresh catalog)",
                best_of(args.repeat, ours_read),
                limit,
                "the limit",
            )
            report(
                "ours: run.primary.read(), read_ahead=0 (two passes)",
                best_of(args.repeat, lambda: ours_read(read_ahead=0)),
                limit,
                "the limit",
            )
            report(
                "ours: store.read_events() (the whole stream, one find)",
                best_of(args.repeat, ours_columns),
                limit,
                "the limit",
            )
            for python in args.peer_python:
                found = peer(python, mds, assets, uid, args.repeat)
                if "read" in found:
                    report(
                        f"databroker {found['version']}: run.primary.read()",
                        found["read"],
                        limit,
                        "the limit",
                    )
                else:
                    print(f"  databroker via {python}: failed: {found['error']}")
            if not args.peer_python:
                print(PEERS_NOTE)
        finally:
            writer.close()
            events.database.client.drop_database(f"{name}-mds")
            events.database.client.drop_database(f"{name}-assets")
            events.database.client.close()


if __name__ == "__main__":
    main()
