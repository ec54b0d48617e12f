"""Queries answered by MongoDB agree with the generic evaluator, on every path: a filter on
run_start, a semi-join through run_stop, a $lookup join, and the Python fallback."""

from __future__ import annotations

import dataclasses
import random

import event_model
import pymongo
import pymongo.errors
import pytest
from pymongo.collection import Collection

from intake_broker.queries import (
    And,
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    Not,
    NotEq,
    NotIn,
    Or,
    PartialUID,
    Query,
    Regex,
    TimeRange,
    register_query,
)
from intake_broker.store import RunRecord, select_runs
from intake_broker_mongo import MongoStore, to_mongo_normalized
from intake_broker_mongo import search as search_module
from intake_broker_mongo.queries import STOP_FIELD, flatten, plan

T0 = 1_700_000_000.0


@register_query("mongo_test_length_at_least")
@dataclasses.dataclass(frozen=True)
class LengthAtLeast(Query):
    """A query type no translator knows: the store must evaluate it in Python."""

    key: str
    length: int

    def match(self, record):
        value = record["start"].get(self.key)
        return isinstance(value, list) and len(value) >= self.length


def _records(count: int = 48) -> list[RunRecord]:
    rng = random.Random(7)
    records = []
    for i in range(count):
        metadata = {"scan_id": i % 20, "plan_name": rng.choice(["scan", "count", "Scan", None])}
        if i % 5:
            metadata["sample"] = rng.choice(
                [
                    {"name": "LaB6", "tags": ["cal", "std"]},
                    {"name": "Si"},
                    "bare string",
                    {"name": None},
                ]
            )
        if i % 3:
            metadata["motors"] = rng.sample(["th", "tth", "x", "y"], rng.randint(0, 3))
        if i % 4 == 0:
            metadata["flag"] = rng.choice([True, False, 0, 1])
        if i % 7 == 0:
            metadata["value"] = rng.choice([None, 2.5, "2.5", [1, 2]])
        bundle = event_model.compose_run(
            uid=f"{i:02x}{rng.getrandbits(32):08x}-run",
            time=T0 + 60 * i + rng.random(),
            metadata=metadata,
        )
        stop = None
        if i % 6:
            stop = bundle.compose_stop(
                time=T0 + 60 * i + 30,
                exit_status=rng.choice(["success", "fail", "abort"]),
                reason=rng.choice(["", "user", "beam dump"]),
            )
            stop["num_events"] = {"primary": rng.randint(0, 5)}
        records.append(RunRecord(bundle.start_doc, stop))
    return records


QUERIES: list[Query] = [
    Eq("plan_name", "scan"),
    Eq("plan_name", None),
    NotEq("plan_name", None),
    NotEq("plan_name", "scan"),
    Eq("sample.name", "LaB6"),
    Eq("sample", "bare string"),
    Eq("sample.name", None),
    Eq("sample.tags", "std"),
    Eq("value", [1, 2]),
    Eq("flag", True),
    Eq("flag", 1),
    Eq("value", 2.5),
    Comparison("gt", "scan_id", 10),
    Comparison("le", "scan_id", 3),
    Comparison("ge", "value", 2),
    Comparison("lt", "plan_name", "d"),
    Comparison("gt", "value", "1"),
    In("plan_name", ["count", None]),
    In("motors", ["th", "x"]),
    NotIn("scan_id", [1, 2, 3]),
    NotIn("plan_name", [None]),
    Regex("plan_name", "^sc"),
    Regex("plan_name", "^sc", case_sensitive=False),
    Regex("sample.name", "i$"),
    Contains("motors", "tth"),
    Contains("sample.tags", "cal"),
    KeyPresent("sample"),
    KeyPresent("sample.name", present=False),
    KeyPresent("value"),
    TimeRange(since=T0 + 600, until=T0 + 1800),
    TimeRange(until=T0 + 300),
    PartialUID("0"),
    PartialUID("1a"),
    ~Eq("plan_name", "scan"),
    Eq("plan_name", "count") | Comparison("gt", "scan_id", 15),
    Eq("plan_name", "scan") & Contains("motors", "x"),
    And(()),
    Or(()),
    Not(And((Eq("plan_name", "scan"), Comparison("lt", "scan_id", 5)))),
    # stop keys: semi-join (a missing stop cannot match) ...
    Eq("stop.exit_status", "success"),
    In("stop.exit_status", ["fail", "abort"]),
    Comparison("ge", "stop.num_events.primary", 3),
    KeyPresent("stop.reason"),
    Regex("stop.reason", "dump") & Eq("plan_name", "count"),
    Eq("stop.exit_status", "fail") & TimeRange(since=T0 + 900),
    # ... and the join (a missing stop matches, or start and stop mixed)
    KeyPresent("stop.exit_status", present=False),
    NotEq("stop.exit_status", "success"),
    ~Eq("stop.exit_status", "fail"),
    Eq("plan_name", "scan") | Eq("stop.exit_status", "abort"),
    Eq("stop.reason", "user") | KeyPresent("stop", present=False),
    NotIn("stop.exit_status", ["success"]) & Comparison("lt", "scan_id", 12),
    Eq("stop.exit_status", "fail") & (Eq("plan_name", "scan") | Eq("stop.reason", "user")),
    # untranslatable: evaluated in Python over the translatable part's candidates
    LengthAtLeast("motors", 2),
    LengthAtLeast("motors", 1) & Eq("stop.exit_status", "success"),
]


