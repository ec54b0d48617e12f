"""Reading: few queries per run whatever its streams, chunks from seq_num ranges (also for runs
without a stop and with gaps), columns for a subset of keys, old databases, replay order."""

from __future__ import annotations

import event_model
import numpy as np
import pymongo
import pytest
from pymongo import monitoring

from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_mongo import MongoNormalizedCatalog, MongoStore


class Commands(monitoring.CommandListener):
    """Counts the commands a client sends (reads: find, aggregate, getMore, ...)."""

    def __init__(self):
        self.names: list[str] = []
        self.event_finds = 0

    def started(self, event):
        if event.command_name not in ("endSessions", "hello", "isMaster", "ping"):
            self.names.append(event.command_name)
        if event.command_name == "find" and event.command.get("find") == "event":
            self.event_finds += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def many_streams(streams: int, events: int = 4, stop: bool = True) -> list:
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "count"})
    docs = [("start", bundle.start_doc)]
    for s in range(streams):
        desc = bundle.compose_descriptor(
            name=f"stream{s}", data_keys={"x": {"dtype": "number", "shape": [], "source": "x"}}
        )
        docs.append(("descriptor", desc.descriptor_doc))
        for i in range(events):
            docs.append(
                ("event", desc.compose_event(data={"x": float(i + s)}, timestamps={"x": 1.0}))
            )
    if stop:
        docs.append(("stop", bundle.compose_stop()))
    return docs


@pytest.fixture
def counted(database_uri):
    """A store over a client whose commands are counted."""
    listener = Commands()
    uri = database_uri()
    client = pymongo.MongoClient(uri, event_listeners=[listener])
    store = MongoStore(client.get_default_database())
    yield store, listener
    client.close()


@pytest.mark.parametrize("stop", [True, False])
def test_loading_a_run_costs_a_few_queries_whatever_its_streams(counted, stop):
    store, listener = counted
    costs = []
    for streams in (1, 8):
        docs = many_streams(streams, stop=stop)
        insert_all(store, docs)
        listener.names.clear()
        run = BrokerCatalog(store)[docs[0][1]["uid"]]
        assert len(list(run)) == streams
        opened = len(listener.names)
        layouts = [run[name].layout.chunks for name in run]  # every stream's chunk plan
        assert all(sum(c.rows for c in chunks) == 4 for chunks in layouts)
        costs.append((opened, len(listener.names) - opened))
    assert costs[0] == costs[1]  # the same for 1 stream and for 8
    opened, planned = costs[0]
    assert opened <= 3  # start, stop, descriptors
    assert planned <= (2 if stop else 3)  # descriptors, stop (+ one aggregation without num_events)


def test_reading_a_stream_reads_pages_not_events(counted):
    store, listener = counted
    docs = factories.scalar_run(n=3000, page=True)
    insert_all(store, docs)
    run = BrokerCatalog(MongoStore(store._databases["mds"], chunk_rows=1000, read_ahead=0))[-1]
    listener.names.clear()
    ds = run.primary.read()
    assert ds.sizes["time"] == 3000
    finds = [n for n in listener.names if n in ("find", "getMore")]
    assert len(finds) <= 1 + 3 * 2  # the time index, then a find (+ getMore) per 1000 events


def test_a_small_finished_stream_is_read_in_one_pass(counted):
    store, listener = counted
    docs = factories.scalar_run(n=50, stop=False)
    insert_all(store, docs)
    listener.event_finds = 0
    first = BrokerCatalog(store)[-1].primary.read()
    assert listener.event_finds == 1  # read() takes the time index with the values: one pass
    start = docs[0][1]
    store.insert(
        "stop",
        {
            "uid": f"{start['uid']}-stop",
            "run_start": start["uid"],
            "time": start["time"] + 100,
            "exit_status": "success",
            "reason": "",
            "num_events": {"primary": 50, "baseline": 2},
        },
    )
    listener.event_finds = 0
    run = BrokerCatalog(store)[-1]
    assert run.complete
    again = run.primary.read()
    assert listener.event_finds == 1  # finished and small: one pass, the rest from memory
    assert again.identical(first)
    assert run.primary.to_dask().load().identical(first)
    assert listener.event_finds == 1
    assert run.primary.timestamps.read()["det"].values.tolist() == first.time.values.tolist()


