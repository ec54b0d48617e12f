"""Queries as an attacker and a careless user send them (issue 14, items 3 and 7), on every
store: memory, files, native on SQLite and PostgreSQL, MongoDB (SecantusDB).

Each input is either answered exactly as the generic evaluator answers it over the same runs,
or refused with :class:`BadQuery`; never a raw exception, never a hang (a guard of 2 s per
answer). The last part fuzzes queries with hypothesis (derandomized, a bounded number of
examples) against every store, and raw inputs against every way a query comes in.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
import time
import uuid
from pathlib import Path

import event_model
import pytest

from intake_broker import BrokerCatalog
from intake_broker.errors import BadQuery, BrokerError
from intake_broker.queries import (
    And,
    Comparison,
    Contains,
    Eq,
    FullText,
    Fuzzy,
    In,
    KeyPresent,
    Not,
    NotEq,
    NotIn,
    NotTranslatable,
    Or,
    PartialUID,
    Query,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
    decode_query,
    evaluate,
    from_mongo,
)
from intake_broker.queries.expression import parse_query
from intake_broker.queries.limits import (
    MAX_DEPTH,
    MAX_KEY_PARTS,
    MAX_PATTERN_LENGTH,
    MAX_TERMS,
    MAX_VALUES,
)
from intake_broker.store.memory import MemoryStore

try:  # writing MongoDB filters is the mongo driver's (a distribution of its own)
    from intake_broker_mongo.filters import to_mongo
except ImportError:  # pragma: no cover - the driver is installed in the project's test env
    to_mongo = None
needs_mongo_driver = pytest.mark.skipif(
    to_mongo is None, reason="to_mongo is the mongo driver's: intake-broker-mongo is not installed"
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: Longest a store may take to answer (or refuse) one query here: a hang guard, not a speed test.
GUARD = 2.0
T0 = 1_767_225_600.0


def _load_native_conftest():
    """The PostgreSQL cluster fixture of the native driver's tests, shared rather than copied."""
    path = ROOT / "drivers" / "native" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_native_test_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


try:
    _native = _load_native_conftest()
    postgres_server = _native.postgres_server
except ImportError:  # the native driver is not installed
    _native = None


# -- the runs ---------------------------------------------------------------------------------


def _metadata(i: int) -> dict:
    """Varied start metadata: nested dicts, lists of scalars and of dicts, explicit nulls,
    bools, large integers, infinities and NaN, long and non-ASCII strings."""
    md: dict = {
        "scan_id": [1, 2, 3, 2**53 + 1, -(2**62), 7, 0, 11][i % 8],
        "plan_name": ["scan", "count", "grid_scan", "rel_scan", "Scan"][i % 5],
        "sample": {"name": ["LaB6", "CeO2", "Si", "water", "Au foil", "lab6"][i % 6]},
        "detectors": [["det"], ["det", "eiger"], [], ["fccd"]][i % 4],
        "tags": [["a", 1], [True, None], ["b", ["a"]], [2.5, "z"]][i % 4],
        "value": [1.5, -2, math.inf, -math.inf, math.nan, 0, 10**18, "7", True, None][i % 10],
        "items": [[{"name": "x", "n": 1}, {"name": "y", "n": 2}], {"name": "x"}, [1, 2]][i % 3],
        "text": ["a" * 3000 + "Y", "calibration of LaB6", "ßtraße ünïcode", "(.*)*Z"][i % 4],
    }
    if i % 3 == 0:
        md["flag"] = bool(i % 2)
    if i % 5 == 1:
        md["operator"] = None
    return md


def _runs(count: int = 24) -> list[list[tuple[str, dict]]]:
    runs = []
    for i in range(count):
        uid = str(uuid.UUID(int=(0xABCDEF << 100) | (i * 7919)))
        bundle = event_model.compose_run(uid=uid, time=T0 + 3600.0 * i, metadata=_metadata(i))
        docs = [("start", bundle.start_doc)]
        if i % 4 != 3:
            status = "abort" if i % 5 == 2 else "success"
            docs.append(("stop", bundle.compose_stop(exit_status=status, time=T0 + 3600 * i + 9)))
        runs.append(docs)
    return runs