@pytest.fixture(scope="module")
def records():
    return _records()


@pytest.fixture(scope="module")
def query_database(mongo_server, records):
    """One database of the records for every test here (the tests only read)."""
    uri = f"{mongo_server}/test-queries-{random.getrandbits(48):012x}"
    store = MongoStore(uri)
    for record in reversed(records):
        store.insert("start", record.start)
        if record.stop is not None:
            store.insert("stop", record.stop)
    store.close()
    yield uri
    client = pymongo.MongoClient(mongo_server)
    client.drop_database(uri.rsplit("/", 1)[1])
    client.close()


@pytest.fixture
def filled(query_database):
    store = MongoStore(query_database)
    yield store
    store.close()


def _uids(found) -> list[str]:
    return [r.uid for r in found]


@pytest.mark.parametrize("query", QUERIES, ids=[repr(q)[:60] for q in QUERIES])
def test_store_agrees_with_the_generic_evaluator(filled, records, query):
    expected = select_runs(records, query)
    assert _uids(filled.runs(query)) == _uids(expected)
    assert filled.count(query) == len(expected)
    assert _uids(filled.runs(query, skip=2, limit=3)) == _uids(expected)[2:5]
    ascending = [("scan_id", 1), ("time", -1)]
    assert _uids(filled.runs(query, sort=ascending, limit=7)) == _uids(
        select_runs(records, query, ascending, limit=7)
    )
    for found, want in zip(filled.runs(query), expected, strict=True):
        assert found.start == want.start and found.stop == want.stop


@pytest.mark.parametrize(
    "query",
    [Eq("stop.exit_status", "success"), ~Eq("stop.exit_status", "fail"), Eq("plan_name", "scan")],
)
def test_sorting_on_stop_keys(filled, records, query):
    for sort in ([("stop.time", -1)], [("stop.exit_status", 1), ("time", 1)]):
        assert _uids(filled.runs(query, sort=sort, skip=1, limit=9)) == _uids(
            select_runs(records, query, sort, skip=1, limit=9)
        )


@pytest.mark.parametrize("path", ["no_aggregation", "small_semi_join", "no_recent_first"])
def test_every_fallback_gives_the_same_answers(filled, records, monkeypatch, path):
    if path == "no_aggregation":  # a server without $lookup: evaluate in Python
        aggregate = Collection.aggregate

        def refuse(self, pipeline, *args, **kwargs):
            if any("$lookup" in stage for stage in pipeline):
                raise pymongo.errors.OperationFailure("Unrecognized pipeline stage: '$lookup'")
            return aggregate(self, pipeline, *args, **kwargs)

        monkeypatch.setattr(Collection, "aggregate", refuse)
    elif path == "small_semi_join":  # too many stop matches to list: join them instead
        monkeypatch.setattr(search_module, "SEMI_JOIN_LIMIT", 1)
    else:
        filled.recent_first = False
    for query in QUERIES:
        expected = select_runs(records, query)
        assert _uids(filled.runs(query, limit=5)) == _uids(expected)[:5], query
        assert _uids(filled.runs(query)) == _uids(expected), query
        assert filled.count(query) == len(expected), query


def test_newest_first_pages_reach_back_past_recent_windows(filled, records):
    # every run is years old: the recent windows are empty and must widen to the whole range
    assert _uids(filled.runs(limit=1)) == [records[-1].uid]
    assert _uids(filled.runs(Eq("plan_name", "count"), skip=3, limit=4)) == _uids(
        select_runs(records, Eq("plan_name", "count"), skip=3, limit=4)
    )