def test_incomplete_run_with_gaps_in_seq_num(store):
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"dtype": "integer", "shape": [], "source": "x"}}
    )
    insert_all(store, [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)])
    seq_nums = [1, 2, 3, 7, 8, 20, 21, 22, 23, 40]
    for s in seq_nums:
        event = desc.compose_event(data={"x": s * 10}, timestamps={"x": 1.0}, seq_num=s)
        store.insert("event", event)
    small = MongoStore(*(loc.uri for loc in store.locations), chunk_rows=5)
    try:
        chunks = small.event_chunks(desc.descriptor_doc["uid"])
        assert sum(c.rows for c in chunks) == len(seq_nums)
        for chunk in chunks:
            got = small.read_events(chunk.descriptor, seq_range=(chunk.seq_start, chunk.seq_stop))
            assert len(got) == chunk.rows
        run = BrokerCatalog(small)[-1]
        assert not run.complete
        ds = run.primary(seq_num=True).read()
        assert ds["x"].values.tolist() == [s * 10 for s in seq_nums]
        assert ds["seq_num"].values.tolist() == seq_nums
        assert run.primary.to_dask()["x"].values.tolist() == [s * 10 for s in seq_nums]
    finally:
        small.close()


def test_a_stop_undercounting_its_events_still_gives_whole_chunks(store):
    docs = factories.scalar_run(n=10)
    docs[-1][1]["num_events"] = {"primary": 8, "baseline": 2}  # two events too few
    insert_all(store, docs)
    ds = BrokerCatalog(store)[-1].primary(seq_num=True).read()
    assert ds["seq_num"].values.tolist() == list(range(1, 9))


def test_reading_some_keys_reads_only_those(store):
    docs = factories.scalar_run(n=5)
    insert_all(store, docs)
    primary = docs[2][1]["uid"]
    columns = store.read_events(primary, fields=["count", "nope"], uids=True)
    assert set(columns.data) == set(columns.timestamps) == {"count"}
    assert columns.data["count"].tolist() == [0, 10, 20, 30, 40]
    assert columns.data["count"].dtype == np.int64
    events = [d for n, d in docs if n == "event" and d["descriptor"] == primary]
    assert columns.uid.tolist() == [e["uid"] for e in events]


def test_old_databases_resources_without_run_start_and_foreign_ids(database_uri):
    """Resources without ``run_start`` (found through the events' datum ids) and documents
    whose ``_id`` is not an ObjectId (replayed in time order)."""
    docs = factories.asset_run()
    mds = database_uri()
    client = pymongo.MongoClient(mds)
    db = client.get_default_database()
    collections = {
        "start": "run_start",
        "stop": "run_stop",
        "descriptor": "event_descriptor",
        "event": "event",
        "resource": "resource",
        "datum": "datum",
    }
    for name, doc in docs:
        if name in ("stream_resource", "stream_datum"):
            continue
        rows = event_model.unpack_datum_page(doc) if name == "datum_page" else [doc]
        for row in rows:
            row = {k: v for k, v in row.items() if not (name == "resource" and k == "run_start")}
            row["_id"] = row.get("uid") or row["datum_id"]  # not ObjectIds
            db[collections.get(name, "datum")].insert_one(row)
    client.close()
    cat = MongoNormalizedCatalog(mds)
    try:
        run = cat[-1]
        got = list(run.documents())
        assert got[0][0] == "start" and got[-1][0] == "stop"
        expected = [
            (n, {k: v for k, v in d.items() if (n, k) != ("resource", "run_start")})
            for n, d in docs
            if n not in ("stream_resource", "stream_datum")
        ]
        assert _identified(got) == _identified(expected)
        resource = next(d for n, d in docs if n == "resource")
        assets = cat.store.run_assets(run.uid)
        assert set(assets.resources) == {resource["uid"]} and len(assets.datums) == 3
        times = [
            d["time"][0] if n == "event_page" else d["time"]
            for n, d in got
            if n in ("descriptor", "event_page")
        ]
        assert times == sorted(times)
    finally:
        cat.store.close()


def _identified(docs) -> dict:
    """Documents (pages unpacked, ``filled`` dropped) by kind and uid, to compare as sets."""
    out = {}
    for name, doc in docs:
        if name in ("event_page", "event"):
            rows = event_model.unpack_event_page(doc) if name == "event_page" else [doc]
            out.update({("event", r["uid"]): {**r, "filled": {}} for r in rows})
        elif name in ("datum_page", "datum"):
            rows = event_model.unpack_datum_page(doc) if name == "datum_page" else [doc]
            out.update({("datum", r["datum_id"]): dict(r) for r in rows})
        else:
            out[(name, doc["uid"])] = doc
    return out


def test_replay_interleaves_streams_as_written(store, bluesky_runs):
    docs = bluesky_runs["grid_scan"]
    insert_all(store, docs)
    got = list(store.documents(docs[0][1]["uid"]))
    assert_same_documents(got, docs)
    assert all(len(d["uid"]) >= 1 for n, d in got if n == "event_page")