class StoreUnderTest:
    """One store, the runs it accepted and the evaluator's record of each."""

    def __init__(self, name: str, store, runs):
        self.name = name
        self.store = store
        self.records: dict[str, dict] = {}
        for docs in runs:
            try:
                for kind, doc in docs:
                    store.insert(kind, doc)
            except BrokerError:  # this store refuses such documents: not part of its answers
                continue
            record = {"start": None, "stop": None}
            for kind, doc in docs:
                record[kind] = json.loads(json.dumps(doc))  # the JSON a store keeps
            self.records[record["start"]["uid"]] = record

    def expected(self, query: Query) -> set[str]:
        return {uid for uid, record in self.records.items() if evaluate(query, record)}

    def answer(self, query) -> tuple[set[str], int]:
        """``(uids, count)`` from the store, within the hang guard."""
        outcome: dict = {}

        def ask():
            try:
                uids = {r.uid for r in self.store.runs(query)}
                outcome["answer"] = (uids, self.store.count(query))
            except BaseException as err:  # noqa: BLE001 (handed to the test thread)
                outcome["error"] = err

        worker = threading.Thread(target=ask, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(GUARD * 5)
        elapsed = time.monotonic() - started
        assert not worker.is_alive(), f"{self.name}: {query!r} still running after {elapsed:.1f} s"
        assert elapsed < GUARD, f"{self.name}: {query!r} took {elapsed:.1f} s (guard {GUARD} s)"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]


@pytest.fixture(scope="module")
def runs():
    return _runs()


def _native_store(url: str, folder: Path):
    native = pytest.importorskip("intake_broker_native")
    return native.NativeStore(url, str(folder / "data"))


@pytest.fixture(scope="module", params=["memory", "files", "sqlite", "postgresql", "mongo"])
def target(request, runs, tmp_path_factory) -> StoreUnderTest:
    """Each store, holding the same runs."""
    kind = request.param
    folder = tmp_path_factory.mktemp(kind)
    if kind == "memory":
        store = MemoryStore()
    elif kind == "files":
        files = pytest.importorskip("intake_broker_files")
        store = files.FilesStore([str(folder / "*.jsonl")], format="jsonl")
    elif kind == "sqlite":
        store = _native_store(f"sqlite:///{folder}/index.sqlite", folder)
    elif kind == "postgresql":
        if _native is None:
            pytest.skip("the native driver is not installed")
        server = request.getfixturevalue("postgres_server")
        store = _native_store(_native.new_postgres_index(server), folder)
    else:
        mongo = pytest.importorskip("intake_broker_mongo")
        server = request.getfixturevalue("mongo_server")
        store = mongo.MongoStore(f"{server.uri}/security-{uuid.uuid4().hex[:12]}")
    under_test = StoreUnderTest(kind, store, runs)
    yield under_test
    store.close()


def _agrees(target: StoreUnderTest, query) -> None:
    """The store answers ``query`` as the evaluator does, or refuses it with BadQuery."""
    try:
        uids, count = target.answer(query)
    except BadQuery:
        return
    expected = target.expected(query)
    assert uids == expected, (
        f"{target.name} answers {query!r} with {len(uids)} runs, the evaluator with "
        f"{len(expected)}: extra {sorted(uids - expected)[:3]}, missing "
        f"{sorted(expected - uids)[:3]}"
    )
    assert count == len(expected), f"{target.name}: count({query!r}) = {count}"


# -- the repros of the issue, on every store --------------------------------------------------


def test_all_runs_are_held(target, runs):
    assert target.records, f"{target.name} refused every run"
    assert target.answer(None)[1] == len(target.records)


