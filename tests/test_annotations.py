"""Annotations on the memory store (the reference), over an attached annotation store, and
through the wrappers; the query language's annotation keys."""

from __future__ import annotations

import pickle

import pytest

from intake_broker.errors import BadQuery, NotSupported
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
    with pytest.raises(Exception, match="not a place for annotations"):
        attach_annotations(store, "ftp://x")


def test_the_memory_store_has_the_ability():
    assert MemoryStore().supports(Annotations)
    assert isinstance(MemoryAnnotations(), Annotations)
