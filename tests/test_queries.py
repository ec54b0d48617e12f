from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest

from intake_broker import queries
from intake_broker.errors import BadQuery, BrokerError
from intake_broker.queries import (
    QUERY_TYPES,
    And,
    Annotated,
    Comparison,
    Contains,
    Eq,
    FullText,
    Fuzzy,
    In,
    KeyPresent,
    Not,
    NotEq,
    NoteText,
    NotIn,
    NotTranslatable,
    Or,
    PartialUID,
    Query,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
    Translator,
    Viewer,
    as_query,
    decode_query,
    evaluate,
    from_mongo,
    resolve_key,
)

try:  # writing MongoDB filters is the mongo driver's (a distribution of its own)
    from intake_broker_mongo.filters import to_mongo
except ImportError:  # pragma: no cover - the driver is installed in the project's test env
    to_mongo = None
needs_mongo_driver = pytest.mark.skipif(
    to_mongo is None, reason="to_mongo is the mongo driver's: intake-broker-mongo is not installed"
)

JAN_1_2026_UTC = 1767225600.0  # 20454 days * 86400 s


def record(start, stop=None):
    return {"start": start, "stop": stop}


SCAN = record(
    {
        "uid": "3f2a9c1e-7b4d-4e8a-9c1f-0a1b2c3d4e5f",
        "time": JAN_1_2026_UTC + 3600,
        "plan_name": "scan",
        "scan_id": 12,
        "motors": ["mtr_x", "mtr_y"],
        "detectors": ["det"],
        "sample": {"name": "Silicon", "temperature": 293.5, "tags": ["powder", "ref"]},
        "num_points": 10,
        "operator": None,
        "dry_run": False,
    },
    {"uid": "9c1f0a1b-0000-4000-8000-000000000001", "exit_status": "success", "num_events": {}},
)
COUNT = record(
    {
        "uid": "a1b2c3d4-0000-4000-8000-000000000002",
        "time": JAN_1_2026_UTC + 86400 * 40,
        "plan_name": "count",
        "scan_id": 13,
        "detectors": ["det", "det2"],
        "sample": "water",
        "num_points": 1,
        "dry_run": True,
    },
)
SPARSE = record({"uid": "ffff0000-0000-4000-8000-000000000003", "time": 0.0, "scan_id": "14"})
RECORDS = [SCAN, COUNT, SPARSE]


def matching(query):
    """Names of the matching records, in order: "scan", "count", "sparse"."""
    return [r["start"].get("plan_name", "sparse") for r in RECORDS if query.match(r)]


# ---------------------------------------------------------------------------------------------
# keys


def test_resolve_key():
    assert resolve_key("plan_name") == ("start", "plan_name")
    assert resolve_key("start.plan_name") == ("start", "plan_name")
    assert resolve_key("sample.name") == ("start", "sample", "name")
    assert resolve_key("stop.exit_status") == ("stop", "exit_status")
    assert resolve_key("stop") == ("start", "stop")  # no dot: a start-document field
    assert resolve_key("descriptors.data_keys") == ("descriptors", "data_keys")
    assert resolve_key("summary.primary.det.max") == ("summary", "primary", "det", "max")
    assert resolve_key("other.key") == ("start", "other", "key")


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a.", 3, None])
def test_bad_keys(key):
    with pytest.raises(BadQuery, match="dotted path"):
        Eq(key, 1)


def test_document_prefixes_can_be_extended(monkeypatch):
    monkeypatch.setattr(queries.base, "DOCUMENT_PREFIXES", (*queries.DOCUMENT_PREFIXES, "notes"))
    assert resolve_key("notes.duration") == ("notes", "duration")
    rec = {**SCAN, "notes": {"duration": 4.5}}
    assert Comparison("gt", "notes.duration", 4).match(rec)


@needs_mongo_driver
def test_to_mongo_refuses_documents_beyond_the_start(monkeypatch):
    monkeypatch.setattr(queries.base, "DOCUMENT_PREFIXES", (*queries.DOCUMENT_PREFIXES, "notes"))
    with pytest.raises(NotTranslatable, match="notes document"):
        to_mongo(Eq("notes.duration", 4.5))


# ---------------------------------------------------------------------------------------------
# evaluation of each type


def test_eq():
    assert matching(Eq("plan_name", "scan")) == ["scan"]
    assert matching(Eq("start.scan_id", 13)) == ["count"]
    assert matching(Eq("sample.name", "Silicon")) == ["scan"]
    assert matching(Eq("stop.exit_status", "success")) == ["scan"]
    assert matching(Eq("plan_name", "fly")) == []