def test_translations():
    assert to_mongo_normalized(PartialUID("ab1")) == {"uid": {"$gte": "ab1", "$lt": "ab2"}}
    assert flatten(
        {
            "$and": [
                {"plan_name": "scan"},
                {"time": {"$gte": 1}},
                {"time": {"$lt": 2}},
                {"uid": {"$in": ["a"]}},
            ]
        }
    ) == {"uid": {"$in": ["a"]}, "time": {"$gte": 1, "$lt": 2}, "plan_name": "scan"}
    assert flatten({"$and": [{"x": {"$regex": "a", "$options": "i"}}, {"x": {"$regex": "b"}}]}) == {
        "x": {"$regex": "a", "$options": "i"},
        "$and": [{"x": {"$regex": "b"}}],
    }
    found = plan(Eq("plan_name", "scan") & Eq("stop.exit_status", "success"), [("time", -1)])
    assert found.start_filter == {"plan_name": {"$eq": "scan"}}
    assert found.stop_filter == {"exit_status": {"$eq": "success"}}
    assert not found.needs_join and found.residual is None
    joined = plan(~Eq("stop.exit_status", "success"), [("stop.time", 1)])
    assert joined.needs_join
    assert joined.joined_filter == {"$nor": [{f"{STOP_FIELD}.exit_status": {"$eq": "success"}}]}
    assert joined.sort == [(f"{STOP_FIELD}.time", 1), ("uid", 1)]
    assert plan(LengthAtLeast("motors", 1), [("time", -1)]).residual is not None


def test_recent_windows_give_the_same_pages(database_uri):
    """Runs of the last days: newest-first pages come from widening windows (start times,
    and stop times for stop keys) and must equal the evaluator's pages."""
    import time

    rng = random.Random(3)
    now = time.time()
    records = []
    for i in range(60):
        t = now - 1200 * i - rng.random() * 600
        bundle = event_model.compose_run(
            time=t, metadata={"scan_id": i, "plan_name": rng.choice(["scan", "count"])}
        )
        stop = bundle.compose_stop(
            time=t + rng.choice([5, 4000, 90000]), exit_status=rng.choice(["success", "fail"])
        )
        records.append(RunRecord(bundle.start_doc, stop if i % 9 else None))
    store = MongoStore(database_uri())
    try:
        for record in records:
            store.insert("start", record.start)
            if record.stop is not None:
                store.insert("stop", record.stop)
        for query in (
            None,
            Eq("plan_name", "scan"),
            Eq("stop.exit_status", "fail"),
            Eq("stop.exit_status", "success") & Eq("plan_name", "count"),
            TimeRange(since=now - 86400),
        ):
            for skip, limit in ((0, 1), (2, 3), (0, 10), (5, 30)):
                assert _uids(store.runs(query, skip=skip, limit=limit)) == _uids(
                    select_runs(records, query, skip=skip, limit=limit)
                ), (query, skip, limit)
    finally:
        store.close()


# -- data summaries: the summary index against the evaluator -------------------------------

STATS = [
    0,
    1,
    2.5,
    -3,
    1e20,
    float("inf"),
    True,
    False,
    None,
    "a",
    2**60,
    [1, 5],
    [],
    [2.5, "a"],
    {"x": 1},
]
SUMMARY_QUERIES: list[Query] = [
    Comparison("lt", "summary.primary.det.max", 2),
    Comparison("ge", "summary.primary.det.max", 1),
    Comparison("ge", "summary.primary.det.max", 0) & Comparison("lt", "summary.primary.det.max", 3),
    Comparison("gt", "summary.primary.det.min", 1e19) & Eq("plan_name", "scan"),
    Eq("summary.primary.det.count", 1),
    In("summary.primary.det.max", [2.5, 5]),
    Eq("summary.primary.det.max", "a"),
    Comparison("gt", "summary.primary.a.b.max", 0),
    Comparison("gt", "summary.primary.det", 0),
    KeyPresent("summary.primary.det.max"),
    Comparison("gt", "summary.primary.det.max.x", 0),
    ~Comparison("lt", "summary.primary.det.max", 2),
    Comparison("lt", "summary.primary.det.max", 2) | Eq("plan_name", "count"),
    Comparison("gt", "summary.baseline.det.max", 2**59) & Comparison("lt", "scan_id", 15),
]


