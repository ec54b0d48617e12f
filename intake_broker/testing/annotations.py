"""``AnnotationTests``: the annotations ability, the same on every store that has it.

A store's test class says how to open a store holding given runs (writable stores insert them;
an attached annotation store wraps a read-only store already holding them)::

    class TestMyStoreAnnotations(AnnotationTests):
        def open_store(self, runs, tmp_path):
            store = MyStore(tmp_path / "idx")
            for docs in runs:
                insert_all(store, docs)
            return store

Query answers are compared with the memory store (the reference) holding the same runs and
the same annotations, for every query of :data:`ANNOTATION_QUERIES`, as everyone and as a user
who sees only some annotations.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from intake_broker.errors import AnnotationConflict, BadAnnotation, RunNotFound
from intake_broker.queries import Viewer, bind_viewer
from intake_broker.queries.expression import parse_query
from intake_broker.store.annotations import annotation_change
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories
from intake_broker.testing.suite import insert_all
from intake_broker.views.catalog import BrokerCatalog

#: Queries on annotations (and combined with the run's documents) every store answers alike.
ANNOTATION_QUERIES = [
    'tags contains "good"',
    'tags contains "calibration"',
    'tags == "bad"',
    'not tags contains "good"',
    "annotations.rating >= 4",
    "annotations.rating < 3",
    "1 < annotations.rating <= 4",
    "annotations.rating == 5",
    'annotations.sample == "LaB6"',
    'annotations.sample in ["LaB6", "Si"]',
    "has annotations.rating",
    "not has annotations.rating",
    "annotations.offset contains 0.5",
    "annotations.flag == true",
    'note text "alignment"',
    'note text "bad ALIGNMENT"',
    'plan_name == "scan" and tags contains "good"',
    'tags contains "good" or annotations.rating >= 5',
    'scan_id > 5 and not tags contains "bad"',
    'tags ~ "^cal"',
    'annotations.sample like "LaB7"',
]

RUNS = 24
USERS = ("ada", "grace")


def make_runs() -> list[Any]:
    """``RUNS`` small runs, proposals p-1 / p-2 alternating, scan_ids 1..RUNS."""
    return [
        factories.scalar_run(
            n=2,
            time=1_700_000_000.0 + 60 * i,
            scan_id=i + 1,
            plan_name="scan" if i % 2 else "count",
            proposal_id=f"p-{i % 2 + 1}",
        )
        for i in range(RUNS)
    ]


def annotate_runs(store: Any, runs: list) -> None:
    """The same annotations, by two authors with every visibility, on ``store``."""
    for i, docs in enumerate(runs):
        uid = docs[0][1]["uid"]
        author = USERS[i % 2]
        if i % 3 == 0:
            change(store, uid, author, add_tags=["good"], visibility="public")
        if i % 4 == 1:
            change(store, uid, "ada", add_tags=["bad", "calibration"], visibility="private")
        if i % 5 == 2:
            change(store, uid, "grace", add_tags=["calibration"], visibility="proposal")
        if i % 3 != 2:
            change(
                store,
                uid,
                author,
                fields={"rating": i % 7, "sample": ["LaB6", "Si", "CeO2"][i % 3]},
                visibility="private" if i % 2 else "public",
            )
        if i % 4 == 0:
            change(store, uid, "ada", fields={"offset": [0.5, i], "flag": i % 8 == 0},
                   visibility="groups", groups=["optics"])  # fmt: skip
        if i % 6 == 1:
            change(
                store, uid, author, note="Bad alignment of the mirror; redo", visibility="public"
            )
        if i % 7 == 3:
            change(store, uid, "grace", note="alignment fine", visibility="private")


def change(store: Any, uid: str, author: str, **kwargs: Any) -> dict:
    return store.change_annotation(uid, annotation_change(store, uid, author=author, **kwargs))


VIEWERS = {
    "everyone": None,
    "ada": Viewer("ada", proposals=("p-1",), groups=("optics",)),
    "grace": Viewer("grace", proposals=("p-2",)),
    "admin": Viewer("root", admin=True),
}


class AnnotationTests:
    """The :class:`~intake_broker.store.abilities.Annotations` ability, as tests."""

    def open_store(self, runs: list, tmp_path: Any) -> Any:
        """A store holding ``runs`` that keeps annotations (subclasses define it)."""
        raise NotImplementedError

    def reopen(self, store: Any) -> Any:
        """A new store object over the same data (stores that persist override this)."""
        return store

    @pytest.fixture
    def runs(self) -> list:
        return [factories.scalar_run(uid=None, proposal_id="p-1"), factories.scalar_run(scan_id=2)]

    @pytest.fixture
    def store(self, runs, tmp_path):
        return self.open_store(runs, tmp_path)

    @pytest.fixture
    def run(self, store, runs):
        return BrokerCatalog(store)[runs[0][0][1]["uid"]]

    def test_tag_and_untag(self, run, store):
        first = run.tag("good", "calibration")
        assert first["tags"] == ["calibration", "good"] and first["version"] == 1
        assert run.tags == ["calibration", "good"]
        assert run.tag("good")["version"] == 1  # nothing changed: no new version
        run.untag("good")
        assert run.tags == ["calibration"]
        again = BrokerCatalog(self.reopen(store))[run.uid]
        assert again.tags == ["calibration"]
        assert [a["version"] for a in again.annotations] == [2]

    def test_fields_note_history_and_undo(self, run, store):
        made = run.annotate(rating=4, sample={"name": "LaB6", "offset": [0.1, 0.0]}, note="ok")
        run.annotate(rating=2, note="bad alignment", remove=["sample"])
        (current,) = run.annotations
        assert current["fields"] == {"rating": 2} and current["note"] == "bad alignment"
        assert current["author"] == made["author"] and current["version"] == 2
        assert current["created"] <= current["updated"]
        history = BrokerCatalog(self.reopen(store))[run.uid].annotation_history()
        assert [e["version"] for e in history] == [1, 2]
        assert history[0]["before"] is None and history[1]["before"]["fields"]["rating"] == 4
        assert history[1]["after"]["note"] == "bad alignment"
        assert all(e["who"] == made["author"] for e in history)
        assert run.annotation_as_of(current["id"], 1)["fields"]["sample"]["name"] == "LaB6"
        undone = run.undo_annotation(current["id"])
        assert undone["version"] == 3 and undone["fields"]["rating"] == 4
        assert undone["note"] == "ok" and len(run.annotation_history()) == 3

    def test_stale_if_version_is_a_conflict_and_stores_nothing(self, run):
        run.tag("a")
        run.tag("b", if_version=1)
        with pytest.raises(AnnotationConflict) as err:
            run.tag("c", if_version=1)
        assert err.value.current is not None and err.value.current["tags"] == ["a", "b"]
        assert "version 2" in str(err.value)
        with pytest.raises(AnnotationConflict):
            run.annotate(rating=1, if_version=3)
        assert run.tags == ["a", "b"] and len(run.annotation_history()) == 2

    @pytest.mark.parametrize(
        "call, error",
        [
            (lambda r: r.tag(1), BadAnnotation),
            (lambda r: r.tag(""), BadAnnotation),
            (lambda r: r.tag("x" * 500), BadAnnotation),
            (lambda r: r.annotate(value=object()), BadAnnotation),
            (lambda r: r.annotate(value=float("nan")), BadAnnotation),
            (lambda r: r.annotate(value="x" * 20_000), BadAnnotation),
            (lambda r: r.annotate(note="x" * 20_001), BadAnnotation),
            (lambda r: r.annotate(note=3), BadAnnotation),
            (lambda r: r.annotate(**{"bad-name": 1}), BadAnnotation),
            (lambda r: r.annotate(tags=["x"]), BadAnnotation),
            (lambda r: r.annotate(rating=1, visibility="friends"), BadAnnotation),
            (lambda r: r.annotate(rating=1, visibility="groups"), BadAnnotation),
            (lambda r: r.annotate(rating=1, seq_range=(5, 2)), BadAnnotation),
            (lambda r: r.tag("x", if_version=-1), BadAnnotation),
            (lambda r: r.annotate(), BadAnnotation),
        ],
    )
    def test_bad_input_is_refused_and_stores_nothing(self, run, call, error):
        with pytest.raises(error) as err:
            call(run)
        assert str(err.value)
        assert run.annotations == [] and run.annotation_history() == []

    def test_unknown_run(self, store):
        with pytest.raises(RunNotFound):
            annotation_change(store, "no-such-run", author="ada", add_tags=["x"])
        with pytest.raises(RunNotFound):
            store.annotations("no-such-run")

    def test_proposal_visibility_needs_a_proposal(self, store, runs):
        run = BrokerCatalog(store)[runs[1][0][1]["uid"]]  # names no proposal
        with pytest.raises(BadAnnotation, match="names no proposal"):
            run.tag("x", visibility="proposal")
        shared = BrokerCatalog(store)[runs[0][0][1]["uid"]].tag("x", visibility="proposal")
        assert shared["proposals"] == ["p-1"]

    def test_documents_are_never_changed(self, store, runs):
        uid = runs[0][0][1]["uid"]
        before = list(store.documents(uid))
        run = BrokerCatalog(store)[uid]
        run.tag("good")
        run.annotate(rating=5, note="great", stream="primary", seq_range=(1, 3))
        assert list(self.reopen(store).documents(uid)) == before
        targeted = [a for a in run.annotations if a["stream"] == "primary"]
        assert targeted[0]["seq_range"] == [1, 3] and targeted[0]["fields"] == {"rating": 5}

    def test_concurrent_writers_lose_no_update(self, run, store):
        """Two writers increment one counter with if_version (retrying on conflict) and set
        their own field: every increment counts, and the history is complete and ordered."""
        per_writer = 150
        uid = run.uid

        def writer(name: str) -> None:
            done = 0
            while done < per_writer:
                current = [a for a in store.annotations(uid) if a["visibility"] == "public"]
                version = current[0]["version"] if current else 0
                count = current[0]["fields"].get("count", 0) if current else 0
                try:
                    change(store, uid, "ada", fields={"count": count + 1, name: done},
                           visibility="public", if_version=version)  # fmt: skip
                except AnnotationConflict:
                    continue
                done += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in ("w1", "w2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (final,) = store.annotations(uid)
        assert final["fields"] == {
            "count": 2 * per_writer,
            "w1": per_writer - 1,
            "w2": per_writer - 1,
        }
        history = store.annotation_history(uid)
        assert [e["version"] for e in history] == list(range(1, 2 * per_writer + 1))
        assert [e["after"]["fields"]["count"] for e in history] == list(
            range(1, 2 * per_writer + 1)
        )

    # -- queries: the memory store is the reference ---------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def query_runs(cls) -> list:
        return make_runs()

    @pytest.fixture(scope="class")
    @classmethod
    def query_stores(cls, query_runs, tmp_path_factory):
        reference = MemoryStore()
        for docs in query_runs:
            insert_all(reference, docs)
        annotate_runs(reference, query_runs)
        store = cls().open_store(query_runs, tmp_path_factory.mktemp("annotation-queries"))
        annotate_runs(store, query_runs)
        return reference, store

    @pytest.mark.parametrize("viewer", list(VIEWERS))
    @pytest.mark.parametrize("text", ANNOTATION_QUERIES)
    def test_query(self, query_stores, text, viewer):
        reference, store = query_stores
        query = bind_viewer(parse_query(text), VIEWERS[viewer])
        expected = [r.uid for r in reference.runs(query)]
        assert [r.uid for r in store.runs(query)] == expected
        assert store.count(query) == len(expected)
        assert [r.uid for r in store.runs(query, skip=1, limit=2)] == expected[1:3]

    def test_queries_discriminate(self, query_stores):
        reference, _ = query_stores
        for text in ANNOTATION_QUERIES:
            found = reference.count(parse_query(text))
            assert 0 < found < RUNS, (text, found)
        # a private tag shows to its author only
        ada = bind_viewer(parse_query('tags contains "bad"'), VIEWERS["ada"])
        grace = bind_viewer(parse_query('tags contains "bad"'), VIEWERS["grace"])
        admin = bind_viewer(parse_query('tags contains "bad"'), VIEWERS["admin"])
        mine = {r.uid for r in reference.runs(ada)}
        assert mine and not mine & {r.uid for r in reference.runs(grace)}
        assert reference.count(admin) == 0
