"""Saved queries and text queries through cat.search."""

from __future__ import annotations

import pytest

import intake_broker
from intake_broker.catalogs.saved import saved_queries
from intake_broker.errors import BadQuery
from intake_broker.testing import factories, insert_all


@pytest.fixture
def cat(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path))
    cat = intake_broker.temp()
    for docs in factories.many_runs(6):
        insert_all(cat.store, docs)
    return cat


def test_save_and_rerun(cat, tmp_path):
    cat.save_query("counts", 'plan_name == "count"')
    assert sorted(r.metadata["start"]["scan_id"] for r in cat.search(saved="counts").values()) == [
        1,
        3,
        5,
    ]
    assert (tmp_path / "saved-queries.json").exists()
    # a new session sees it, and it combines with another query
    again = intake_broker.temp()
    assert list(saved_queries()) == ["counts"]
    narrowed = cat.search("scan_id > 2", saved="counts")
    assert sorted(r.metadata["start"]["scan_id"] for r in narrowed.values()) == [3, 5]
    assert len(again.search(saved="counts")) == 0  # an empty catalog, the same saved query


def test_text_queries(cat):
    assert len(cat.search("scan_id >= 4")) == 3
    with pytest.raises(BadQuery, match="column"):
        cat.search("scan_id >>= 4")


def test_unknown_saved_query_lists_the_known(cat):
    cat.save_query("a", {"scan_id": 1})
    with pytest.raises(BadQuery, match="no saved query named 'b'; saved: a"):
        cat.search(saved="b")


def test_corrupt_saved_file_is_a_clear_error(cat, tmp_path):
    (tmp_path / "saved-queries.json").write_text("{not json")
    with pytest.raises(BadQuery, match="cannot be read"):
        cat.search(saved="x")