def test_eq_on_lists_matches_whole_list_or_element():
    assert matching(Eq("motors", "mtr_y")) == ["scan"]
    assert matching(Eq("motors", ["mtr_x", "mtr_y"])) == ["scan"]
    assert matching(Eq("motors", ["mtr_y", "mtr_x"])) == []
    assert matching(Eq("detectors", "det")) == ["scan", "count"]
    assert matching(Eq("sample.tags", "ref")) == ["scan"]
    assert matching(Eq("motors.1", "mtr_y")) == ["scan"]  # numeric parts index lists


def test_eq_with_dict_value():
    sample = {"name": "Silicon", "temperature": 293.5, "tags": ["powder", "ref"]}
    assert matching(Eq("sample", sample)) == ["scan"]
    assert matching(Eq("sample", {"name": "Silicon"})) == []
    assert hash(Eq("sample", sample)) == hash(Eq("sample", dict(sample)))


def test_eq_bools_are_not_numbers():
    assert matching(Eq("dry_run", False)) == ["scan"]
    assert matching(Eq("dry_run", 0)) == []
    assert matching(Eq("num_points", True)) == []
    assert matching(Eq("num_points", 1)) == ["count"]
    assert matching(Eq("num_points", 10.0)) == ["scan"]


def test_eq_none_needs_the_key():
    assert matching(Eq("operator", None)) == ["scan"]
    assert matching(NotEq("operator", None)) == ["count", "sparse"]


def test_not_eq():
    assert matching(NotEq("plan_name", "scan")) == ["count", "sparse"]
    assert matching(NotEq("detectors", "det2")) == ["scan", "sparse"]


def test_comparison():
    assert matching(Comparison("gt", "scan_id", 12)) == ["count"]
    assert matching(Comparison("ge", "scan_id", 12)) == ["scan", "count"]
    assert matching(Comparison("lt", "sample.temperature", 300)) == ["scan"]
    assert matching(Comparison("le", "plan_name", "count")) == ["count"]
    assert matching(Comparison("ge", "motors", "mtr_y")) == ["scan"]  # any element


def test_comparison_of_incomparable_values_is_false():
    assert matching(Comparison("lt", "scan_id", "99")) == ["sparse"]  # only the str scan_id
    assert matching(Comparison("gt", "plan_name", 0)) == []
    assert matching(Comparison("gt", "operator", 0)) == []  # None
    assert matching(Comparison("lt", "scan_id", None)) == []
    assert matching(Comparison("ge", "num_points", True)) == []  # bools are not numbers
    assert matching(Comparison("ge", "dry_run", 0)) == []
    assert matching(Comparison("gt", "dry_run", False)) == ["count"]  # bools compare to bools
    assert matching(Comparison("lt", "sample", 1)) == []  # a dict


def test_comparison_rejects_unknown_operator():
    with pytest.raises(BadQuery, match="'eq'.*lt, le, gt, ge"):
        Comparison("eq", "scan_id", 1)


def test_in_and_not_in():
    assert matching(In("plan_name", ["scan", "count"])) == ["scan", "count"]
    assert matching(In("motors", ("mtr_z", "mtr_x"))) == ["scan"]
    assert matching(In("scan_id", [14])) == []  # "14" is a str
    assert matching(NotIn("plan_name", ["scan"])) == ["count", "sparse"]
    assert matching(NotIn("detectors", ["det2"])) == ["scan", "sparse"]
    assert In("plan_name", ["a", "b"]).values == ("a", "b")
    assert isinstance(NotIn("x", {1}).values, tuple)
    with pytest.raises(BadQuery, match="must be a list"):
        In("plan_name", "scan")


def test_regex():
    assert matching(Regex("plan_name", "^sc")) == ["scan"]
    assert matching(Regex("plan_name", "an")) == ["scan"]  # search, not match
    assert matching(Regex("sample.name", "silicon")) == []
    assert matching(Regex("sample.name", "silicon", case_sensitive=False)) == ["scan"]
    assert matching(Regex("motors", "_y$")) == ["scan"]
    assert matching(Regex("scan_id", "1")) == ["sparse"]  # str values only


def test_regex_bad_pattern():
    with pytest.raises(BadQuery, match=r"bad regular expression '\(unclosed'.*missing \)"):
        Regex("plan_name", "(unclosed")