@pytest.mark.parametrize(
    "pattern",
    ["(.*)*Z", "(a+)+$", "(a|aa)+$", "^(\\w+\\s?)*$", "(.*a){20}", "(x+x+)+y", "a*a*a*a*a*b"],
)
def test_catastrophic_regex_answers_in_linear_time(target, pattern):
    """``cat.search('uid ~ "(.*)*Z"')`` hung on every store, PostgreSQL included."""
    for key in ("uid", "text", "plan_name", "tags"):
        _agrees(target, Regex(key, pattern))
        _agrees(target, Regex(key, pattern, case_sensitive=False))
    catalog = BrokerCatalog(target.store)
    found = catalog.search(f"uid ~ '{pattern}'")  # single quotes: backslashes as written
    assert len(found) == len(target.expected(Regex("uid", pattern)))


def test_regex_over_a_long_string_matches_as_the_evaluator(target):
    for pattern in ("a{1000}a*Y$", "^a+Y", "Y$", "^a", "^\\(\\.", "^calibration", "^(.*)"):
        _agrees(target, Regex("text", pattern))
        _agrees(target, Regex("text", pattern) & Eq("plan_name", "scan"))
        _agrees(target, ~Regex("text", pattern))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e308, -1e308])
@pytest.mark.parametrize("operator", ["lt", "le", "gt", "ge"])
def test_comparisons_with_infinities_and_nan(target, operator, value):
    """``{"scan_id": {"$lt": inf}}`` gave 0 runs on native and 60 on memory."""
    for key in ("scan_id", "value", "time", "tags", "items.n", "stop.time", "missing"):
        _agrees(target, Comparison(operator, key, value))
        _agrees(target, Not(Comparison(operator, key, value)))
    mongo_style = {"scan_id": {f"${operator.replace('e', 'te')}": value}}
    _agrees(target, from_mongo(mongo_style))


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, math.nan, 2**53 + 1, -(2**62), 10**18, 2**63 - 1, -(2**63)]
)
def test_equality_with_special_numbers(target, value):
    for key in ("scan_id", "value", "tags"):
        _agrees(target, Eq(key, value))
        _agrees(target, NotEq(key, value))
        _agrees(target, In(key, [value, 1]))
        _agrees(target, NotIn(key, [value]))
        _agrees(target, Contains(key, value))
        _agrees(target, Comparison("ge", key, value))


def test_empty_value_lists_inside_combinators(target):
    """Found by the fuzzer: native SQLite answered And(NotIn("scan_id", [])) with the runs that
    have a scan_id only (the merged list test was dropped, not kept empty)."""
    for key in ("scan_id", "value", "tags", "summary.primary.det.max"):
        _agrees(target, And((NotIn(key, []),)))
        _agrees(target, And((NotIn(key, []), NotEq(key, 1))))
        _agrees(target, Or((In(key, []),)))
        _agrees(target, Or((In(key, []), Eq(key, 1))))


def test_many_terms_and_values_are_answered(target):
    """999 terms gave SQLite 'Expression tree is too large'; the limits keep every store within
    its own."""
    wide = And(tuple(NotEq("plan_name", f"p{i}") for i in range(MAX_TERMS - 1)))
    _agrees(target, wide)
    _agrees(target, Or(tuple(Eq("value", i) for i in range(MAX_TERMS - 1))))
    _agrees(target, In("value", list(range(MAX_VALUES - 1)) + [1.5]))
    _agrees(target, NotIn("tags", [f"s{i}" for i in range(MAX_VALUES)]))
    deep: Query = Eq("plan_name", "scan")
    for i in range(MAX_DEPTH - 1):
        deep = Not(deep) if i % 2 else Or((deep, Eq("value", i)))
    _agrees(target, deep)


def test_refused_queries_never_reach_a_store(target):
    for make in (
        lambda: Eq("a." * 10_000 + "b", 1),
        lambda: Eq("plan_name", 2**70),
        lambda: Eq("plan_name", "a\x00b"),
        lambda: Eq("plan_name", "\ud800"),
        lambda: Regex("uid", "a" * (MAX_PATTERN_LENGTH + 1)),
        lambda: Regex("uid", "(a)\\1"),
        lambda: And(tuple(Eq("plan_name", i) for i in range(999))),
    ):
        with pytest.raises(BadQuery):
            target.answer(make())


