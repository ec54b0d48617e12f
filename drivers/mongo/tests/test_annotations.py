"""What is particular to annotations on MongoDB (the ability itself is tested by the conformance
suite in test_conformance.py): searches narrowed by the annotation collection, a change
interrupted between its claim and its commit, and the collections and indexes of ours."""

from __future__ import annotations

import pytest

from intake_broker.queries import bind_viewer
from intake_broker.queries.expression import parse_query
from intake_broker.store.annotations import annotation_change
from intake_broker.testing.annotations import VIEWERS, annotate_runs, make_runs
from intake_broker.testing.suite import insert_all
from intake_broker_mongo import MongoStore
from intake_broker_mongo.annotations import AnnotationCollections
from intake_broker_mongo.layout import ANNOTATION_HISTORY, ANNOTATIONS, RUN_START


@pytest.fixture(scope="module")
def annotated(mongo_server):
    import uuid

    import pymongo

    name = f"test-annotated-{uuid.uuid4().hex[:12]}"
    store = MongoStore(f"{mongo_server}/{name}", validate=False)
    runs = make_runs()
    for docs in runs:
        insert_all(store, docs)
    annotate_runs(store, runs)
    yield store
    store.close()
    pymongo.MongoClient(mongo_server).drop_database(name)


@pytest.mark.parametrize(
    "text",
    [
        'tags contains "calibration"',
        "annotations.rating >= 4",
        'annotations.sample in ["LaB6", "Si"]',
        'note text "alignment"',
        'plan_name == "scan" and tags contains "good"',
    ],
)
@pytest.mark.parametrize("viewer", ["everyone", "ada", "grace"])
def test_annotation_queries_are_narrowed_by_the_collection(annotated, text, viewer):
    """The runs handed to the evaluator are those the annotation collection names (exact for
    these queries), not every run of the database."""
    query = bind_viewer(parse_query(text), VIEWERS[viewer])
    found = annotated.index_runs(query, sort=(), skip=0, limit=None)
    candidates = [record.uid for record, _ in found.records]
    matches = {r.uid for r in annotated.runs(query)}
    assert set(candidates) == matches
    assert len(candidates) < annotated.count()


def test_negated_annotation_queries_are_evaluated_over_every_run(annotated):
    query = parse_query('not tags contains "good"')
    found = annotated.index_runs(query, sort=(), skip=0, limit=None)
    assert len(list(found.records)) == annotated.count()
    assert 0 < annotated.count(query) < annotated.count()


def test_interrupted_change_is_finished_by_the_next_writer(store, monkeypatch):
    """A writer killed after claiming its version in the history (before moving the
    annotation) leaves a change the next writer completes: nothing is lost."""
    run = make_runs()[0]
    insert_all(store, run)
    uid = run[0][1]["uid"]
    store.change_annotation(uid, annotation_change(store, uid, author="ada", add_tags=["a"]))

    def killed(self, new):
        raise SystemExit("killed between claim and commit")

    with monkeypatch.context() as patch:
        patch.setattr(AnnotationCollections, "_commit", killed)
        with pytest.raises(SystemExit):
            store.change_annotation(
                uid, annotation_change(store, uid, author="ada", add_tags=["b"], if_version=1)
            )
    (stale,) = store.annotations(uid)
    assert stale["tags"] == ["a"] and len(store.annotation_history(uid)) == 2
    # the next writer finishes the claimed change first: its stale if_version is a conflict
    from intake_broker.errors import AnnotationConflict

    with pytest.raises(AnnotationConflict) as err:
        store.change_annotation(
            uid, annotation_change(store, uid, author="ada", add_tags=["c"], if_version=1)
        )
    assert err.value.current["tags"] == ["a", "b"]
    done = store.change_annotation(uid, annotation_change(store, uid, author="ada", add_tags=["c"]))
    assert done["tags"] == ["a", "b", "c"] and done["version"] == 3
    assert [e["version"] for e in store.annotation_history(uid)] == [1, 2, 3]


def test_collections_of_ours_beside_the_layout(store):
    run = make_runs()[0]
    insert_all(store, run)
    uid = run[0][1]["uid"]
    store.change_annotation(uid, annotation_change(store, uid, author="ada", add_tags=["x"]))
    database = store._collection(RUN_START).database
    assert {ANNOTATIONS, ANNOTATION_HISTORY} <= set(database.list_collection_names())
    indexed = {
        tuple(k for k, _ in v["key"]) for v in database[ANNOTATIONS].index_information().values()
    }
    assert {("tags",), ("field_names",), ("note_words",), ("run_uid", "created")} <= indexed
    history = database[ANNOTATION_HISTORY].find_one()
    assert history["_id"].endswith(":1")  # the claim of version 1
    stored = database[ANNOTATIONS].find_one()
    assert stored["run_uid"] == uid and "note_words" not in store.annotations(uid)[0]