def test_contains():
    assert matching(Contains("detectors", "det2")) == ["count"]
    assert matching(Contains("sample.tags", "powder")) == ["scan"]
    assert matching(Contains("plan_name", "scan")) == []  # not a list


def test_key_present():
    assert matching(KeyPresent("motors")) == ["scan"]
    assert matching(KeyPresent("operator")) == ["scan"]  # present, though None
    assert matching(KeyPresent("motors", present=False)) == ["count", "sparse"]
    assert matching(KeyPresent("stop.exit_status")) == ["scan"]  # no stop doc: missing
    assert matching(KeyPresent("sample.name")) == ["scan"]  # sample is a str in COUNT


def test_partial_uid():
    assert matching(PartialUID("3f2a")) == ["scan"]
    assert matching(PartialUID("a1b2c3d4-0000")) == ["count"]
    assert matching(PartialUID("9c1f")) == []  # the stop uid does not count
    for bad in ["", "xyz", "3f 2a", None]:
        with pytest.raises(BadQuery, match="hex digits"):
            PartialUID(bad)


def test_time_range():
    assert matching(TimeRange(since=JAN_1_2026_UTC)) == ["scan", "count"]
    assert matching(TimeRange(until=JAN_1_2026_UTC)) == ["sparse"]
    assert matching(TimeRange(JAN_1_2026_UTC, JAN_1_2026_UTC + 86400)) == ["scan"]
    assert matching(TimeRange(JAN_1_2026_UTC + 3600, JAN_1_2026_UTC + 7200)) == ["scan"]
    assert matching(TimeRange(JAN_1_2026_UTC, JAN_1_2026_UTC + 3600)) == []  # until excluded
    assert matching(TimeRange()) == ["scan", "count", "sparse"]


MISSING = record({"uid": "00", "time": 1.0})


@pytest.mark.parametrize(
    "query, expected",
    [
        (Eq("plan_name", "scan"), False),
        (Eq("plan_name", None), False),
        (In("plan_name", ["scan", None]), False),
        (Comparison("lt", "scan_id", 5), False),
        (Regex("plan_name", ".*"), False),
        (Contains("motors", "x"), False),
        (KeyPresent("plan_name"), False),
        (NotEq("plan_name", "scan"), True),
        (NotEq("plan_name", None), True),
        (NotIn("plan_name", ["scan"]), True),
        (KeyPresent("plan_name", False), True),
        (Not(Comparison("lt", "scan_id", 5)), True),
        (Eq("stop.exit_status", "success"), False),
        (NotEq("stop.exit_status", "success"), True),
    ],
)
def test_missing_key_semantics(query, expected):
    assert query.match(MISSING) is expected
    assert evaluate(query, MISSING) is expected


def test_values_must_be_json_like():
    with pytest.raises(BadQuery, match="not JSON-like"):
        Eq("plan_name", object())
    with pytest.raises(BadQuery, match="not JSON-like"):
        In("scan_id", [1, {2}])
    assert Eq("motors", ["a", ["b"]]).value == ("a", ("b",))
    assert hash(Eq("motors", ["a", ["b"]])) == hash(Eq("motors", ("a", ("b",))))


# ---------------------------------------------------------------------------------------------
# combinators


def test_combinators_and_flattening():
    a, b, c, d = Eq("plan_name", "scan"), Eq("scan_id", 12), KeyPresent("motors"), PartialUID("a")
    assert a & b == And((a, b))
    assert (a & b) & (c & d) == And((a, b, c, d))
    assert a | b | c == Or((a, b, c))
    assert (a | b) & c == And((Or((a, b)), c))
    assert ~a == Not(a)
    assert matching(a & b) == ["scan"]
    assert matching(Eq("plan_name", "count") | Eq("scan_id", "14")) == ["count", "sparse"]
    assert matching(~a) == ["count", "sparse"]
    assert matching(And(())) == ["scan", "count", "sparse"]
    assert matching(Or(())) == []
    with pytest.raises(TypeError):
        a & {"plan_name": "scan"}
    with pytest.raises(BadQuery, match="list of queries"):
        And(({"plan_name": "scan"},))


# ---------------------------------------------------------------------------------------------
# encoding