# -- every way in: objects, JSON, Mongo-style dicts, the query language -----------------------


def _nested_json(depth: int) -> str:
    return (
        '{"type": "not", "query": ' * depth
        + '{"type": "eq", "key": "a", "value": 1}'
        + ("}" * depth)
    )


RAW_CASES = {
    "non-string key": lambda: decode_query({"type": "eq", "key": 5, "value": 1}),
    "non-string key, mongo": lambda: from_mongo({5: 1}),
    "deep JSON": lambda: decode_query(_nested_json(100_000)),
    "deep JSON, not too deep for json": lambda: decode_query(_nested_json(500)),
    "deep value": lambda: Eq("a", json.loads("[" * 500 + "]" * 500)),
    "deep mongo": lambda: from_mongo(json.loads('{"$nor": [' * 300 + "{}" + "]}" * 300)),
    "deep mongo $not": lambda: from_mongo({"a": json.loads('{"$not": ' * 300 + "1" + "}" * 300)}),
    "deep expression": lambda: parse_query("not " * 50_000 + "a == 1"),
    "deep parentheses": lambda: parse_query("(" * 50_000 + "a == 1" + ")" * 50_000),
    "deep list": lambda: parse_query("a in " + "[" * 5000 + "]" * 5000),
    "2**70": lambda: Comparison("lt", "scan_id", 2**70),
    "2**70, JSON": lambda: decode_query(f'{{"type": "eq", "key": "a", "value": {2**70}}}'),
    "2**70, mongo": lambda: from_mongo({"scan_id": {"$lt": 2**70}}),
    "2**70, expression": lambda: parse_query(f"scan_id < {2**70}"),
    "10**400 time": lambda: TimeRange(since=10**400),
    "10**400 scan id": lambda: ScanIDRange(0, 10**400),
    "10**400 scan ids": lambda: ScanID(10**400),
    "scan ids not a list": lambda: decode_query({"type": "scan_id", "ids": 5}),
    "lone surrogate key": lambda: Eq("a\ud800", 1),
    "lone surrogate value": lambda: Eq("a", "\udfff"),
    "lone surrogate JSON": lambda: decode_query('{"type": "eq", "key": "a", "value": "\\ud800"}'),
    "lone surrogate pattern": lambda: Regex("a", "\ud800"),
    "lone surrogate expression": lambda: parse_query('a == "\\ud800"'),
    "backslash q": lambda: parse_query('plan_name == "\\q"'),
    "backslash q regex": lambda: parse_query('uid ~ "\\d+"'),
    "999 terms": lambda: parse_query(" and ".join(f"a == {i}" for i in range(999))),
    "999 terms, mongo": lambda: from_mongo({"$or": [{"a": i} for i in range(999)]}),
    "999 terms, JSON": lambda: decode_query(
        {"type": "or", "queries": [{"type": "eq", "key": "a", "value": i} for i in range(999)]}
    ),
    "NUL key": lambda: KeyPresent("a\x00b"),
    "NUL value": lambda: parse_query('plan_name == "a\\u0000"'),
    "NUL pattern": lambda: Regex("a", "\x00"),
    "10,000-part key": lambda: Eq(".".join(["a"] * 10_000), 1),
    "10,000-part key, JSON": lambda: decode_query(
        {"type": "eq", "key": ".".join(["a"] * 10_000), "value": 1}
    ),
    "10,000-part key, expression": lambda: parse_query(".".join(["a"] * 10_000) + " == 1"),
    "huge key": lambda: Eq("a" * 10_000_000, 1),
    "huge In": lambda: In("a", list(range(100_000))),
    "huge value": lambda: Eq("a", list(range(100_000))),
    "huge string": lambda: Eq("a", "x" * 1_000_000),
    "huge JSON": lambda: decode_query(" " * 2_000_000),
    "not JSON": lambda: decode_query("{'type': 'eq'}"),
    "bytes not UTF-8": lambda: decode_query(b"\xff\xfe"),
    "long Fuzzy": lambda: Fuzzy("a", "x" * 10_000, 3),
    "many edits": lambda: Fuzzy("a", "x", 10**9),
    "many words": lambda: FullText(" ".join(f"w{i}" for i in range(1000))),
    "backreference": lambda: Regex("a", "(a)\\1"),
    "lookahead": lambda: Regex("a", "a(?=b)"),
    "huge repetition": lambda: Regex("a", "((a{1000}){1000}){1000}"),
    "bad time zone": lambda: TimeRange(since=0, timezone="\x00"),
    "time zone list": lambda: decode_query({"type": "time_range", "timezone": ["UTC"]}),
    "uid prefix": lambda: PartialUID("0" * 1_000_000),
    "5,000-digit integer, expression": lambda: parse_query("scan_id == " + "9" * 5000),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_raw_errors_become_bad_query(case):
    """Raw TypeError, RecursionError, OverflowError, UnicodeEncodeError, JSONDecodeError (and
    the cost of a 10,000-part key) escaped before; each is a BadQuery saying what is wrong."""
    started = time.monotonic()
    with pytest.raises(BadQuery) as refused:
        RAW_CASES[case]()
    assert time.monotonic() - started < GUARD
    message = str(refused.value)
    assert 20 < len(message) < 2000, message


def test_messages_say_what_would_be_right():
    with pytest.raises(BadQuery, match="at most 32 dotted parts|at most 32 are allowed"):
        Eq(".".join(["a"] * 40), 1)
    with pytest.raises(BadQuery, match=f"at most {MAX_TERMS}.*use In"):
        And(tuple(Eq("a", i) for i in range(MAX_TERMS + 1)))
    with pytest.raises(BadQuery, match="64-bit.*use a float"):
        Eq("a", 2**64)
    with pytest.raises(BadQuery, match="column 15.*single quotes"):
        parse_query('plan_name == "\\q"')
    with pytest.raises(BadQuery, match="RE2 syntax.*without backreferences"):
        Regex("a", "(a)\\1")
    with pytest.raises(BadQuery, match="NUL"):
        Eq("a", "\x00")
    with pytest.raises(BadQuery, match="lone surrogate"):
        Eq("a", "\ud800")


def test_limits_are_generous_for_real_queries():
    key = ".".join(["level"] * MAX_KEY_PARTS)
    assert Eq(key, 1).key == key
    assert len(In("scan_id", list(range(MAX_VALUES))).values) == MAX_VALUES
    assert parse_query(" or ".join(f"scan_id == {i}" for i in range(100)))
    assert Regex("sample.name", "^(LaB6|CeO2)[ _-]?(std|standard)?$")
    nested = parse_query("(" * (MAX_DEPTH - 1) + "a == 1" + ")" * (MAX_DEPTH - 1))
    assert nested == Eq("a", 1)


@needs_mongo_driver
def test_mongo_sees_only_escaped_literal_prefixes():
    for pattern in ("(.*)*Z", "^3f.a", "^a+", "^ab|c", "^ab$"):
        with pytest.raises(NotTranslatable):  # evaluated with RE2 instead
            to_mongo(Regex("uid", pattern))
    assert to_mongo(Regex("sample.name", r"^La\(B")) == {"sample.name": {"$regex": r"^La\(B"}}


# -- fuzzing ----------------------------------------------------------------------------------

KEYS = [
    "scan_id", "plan_name", "sample.name", "detectors", "tags", "value", "items.name",
    "items.n", "items.0", "text", "flag", "operator", "uid", "time", "stop.exit_status",
    "stop.time", "missing", "sample.missing.deeper", "tags.1",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 2, 3, 7, 11, -2, 2**53 + 1, -(2**62), 10**18, 2**63 - 1]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.5, 2.5, 0.0, -0.0, math.inf, -math.inf, math.nan]),
    st.sampled_from(["scan", "count", "LaB6", "det", "a", "b", "z", "7", "x", "success", ""]),
    st.text(max_size=6),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["name", "n"]), SCALARS, max_size=2),
)
PATTERNS = st.one_of(
    st.sampled_from(["^s", "^sc", "an", "^La", "(.*)*Z", "^a+Y", "Y$", "^\\(", "[", "x|y", "^"]),
    st.text(alphabet="ab.*+?()[]|^$\\{}0-9", max_size=10),
)
LEAVES = st.one_of(
    st.builds(Eq, st.sampled_from(KEYS), VALUES),
    st.builds(NotEq, st.sampled_from(KEYS), VALUES),
    st.builds(
        Comparison, st.sampled_from(["lt", "le", "gt", "ge"]), st.sampled_from(KEYS), SCALARS
    ),
    st.builds(In, st.sampled_from(KEYS), st.lists(VALUES, max_size=4)),
    st.builds(NotIn, st.sampled_from(KEYS), st.lists(VALUES, max_size=4)),
    st.builds(Contains, st.sampled_from(KEYS), VALUES),
    st.builds(KeyPresent, st.sampled_from(KEYS), st.booleans()),
    st.builds(Regex, st.sampled_from(KEYS), PATTERNS, st.booleans()),
    st.builds(PartialUID, st.sampled_from(["0", "000abcdef", "a", "ff"])),
    st.builds(ScanIDRange, st.sampled_from([-(2**63), 0, 2, 8]), st.sampled_from([3, 12, 2**62])),
    st.builds(TimeRange, st.sampled_from([None, T0, T0 + 36000]), st.just(None), st.just("UTC")),
    st.builds(FullText, st.sampled_from(["calibration", "LaB6", "unicode", "nothing here"])),
    st.builds(Fuzzy, st.sampled_from(KEYS), st.sampled_from(["lab6", "scam", "x"]), st.just(1)),
)


