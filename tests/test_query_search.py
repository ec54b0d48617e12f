"""ScanID, ScanIDRange, FullText and Fuzzy evaluated on run records."""

from __future__ import annotations

import pytest

from intake_broker.errors import BadQuery
from intake_broker.queries import Eq, FullText, Fuzzy, ScanID, ScanIDRange, documents_needed
from intake_broker.queries.search import edit_distance


def rec(**start):
    return {"start": {"uid": "u", "time": 1.0, **start}, "stop": None}


def test_scan_ids():
    assert ScanID(3, 5).match(rec(scan_id=5)) and not ScanID(3).match(rec(scan_id=4))
    assert not ScanID(1).match(rec(scan_id=True))  # a bool is not a scan id
    assert ScanIDRange(4000, 4100).match(rec(scan_id=4000))
    assert not ScanIDRange(4000, 4100).match(rec(scan_id=4100))  # half-open, like range()
    with pytest.raises(BadQuery, match="integer scan ids"):
        ScanID("7")
    with pytest.raises(BadQuery, match="start <= stop"):
        ScanIDRange(5, 1)


def test_full_text_needs_every_word_as_a_whole_word():
    run = rec(sample={"name": "LaB6", "notes": ["calibration before the Si run"]}, operator="Ada")
    assert FullText("lab6 CALIBRATION").match(run)
    assert FullText("si").match(run)
    assert not FullText("calib").match(run)  # words, not substrings
    assert not FullText("LaB6 gold").match(run)
    with pytest.raises(BadQuery, match="some words"):
        FullText("  ,, ")


def test_fuzzy_tolerates_typos():
    run = rec(sample={"name": "LaB6 standard"})
    assert Fuzzy("sample.name", "lab6 standrad").match(run)
    assert not Fuzzy("sample.name", "lab6 standrad", max_edits=1).match(run)
    assert not Fuzzy("sample.name", "CeO2").match(run)
    assert edit_distance("kitten", "sitting", 5) == 3
    assert edit_distance("abc", "abcdefgh", 2) == 3  # stops early past the limit


def test_documents_needed():
    assert documents_needed(Eq("plan_name", "scan")) == {"start"}
    assert documents_needed(Eq("descriptors.name", "baseline") | ~Eq("stop.x", 1)) == {
        "descriptors",
        "stop",
    }
    assert documents_needed(FullText("x")) == {"start"}