def test_summary_queries_agree_with_the_generic_evaluator(database_uri, records):
    store = MongoStore(database_uri())
    rng = random.Random(5)
    truth: dict[str, dict] = {}
    for record in records:
        store.insert("start", record.start)
        if record.stop is not None:
            store.insert("stop", record.stop)
        summary = truth.setdefault(record.uid, {})
        for stream in rng.sample(["primary", "baseline"], rng.randint(0, 2)):
            for field in rng.sample(["det", "a.b", "a"], rng.randint(0, 3)):
                stats = {s: rng.choice(STATS) for s in rng.sample(["max", "min", "count"], 2)}
                store.set_summary(record.uid, stream, field, stats)
                summary.setdefault(stream, {})[field] = stats
    # one run as another tool writes it: no summary document of ours (kept on first use)
    legacy = records[3].uid
    store._collection("intake_broker_summary").delete_one({"run_start": legacy})
    store._collection("intake_broker_summary_values").delete_many({"run_start": legacy})
    truth[legacy] = {}

    class Truth:
        def record_parts(self, uid, parts):
            return {"summary": truth[uid]}

    checked = 0
    for query in SUMMARY_QUERIES:
        expected = _uids(select_runs(records, query, store=Truth()))
        assert _uids(store.runs(query)) == expected, repr(query)
        assert store.count(query) == len(expected), repr(query)
        checked += bool(expected)
    assert checked >= len(SUMMARY_QUERIES) // 2
    assert store._summaries.stored([legacy])[legacy] == (True, {})
    store.close()


def test_summary_search_by_a_user_who_may_only_read(database_uri, records, monkeypatch):
    store = MongoStore(database_uri())
    for record in records[:6]:
        store.insert("start", record.start)
        if record.stop is not None:
            store.insert("stop", record.stop)
    store._collection("intake_broker_summary").delete_many({})  # as databroker wrote them
    store._collection("intake_broker_summary_values").delete_many({})

    def refused(*args, **kwargs):
        raise pymongo.errors.OperationFailure("not authorized to write", code=13)

    monkeypatch.setattr(store._summaries, "write", refused)
    query = KeyPresent("summary.primary", present=False)
    assert _uids(store.runs(query)) == _uids(select_runs(records[:6], None))
    store.close()


def test_summaries_are_kept_at_their_first_search_not_at_stop(database_uri):
    from intake_broker.testing import factories, insert_all

    store = MongoStore(database_uri())
    finished = [factories.scalar_run(n=4, time=T0 + 60 * i, scan_id=i + 1) for i in range(2)]
    acquiring = factories.scalar_run(n=3, time=T0 + 600, scan_id=9, stop=False)
    for docs in (*finished, acquiring):
        insert_all(store, docs)
    uids = [docs[0][1]["uid"] for docs in (*finished, acquiring)]
    assert all(not ready for ready, _ in store._summaries.stored(uids).values())
    query = Comparison("ge", "summary.primary.motor.count", 3)
    assert sorted(_uids(store.runs(query))) == sorted(uids)
    kept = store._summaries.stored(uids)
    assert [kept[uid][0] for uid in uids] == [True, True, False]
    assert kept[uids[0]][1]["primary"]["motor"]["count"] == 4
    assert _uids(store.runs(Comparison("ge", "summary.primary.motor.count", 4))) == [
        uids[1],
        uids[0],
    ]
    store.close()


def test_the_summary_index_narrows_what_the_store_answers_the_planner(database_uri, records):
    """The QueryIndex answer for a summary comparison: only the runs the summary-values index
    allows, each unsure (the evaluator decides), with their kept summaries fetched at once
    (no run's summary is computed from its events again)."""
    from intake_broker.store.abilities import QueryIndex

    store = MongoStore(database_uri())
    for i, record in enumerate(records[:12]):
        store.insert("start", record.start)
        if record.stop is not None:
            store.insert("stop", record.stop)
        store.set_summary(record.uid, "primary", "det", {"max": float(i)})
    assert store.supports(QueryIndex) and "summary" in store.index_documents()
    query = Comparison("ge", "summary.primary.det.max", 8) & Comparison("lt", "scan_id", 15)
    found = store.index_runs(query, sort=[("time", -1)], skip=0, limit=None)
    # runs 8..11 by the summary index, and the runs still acquiring (no stop: 0 and 6), whose
    # summaries the index cannot speak for yet; scan_id (i % 20) < 15 holds for all twelve
    acquiring = [r for r in records[:12] if r.stop is None]
    allowed = [r for r in records[:12] if r in records[8:12] or r in acquiring]
    assert [(r.uid, sure) for r, sure in found.records] == [
        (r.uid, False) for r in reversed(allowed)
    ]
    assert found.parts is not None and found.ordered and not found.paged
    computed: list[str] = []
    summary = store.summary
    store.summary = lambda uid: computed.append(uid) or summary(uid)  # type: ignore[method-assign]
    matches = [r.uid for r in reversed(records[8:12])]
    assert _uids(store.runs(query)) == matches and store.count(query) == len(matches)
    assert computed and set(computed) <= {r.uid for r in acquiring}  # the others were kept
    store.close()