def _safely(strategy):
    """``strategy``, with queries that their constructors refuse (BadQuery) left out."""

    @st.composite
    def draw(data):
        try:
            return data(strategy)
        except BadQuery:
            hypothesis.reject()

    return draw()


QUERIES = st.recursive(
    _safely(LEAVES),
    lambda inner: st.one_of(
        st.builds(lambda qs: And(tuple(qs)), st.lists(inner, max_size=3)),
        st.builds(lambda qs: Or(tuple(qs)), st.lists(inner, max_size=3)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)
FUZZ = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@FUZZ
@given(query=QUERIES)
def test_fuzzed_queries_agree_with_the_evaluator(target, query):
    """Each query is answered as the evaluator answers it over the runs the store holds, or
    refused with BadQuery; never a raw exception, never a hang."""
    _agrees(target, query)
    _agrees(target, decode_query(json.dumps(query.encode())))


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(["eq", "and", "or", "not", "regex", "in", "$lt", "$in", "$not", "key"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["type", "key", "value", "queries", "query", "values", "$and"]),
                st.sampled_from(["$or", "$nor", "$regex", "$options", "$gt", "$exists", "a.b"]),
                st.text(max_size=4),
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(
            [
                "a",
                "==",
                "<",
                "~",
                "in",
                "[",
                "]",
                ",",
                "(",
                ")",
                "not",
                "and",
                "or",
                '"\\q"',
                "'x'",
                "1e999",
                "2e308",
                "-",
                "has",
                "text",
                "time",
                "since",
                "like",
                "null",
                "contains",
                "{",
                "}",
                "9" * 30,
                "9" * 5000,
                "007",
                "1.",
                "-.5",
                '"\\ud800"',
                "\x00",
                "sample.name",
                ".",
            ]
        ),  # fmt: skip
        max_size=12,
    ).map(" ".join),
)


@FUZZ
@given(raw=JSON)
def test_fuzzed_json_is_a_query_or_bad_query(raw):
    for way_in in (decode_query, from_mongo, lambda r: decode_query(json.dumps(r))):
        try:
            assert isinstance(way_in(raw), Query)
        except BadQuery:
            pass


@FUZZ
@given(text=TEXT)
def test_fuzzed_text_is_a_query_or_bad_query(text):
    try:
        assert isinstance(parse_query(text), Query)
    except BadQuery:
        pass
