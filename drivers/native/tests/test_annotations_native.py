"""Annotations in the native store (SQLite, PostgreSQL), in an annotation index attached to a
read-only files store, and two processes writing one annotation."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import sqlalchemy as sa

from intake_broker.errors import AnnotationConflict, ReadOnlyStore
from intake_broker.queries import Viewer, bind_viewer
from intake_broker.queries.expression import parse_query
from intake_broker.store.abilities import Annotations
from intake_broker.store.annotations import annotation_change, attach_annotations
from intake_broker.testing import factories
from intake_broker.testing.annotations import AnnotationTests
from intake_broker.testing.suite import insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore
from intake_broker_native.annotations import AnnotationIndex
from intake_broker_native.schema import SCHEMA_VERSION, runs
from intake_broker_native.sqlquery import translate


def _loaded(store, runs):
    for docs in runs:
        insert_all(store, docs)
    store.flush()
    return store


class TestSQLiteAnnotations(AnnotationTests):
    def open_store(self, runs, tmp_path):
        return _loaded(NativeStore(f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "d")), runs)

    def reopen(self, store):
        return NativeStore(store.index, store.data)


class TestPostgresAnnotations(AnnotationTests):
    server: str

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _server(cls, postgres_server):
        cls.server = postgres_server

    def open_store(self, runs, tmp_path):
        from .conftest import new_postgres_index

        return _loaded(NativeStore(new_postgres_index(self.server), str(tmp_path / "d")), runs)

    def reopen(self, store):
        return NativeStore(store.index, store.data)


class TestAnnotationIndexOverReadOnlyFiles(AnnotationTests):
    """``annotations: sqlite:///notes.db`` on a catalog of suitcase files it cannot write."""

    def open_store(self, runs, tmp_path):
        from intake_broker_files import JSONLStore

        class ReadOnlyJSONL(JSONLStore):
            writable = False

            def put(self, kind, doc):
                raise ReadOnlyStore("read-only")

        folder = tmp_path / "files"
        _loaded(JSONLStore(str(folder)), runs)
        readonly = ReadOnlyJSONL(str(folder))
        assert not readonly.supports(Annotations)
        return attach_annotations(readonly, AnnotationIndex(f"sqlite:///{tmp_path}/notes.db"))

    def reopen(self, store):
        return attach_annotations(store.store, AnnotationIndex(store.annotation_store.index))


def test_tag_queries_are_answered_by_sql_alone(tmp_path):
    store = _loaded(NativeStore(f"sqlite:///{tmp_path}/i.sqlite"), [factories.scalar_run()])
    texts = [
        'tags contains "x"',
        'annotations.s in ["a", "b"]',
        "annotations.s >= 'b'",
        'plan_name == "scan" and not tags contains "y"',
        "has annotations.rating",
    ]
    for text in texts:
        query = bind_viewer(parse_query(text), Viewer("ada", ("p",), ("g",)))
        assert translate(query, "sqlite", False).exact, text
    # numbers: SQL answers, Python only checks integers too large for a float (there are none)
    uid = store.runs()[0].uid
    change = annotation_change(store, uid, author="ada", fields={"rating": 5}, visibility="public")
    store.change_annotation(uid, change)
    cond = translate(parse_query("annotations.rating >= 4"), "sqlite", False)
    with store.engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(runs)
        assert conn.execute(count.where(cond.yes)).scalar() == 1
        assert conn.execute(count.where(cond.maybe)).scalar() == 1
    assert not translate(parse_query('note text "a"'), "sqlite", False).exact


def test_an_index_of_version_3_is_upgraded(tmp_path):
    index = f"sqlite:///{tmp_path}/i.sqlite"
    docs = factories.scalar_run()
    _loaded(NativeStore(index), [docs]).close()
    engine = sa.create_engine(index)
    with engine.begin() as conn:
        for table in ("annotations", "annotation_tags", "annotation_fields",
                      "annotation_audience", "annotation_history"):  # fmt: skip
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("UPDATE schema_version SET version = 3")
    engine.dispose()
    store = NativeStore(index)
    run = BrokerCatalog(store)[docs[0][1]["uid"]]
    run.tag("kept")
    assert run.tags == ["kept"] and SCHEMA_VERSION == 4


def test_attach_by_url(tmp_path, monkeypatch):
    """The YAML form: a sqlite URL names an annotation index (through the native plugin)."""
    from intake_broker import plugins

    # what the entry points of the native driver declare (sqlite, postgresql)
    monkeypatch.setattr(plugins, "load", lambda group, name, what="": AnnotationIndex)
    base = _loaded(NativeStore(f"sqlite:///{tmp_path}/runs.sqlite"), [factories.scalar_run()])
    store = attach_annotations(base, f"sqlite:///{tmp_path}/notes.db")
    assert store.supports(Annotations)
    uid = base.runs()[0].uid
    BrokerCatalog(store)[uid].tag("noted")
    assert base.annotations(uid) == []  # kept in notes.db, not in the run index
    assert [r.uid for r in store.runs(parse_query('tags contains "noted"'))] == [uid]


def _writer(index: str, uid: str, name: str, count: int) -> None:
    store = NativeStore(index)
    done = 0
    while done < count:
        current = [a for a in store.annotations(uid) if a["visibility"] == "public"]
        version = current[0]["version"] if current else 0
        total = current[0]["fields"].get("count", 0) if current else 0
        change = annotation_change(store, uid, author=name, fields={"count": total + 1, name: done},
                                   visibility="public", if_version=version)  # fmt: skip
        try:
            store.change_annotation(uid, change)
        except AnnotationConflict:
            continue
        done += 1
    store.close()


@pytest.mark.parametrize("updates", [1000])
def test_two_processes_lose_no_update(tmp_path, updates):
    index = f"sqlite:///{tmp_path}/i.sqlite"
    docs = factories.scalar_run()
    _loaded(NativeStore(index), [docs]).close()
    uid = docs[0][1]["uid"]
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(index, uid, n, updates)) for n in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    store = NativeStore(index)
    (final,) = store.annotations(uid)
    assert final["fields"] == {"count": 2 * updates, "p1": updates - 1, "p2": updates - 1}
    assert final["version"] == 2 * updates
    history = store.annotation_history(uid)
    assert [e["version"] for e in history] == list(range(1, 2 * updates + 1))
    assert [e["after"]["fields"]["count"] for e in history] == list(range(1, 2 * updates + 1))
    assert {e["who"] for e in history} == {"p1", "p2"}
    assert os.path.exists(f"{tmp_path}/i.sqlite")