ALL_TYPES = [
    Eq("plan_name", "scan"),
    Eq("sample", {"name": "Si", "tags": ["a", "b"], "pos": [1.5, None, True]}),
    NotEq("scan_id", 3),
    Comparison("le", "sample.temperature", 300.25),
    In("motors", ["mtr_x", 1, None, [1, 2]]),
    NotIn("plan_name", ("count",)),
    Regex("plan_name", r"^s\w+", case_sensitive=False),
    Contains("detectors", "det"),
    STOP_KEY_QUERY := KeyPresent("stop.exit_status", present=False),
    TimeRange("2026-01-01", "2026-02-01 12:30", timezone="Europe/Berlin"),
    TimeRange(since=1.5),
    PartialUID("3f2a-9c"),
    Eq("a", 1) & (Eq("b", 2) | ~Eq("c", [3])),
    Not(And(())),
    Or((Regex("plan_name", "^c"), Not(Eq("scan_id", 12)))),
    ScanID(4000, 4002),
    ScanIDRange(4000, 4100),
    FullText("LaB6 calibration"),
    Fuzzy("sample.name", "LaB6", 1),
    Annotated(Contains("tags", "good") & Comparison("ge", "rating", 4), Viewer("ada", ("p-1",))),
    Annotated(NoteText("bad alignment")),
    NoteText("bad alignment"),
]


def test_every_type_is_covered():
    builtin = {t for t in QUERY_TYPES.values() if t.__module__.startswith("intake_broker.queries")}
    assert {type(q) for q in ALL_TYPES} == builtin  # (tests elsewhere may register more)


@pytest.mark.parametrize("query", ALL_TYPES, ids=lambda q: q.kind)
def test_encode_decode_round_trip(query):
    encoded = query.encode()
    assert encoded["type"] == query.kind
    text = json.dumps(encoded)
    assert decode_query(json.loads(text)) == query
    assert Query.decode(text) == query
    assert hash(Query.decode(text)) == hash(query)
    assert all(Query.decode(text).match(r) == query.match(r) for r in RECORDS)


def test_encode_form():
    assert Eq("motors", ("x", "y")).encode() == {"type": "eq", "key": "motors", "value": ["x", "y"]}
    assert (~Eq("a", 1)).encode() == {
        "type": "not",
        "query": {"type": "eq", "key": "a", "value": 1},
    }
    assert TimeRange(since="2026-01-01", timezone="UTC").encode() == {
        "type": "time_range",
        "since": JAN_1_2026_UTC,
        "until": None,
        "timezone": "UTC",
    }


def test_decode_errors():
    with pytest.raises(
        BadQuery, match="unknown query type 'like'.*and, annotated, comparison, contains"
    ):
        decode_query({"type": "like", "key": "a"})
    with pytest.raises(BadQuery, match="unknown: \\['pattern'\\].*missing: \\['value'\\]"):
        decode_query({"type": "eq", "key": "a", "pattern": 1})
    with pytest.raises(BadQuery, match="not valid JSON"):
        decode_query("{")
    with pytest.raises(BadQuery, match="must be a dict with a 'type'"):
        decode_query({"key": "a"})
    with pytest.raises(BadQuery, match="expected an encoded Eq"):
        Eq.decode({"type": "not_eq", "key": "a", "value": 1})
    assert Eq.decode({"type": "eq", "key": "a", "value": 1}) == Eq("a", 1)


def test_register_query():
    assert Eq.kind == "eq" and QUERY_TYPES["eq"] is Eq
    with pytest.raises(BadQuery, match="already registered"):
        queries.register_query("eq")(NotEq)


# ---------------------------------------------------------------------------------------------
# times


BERLIN_NEW_YEAR = JAN_1_2026_UTC - 3600  # CET is UTC+1
BERLIN_JULY_1_1230 = JAN_1_2026_UTC + 181 * 86400 + 10.5 * 3600  # CEST is UTC+2


def test_time_range_iso_strings_in_explicit_zone():
    tr = TimeRange("2026-01-01", "2026-07-01 12:30", timezone="Europe/Berlin")
    assert tr.since == BERLIN_NEW_YEAR
    assert tr.until == BERLIN_JULY_1_1230
    assert tr.timezone == "Europe/Berlin"
    assert TimeRange("2026-07-01T12:30", timezone="Europe/Berlin").since == BERLIN_JULY_1_1230


def test_time_range_aware_values_ignore_the_zone():
    offset = TimeRange("2026-01-01T12:30:00+02:00", timezone="America/New_York")
    assert offset.since == JAN_1_2026_UTC + 10.5 * 3600
    assert TimeRange("2026-01-01T00:00:00Z").since == JAN_1_2026_UTC
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert TimeRange(until=aware, timezone="Asia/Tokyo").until == JAN_1_2026_UTC
    assert TimeRange(since=17, until=18.5).since == 17.0


