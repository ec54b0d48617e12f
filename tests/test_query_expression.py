"""The query language: parsing, round trips through JSON, and clear errors with positions."""

from __future__ import annotations

import json

import pytest

from intake_broker.errors import BadQuery
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
    Or,
    Regex,
    TimeRange,
    decode_query,
)
from intake_broker.queries.expression import parse_query

CASES = {
    'plan_name == "scan"': Eq("plan_name", "scan"),
    "plan_name = scan": Eq("plan_name", "scan"),
    "plan_name != 'count'": NotEq("plan_name", "count"),
    "scan_id > 4000": Comparison("gt", "scan_id", 4000),
    "summary.primary.theta.max < 5.5": Comparison("lt", "summary.primary.theta.max", 5.5),
    "4000 <= scan_id <= 4100": And(
        (Comparison("ge", "scan_id", 4000), Comparison("le", "scan_id", 4100))
    ),
    "5 > scan_id": Comparison("lt", "scan_id", 5),
    'plan_name == "scan" and scan_id > 4 and stop.exit_status == success': And(
        (Eq("plan_name", "scan"), Comparison("gt", "scan_id", 4), Eq("stop.exit_status", "success"))
    ),
    "a == 1 or b == 2 and c == 3": Or((Eq("a", 1), And((Eq("b", 2), Eq("c", 3))))),
    "(a == 1 or b == 2) and not c == 3": And((Or((Eq("a", 1), Eq("b", 2))), Not(Eq("c", 3)))),
    "scan_id in [1, 2, 3]": In("scan_id", (1, 2, 3)),
    'plan_name not in ["count", "scan"]': NotIn("plan_name", ("count", "scan")),
    'motors contains "theta"': Contains("motors", "theta"),
    'sample.name ~ "^LaB"': Regex("sample.name", "^LaB"),
    "has sample": KeyPresent("sample"),
    "not has sample": Not(KeyPresent("sample")),
    "flag == true and other == null": And((Eq("flag", True), Eq("other", None))),
    'time since "2026-01-01T00:00:00+00:00"': TimeRange(since=1767225600.0),
    "time since 100 until 200": TimeRange(since=100, until=200),
    "AND_key == 1": Eq("AND_key", 1),
    'text "LaB6 calibration"': FullText("LaB6 calibration"),
    "sample.name like LaB6": Fuzzy("sample.name", "LaB6"),
}


@pytest.mark.parametrize("text", list(CASES))
def test_parse(text):
    assert parse_query(text) == CASES[text]


@pytest.mark.parametrize("text", list(CASES))
def test_round_trip_expression_query_json_query(text):
    query = parse_query(text)
    assert decode_query(json.loads(json.dumps(query.encode()))) == query


def test_json_objects_are_mongo_filters():
    assert parse_query('{"plan_name": "scan"}') == Eq("plan_name", "scan")


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("plan_name == ", 14, "expected a value"),
        ('plan_name === "scan"', 13, "expected a value"),
        ('(plan_name == "scan"', 21, "')' to close"),
        ('plan_name == "scan" scan_id > 3', 21, "expected 'and', 'or'"),
        ('scan_id > "abc"', 9, "'scan_id' holds numbers"),
        ('scan_id == "12"', 9, "write the number without quotes"),
        ("plan_name @ 3", 11, "unexpected character '@'"),
        ("and == 3", 1, "expected a key"),
        ("scan_id in 3", 12, "a [list] after 'in'"),
        ("name ~ 5", 8, "regular expression in quotes"),
    ],
)
def test_errors_show_where(text, column, message):
    with pytest.raises(BadQuery) as info:
        parse_query(text)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert f"column {column}:" in text_of_error
    caret_line = text_of_error.splitlines()[-1]
    assert caret_line.index("^") - 2 == column - 1


def test_bad_json_and_empty():
    with pytest.raises(BadQuery, match="not valid JSON"):
        parse_query('{"plan_name": }')
    with pytest.raises(BadQuery, match="empty query"):
        parse_query("   ")
    with pytest.raises(BadQuery, match="unsupported query operator"):
        parse_query('{"scan_id": {"$near": 3}}')


def test_naive_times_are_read_in_the_given_zone():
    berlin = parse_query('time since "2026-01-01 01:00"', timezone="Europe/Berlin")
    assert berlin.since == TimeRange(since="2026-01-01T00:00:00+00:00").since
    utc = parse_query('time since "2026-01-01 01:00"', timezone="UTC")
    assert utc.since - berlin.since == 3600


def test_catalog_search_reads_times_in_its_time_zone():
    import intake_broker

    cat = intake_broker.temp()
    cat.metadata["timezone"] = "Asia/Tokyo"
    found = cat.search('time since "2026-01-01 09:00"')
    assert found.query.since == TimeRange(since="2026-01-01T00:00:00+00:00").since


@pytest.mark.parametrize(
    "text, value",
    [("007", 7), ("1.", 1.0), ("-.5", -0.5), (".5", 0.5), ("1e3", 1000.0), ("-3", -3)],
)
def test_numbers_json_would_refuse_are_read_not_crashed_on(text, value):
    """(``json.loads("007")`` raises; the web page's search box met it as a 500.)"""
    parsed = parse_query(f"scan_id == {text}")
    assert parsed.value == value and type(parsed.value) is type(value)


def test_a_huge_integer_is_a_syntax_error_not_a_crash():
    with pytest.raises(BadQuery, match="column 12: an integer outside the signed 64-bit"):
        parse_query("scan_id == " + "9" * 5000)
    assert parse_query("scan_id == " + "0" * 5000 + "7").value == 7
