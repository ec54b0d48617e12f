"""Normalising and checking incoming documents."""

from __future__ import annotations

import event_model
import numpy as np
import pytest

from intake_broker.errors import DocumentConflict, InvalidDocument
from intake_broker.store.documents import check_reinsert, normalize, same_document


@pytest.fixture
def page():
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"dtype": "number", "shape": [], "source": "s"}}
    )
    events = [desc.compose_event(data={"x": float(i)}, timestamps={"x": 1.0}) for i in range(50)]
    return event_model.pack_event_page(*events)


def test_event_becomes_a_one_row_page(page):
    event = next(event_model.unpack_event_page(page))
    kind, doc = normalize("event", event)
    assert kind == "event_page" and doc["uid"] == [event["uid"]] and doc["data"]["x"] == [0.0]


def test_datum_becomes_a_one_row_page():
    bundle = event_model.compose_run()
    res = bundle.compose_resource(spec="NPY_SEQ", root="/", resource_path="a", resource_kwargs={})
    datum = res.compose_datum(datum_kwargs={"index": 0})
    kind, doc = normalize("datum", datum)
    assert kind == "datum_page" and doc["datum_id"] == [datum["datum_id"]]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seq_num": ["a"] * 50}, "column 'seq_num' must be a list of integers"),
        ({"time": list(range(49))}, "column 'time' has 49 rows but the page has 50 uids"),
        ({"data": {"x": 5}}, "at data/x: 5 is not of type 'array'"),
        ({"uid": None}, "uid"),
    ],
)
def test_malformed_pages_are_named(page, change, message):
    with pytest.raises(InvalidDocument, match=message) as info:
        normalize("event_page", {**page, **change})
    assert "event_page document" in str(info.value)
    assert len(str(info.value)) < 400  # names the page, does not dump it


def test_non_dict_and_unknown_names():
    with pytest.raises(InvalidDocument, match="must be a dict, not list"):
        normalize("start", ["not", "a", "doc"])
    with pytest.raises(InvalidDocument, match="unknown document name 'starts'"):
        normalize("starts", {})


def test_validation_can_be_turned_off(page):
    kind, doc = normalize("event_page", {**page, "seq_num": ["a"] * 50}, check=False)
    assert kind == "event_page"


def test_same_document_compares_arrays_lists_and_nan():
    assert same_document({"a": np.arange(3.0)}, {"a": [0.0, 1.0, 2.0]})
    assert same_document({"a": (1, 2)}, {"a": [1, 2]})
    assert same_document({"a": float("nan")}, {"a": float("nan")})
    assert not same_document({"a": np.arange(3)}, {"a": [0, 1]})
    assert not same_document({"a": 1}, {"a": 1, "b": 2})


def test_conflict_names_the_fields_that_differ():
    check_reinsert("start", {"uid": "u", "time": 1}, {"uid": "u", "time": 1})
    with pytest.raises(DocumentConflict, match="differs from the stored document in time"):
        check_reinsert("start", {"uid": "u", "time": 1}, {"uid": "u", "time": 2})