@pytest.fixture
def berlin_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_time_range_naive_values_in_local_zone(berlin_local_zone):
    assert TimeRange(datetime(2026, 7, 1, 12, 30)).since == BERLIN_JULY_1_1230
    assert TimeRange("2026-01-01").since == BERLIN_NEW_YEAR
    assert TimeRange("2026-01-01", timezone="local").since == BERLIN_NEW_YEAR
    assert TimeRange("2026-01-01", timezone="UTC").since == JAN_1_2026_UTC


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "", True, [2026]])
def test_time_range_bad_value(bad):
    with pytest.raises(BadQuery) as info:
        TimeRange(since=bad)
    message = str(info.value)
    assert f"since={bad!r} is not a time" in message
    assert "'2026-01-01T12:30:00+02:00'" in message


def test_time_range_bad_zone():
    with pytest.raises(BadQuery, match="unknown time zone 'Mars/Olympus'.*'Europe/Berlin'"):
        TimeRange("2026-01-01", timezone="Mars/Olympus")
    with pytest.raises(BadQuery, match="unknown time zone '../etc'"):
        TimeRange(timezone="../etc")


def test_time_range_since_after_until():
    with pytest.raises(BadQuery, match="later than until"):
        TimeRange("2026-02-01", "2026-01-01", timezone="UTC")
    assert TimeRange(5, 5).match(record({"time": 5})) is False  # empty, but allowed


def test_errors_are_broker_errors_and_value_errors():
    with pytest.raises(BrokerError):
        PartialUID("zz")
    with pytest.raises(ValueError):
        PartialUID("zz")


# ---------------------------------------------------------------------------------------------
# Mongo-style dicts


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"plan_name": "scan"}, Eq("plan_name", "scan")),
        ({"plan_name": "scan", "scan_id": 12}, And((Eq("plan_name", "scan"), Eq("scan_id", 12)))),
        ({"sample": {"name": "Si"}}, Eq("sample", {"name": "Si"})),
        ({"scan_id": {"$eq": 3}}, Eq("scan_id", 3)),
        ({"scan_id": {"$ne": 3}}, NotEq("scan_id", 3)),
        ({"scan_id": {"$gt": 1}}, Comparison("gt", "scan_id", 1)),
        ({"scan_id": {"$gte": 1}}, Comparison("ge", "scan_id", 1)),
        ({"scan_id": {"$lt": 1}}, Comparison("lt", "scan_id", 1)),
        ({"scan_id": {"$lte": 1}}, Comparison("le", "scan_id", 1)),
        (
            {"scan_id": {"$gt": 1, "$lt": 5}},
            And((Comparison("gt", "scan_id", 1), Comparison("lt", "scan_id", 5))),
        ),
        ({"plan_name": {"$in": ["a", "b"]}}, In("plan_name", ["a", "b"])),
        ({"plan_name": {"$nin": ["a"]}}, NotIn("plan_name", ["a"])),
        ({"plan_name": {"$regex": "^s"}}, Regex("plan_name", "^s")),
        ({"plan_name": {"$regex": "^S", "$options": "i"}}, Regex("plan_name", "^S", False)),
        ({"plan_name": re.compile("^S", re.I)}, Regex("plan_name", "^S", False)),
        ({"motors": {"$exists": True}}, KeyPresent("motors")),
        ({"motors": {"$exists": False}}, KeyPresent("motors", False)),
        ({"scan_id": {"$not": {"$gt": 3}}}, Not(Comparison("gt", "scan_id", 3))),
        ({"motors": {"$elemMatch": {"$eq": "x"}}}, Contains("motors", "x")),
        ({"$and": [{"a": 1}, {"b": 2}]}, And((Eq("a", 1), Eq("b", 2)))),
        ({"$or": [{"a": 1}, {"b": 2}]}, Or((Eq("a", 1), Eq("b", 2)))),
        ({"$nor": [{"a": 1}]}, Not(Or((Eq("a", 1),)))),
        ({}, And(())),
    ],
)
def test_from_mongo(spec, expected):
    assert from_mongo(spec) == expected


