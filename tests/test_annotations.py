"""Annotations on the memory store (the reference), over an attached annotation store, and
through the wrappers; the query language's annotation keys."""

from __future__ import annotations

import pickle

import pytest

from intake_broker.errors import BadAnnotation, BadQuery, NotSupported, UnknownDriver
from intake_broker.queries import Annotated, Contains, Viewer, bind_viewer, decode_query
from intake_broker.queries.expression import parse_query
from intake_broker.store.abilities import Annotations, abilities
from intake_broker.store.annotations import (
    AttachedAnnotations,
    MemoryAnnotations,
    attach_annotations,
)
from intake_broker.store.memory import MemoryStore
from intake_broker.testing.annotations import AnnotationTests
from intake_broker.testing.suite import insert_all
from intake_broker.views.catalog import BrokerCatalog


def _memory(runs) -> MemoryStore:
    store = MemoryStore()
    for docs in runs:
        insert_all(store, docs)
    return store


class TestMemoryAnnotations(AnnotationTests):
    def open_store(self, runs, tmp_path):
        return _memory(runs)

    def reopen(self, store):
        return pickle.loads(pickle.dumps(store))


class _ReadOnly(MemoryStore):
    """A memory store that is read-only and keeps no annotations (like suitcase files)."""

    writable = False

    def supports(self, ability: type) -> bool:
        return ability is not Annotations and super().supports(ability)


class TestAttachedToReadOnly(AnnotationTests):
    def open_store(self, runs, tmp_path):
        store = _ReadOnly()
        for docs in runs:
            for name, doc in docs:
                store.put(*_normalised(name, doc))
        return attach_annotations(store, "memory")


def _normalised(name, doc):
    from intake_broker.store import validation

    return validation.checked(name, doc, schema=False)


def test_parse_annotation_keys():
    assert parse_query('tags contains "x"') == Annotated(Contains("tags", "x"))
    q = parse_query('plan_name == "scan" and annotations.rating >= 4 and note text "a b"')
    assert decode_query(q.encode()) == q
    assert parse_query('start.tags contains "x"') == Contains("start.tags", "x")
    with pytest.raises(BadQuery):
        Annotated(Annotated(Contains("tags", "x")))


def test_bind_viewer_replaces_any_viewer():
    forged = Annotated(Contains("tags", "x"), Viewer("root", admin=True))
    bound = bind_viewer(~forged & parse_query("scan_id > 1"), Viewer("ada"))
    assert "root" not in str(bound.encode()) and "ada" in str(bound.encode())


def test_a_store_without_the_ability_says_so():
    store = _ReadOnly()
    assert "Annotations" not in abilities(store)
    with pytest.raises(NotSupported, match="keep annotations"):
        from intake_broker.store.abilities import require

        require(store, Annotations, "keep annotations")
    attached = attach_annotations(store, "memory")
    assert isinstance(attached, AttachedAnnotations) and "Annotations" in abilities(attached)
    with pytest.raises(BadAnnotation, match="not a place for annotations"):
        attach_annotations(store, "notes.db")
    with pytest.raises(UnknownDriver, match="annotation store for ftp:// URLs"):
        attach_annotations(store, "ftp://x")


def test_the_memory_store_has_the_ability():
    assert MemoryStore().supports(Annotations)
    assert isinstance(MemoryAnnotations(), Annotations)


def test_federated_annotations_follow_the_run():
    from intake_broker.federation.federated import FederatedStore
    from intake_broker.testing import factories

    a, b = MemoryStore(), MemoryStore()
    docs_a, docs_b = factories.scalar_run(), factories.scalar_run(scan_id=2, time=1_700_000_500.0)
    insert_all(a, docs_a)
    insert_all(b, docs_b)
    fed = BrokerCatalog(FederatedStore({"a": a, "b": b}))
    fed[docs_b[0][1]["uid"]].tag("in-b")
    assert b.annotations(docs_b[0][1]["uid"])[0]["tags"] == ["in-b"]
    assert a.annotations(docs_a[0][1]["uid"]) == []
    assert [r.uid for r in fed.search('tags contains "in-b"').values()] == [docs_b[0][1]["uid"]]


def test_yaml_annotations_argument(tmp_path):
    from intake_broker.catalogs.config import open_catalog

    (tmp_path / "cat.yml").write_text(
        "sources:\n  mem:\n    driver: bluesky-memory-catalog\n"
        "    args:\n      annotations: memory\n"
    )
    cat = open_catalog(str(tmp_path / "cat.yml"))["mem"]
    assert isinstance(cat.store, AttachedAnnotations)


def test_cli_tag_untag_note_annotations(tmp_path, capsys):
    pytest.importorskip("intake_broker_native")
    from intake_broker.cli import main

    data = str(tmp_path / "runs")
    assert (
        main(["--catalog", "native", "--data", data, "--no-progress", "demo", "--runs", "2"]) == 0
    )
    capsys.readouterr()
    assert main(["--catalog", "native", "--data", data, "tag", "-1", "good", "lab6"]) == 0
    assert main(["--catalog", "native", "--data", data, "note", "-1", "bad", "alignment",
                 "--set", "rating=4", "--visibility", "public"]) == 0  # fmt: skip
    assert main(["--catalog", "native", "--data", data, "untag", "-1", "lab6"]) == 0
    capsys.readouterr()
    assert main(["--catalog", "native", "--data", data, "ls"]) == 0
    out = capsys.readouterr().out
    assert "TAGS" in out and "good" in out and "lab6" not in out
    assert main(["--catalog", "native", "--data", data, "search", 'tags contains "good"']) == 0
    assert len([ln for ln in capsys.readouterr().out.splitlines() if "good" in ln]) == 1
    assert main(["--catalog", "native", "--data", data, "annotations", "-1"]) == 0
    out = capsys.readouterr().out
    assert "rating = 4" in out and "note: bad alignment" in out and "tags: good" in out
    assert main(["--catalog", "native", "--data", data, "annotations", "-1", "--history"]) == 0
    out = capsys.readouterr().out
    assert "+good" in out and "-lab6" in out and "rating=4" in out
    assert main(["--catalog", "native", "--data", data, "show", "-1"]) == 0
    assert "annotations:" in capsys.readouterr().out
    assert main(["--catalog", "native", "--data", data, "tag", "-1", "x", "--if-version", "9"]) == 1
    assert "version 2, not 9" in capsys.readouterr().err