def test_from_mongo_errors():
    with pytest.raises(BadQuery, match=r"unsupported query operator '\$size'.*\$and, \$elemMatch"):
        from_mongo({"motors": {"$size": 2}})
    with pytest.raises(BadQuery, match=r"unsupported query operator '\$where'"):
        from_mongo({"$where": "true"})
    with pytest.raises(BadQuery, match="mixes operators"):
        from_mongo({"scan_id": {"$gt": 1, "x": 2}})
    with pytest.raises(BadQuery, match="only 'i'"):
        from_mongo({"plan_name": {"$regex": "a", "$options": "m"}})
    with pytest.raises(BadQuery, match="needs a list"):
        from_mongo({"plan_name": {"$in": "scan"}})
    with pytest.raises(BadQuery, match="non-empty list"):
        from_mongo({"$or": []})


def test_as_query():
    q = Eq("plan_name", "scan")
    assert as_query(q) is q
    assert as_query({"plan_name": "scan"}) == q
    assert as_query(None) is None
    with pytest.raises(BadQuery, match="got int"):
        as_query(3)


# ---------------------------------------------------------------------------------------------
# translation


def test_translator_registry():
    tr = Translator("sql")

    @tr.register(Eq)
    def _(query, translate):
        return f"{query.key} = {query.value!r}"

    @tr.register(And)
    def _(query, translate):
        return " AND ".join(translate(q) for q in query.queries)

    assert tr(Eq("a", 1) & Eq("b", "x")) == "a = 1 AND b = 'x'"
    with pytest.raises(NotTranslatable, match="sql translator has no rule for Regex"):
        tr(Eq("a", 1) & Regex("b", "x"))
    assert issubclass(NotTranslatable, BadQuery)

    class Positive(Comparison):  # looked up through the MRO
        pass

    tr.register(Comparison)(lambda query, translate: "cmp")
    assert tr(Positive("gt", "a", 0)) == "cmp"
    with pytest.raises(TypeError):
        tr.register(dict)


@needs_mongo_driver
def test_to_mongo_forms():
    assert to_mongo(Eq("plan_name", "scan")) == {"plan_name": {"$eq": "scan"}}
    assert to_mongo(Eq("start.sample.name", "Si")) == {"sample.name": {"$eq": "Si"}}
    assert to_mongo(Comparison("ge", "scan_id", 3)) == {"scan_id": {"$gte": 3}}
    assert to_mongo(PartialUID("3f2a")) == {"uid": {"$regex": "^3f2a"}}
    assert to_mongo(TimeRange(1, 2)) == {"$and": [{"time": {"$gte": 1}}, {"time": {"$lt": 2}}]}
    assert to_mongo(~Eq("a", 1)) == {"$nor": [{"a": {"$eq": 1}}]}
    assert to_mongo(Eq("a", None)) == {"a": {"$eq": None, "$exists": True}}


@needs_mongo_driver
def test_to_mongo_rejects_stop_keys():
    with pytest.raises(NotTranslatable, match="stop document"):
        to_mongo(Eq("plan_name", "scan") & Eq("stop.exit_status", "success"))


EQUIVALENCE = [
    # (FullText, Fuzzy, regular expressions beyond a literal prefix and annotation queries have
    # no Mongo form: stores evaluate them in Python, with RE2)
    *[
        q
        for q in ALL_TYPES
        if q is not STOP_KEY_QUERY and not isinstance(q, FullText | Fuzzy | Regex | Annotated)
    ],
    Regex("plan_name", "^sc"),
    Regex("plan_name", r"^a\.b"),
    Eq("operator", None),
    NotEq("operator", None),
    NotEq("plan_name", "scan"),
    In("operator", [None, "x"]),
    NotIn("operator", [None]),
    NotIn("detectors", ["det2"]),
    Comparison("gt", "dry_run", False),
    Comparison("lt", "scan_id", "2"),
    Contains("sample.tags", "ref"),
    KeyPresent("sample.name"),
    TimeRange(JAN_1_2026_UTC, JAN_1_2026_UTC + 86400),
    TimeRange(until="2026-01-01", timezone="UTC"),
    TimeRange(),
    Or(()),
    Or((Eq("plan_name", "count"),)),
    ~(Regex("plan_name", "^c") | Eq("scan_id", "14")),
]


@needs_mongo_driver
@pytest.mark.parametrize("query", EQUIVALENCE, ids=lambda q: q.kind)
def test_mongo_round_trip_evaluates_identically(query):
    spec = json.loads(json.dumps(to_mongo(query)))
    back = from_mongo(spec)
    assert [back.match(r) for r in RECORDS] == [query.match(r) for r in RECORDS]
    assert [back.match(r) for r in (MISSING, record({}))] == [
        query.match(r) for r in (MISSING, record({}))
    ]
