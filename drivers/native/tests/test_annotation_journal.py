"""Annotations survive ``reindex``: every change is kept in ``<data>/_annotations`` before its
commit, and replayed into the rebuilt index (annotations, history, searches)."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from intake_broker.queries.expression import parse_query
from intake_broker.store.annotations import annotation_change
from intake_broker.testing import factories
from intake_broker.testing.suite import insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore, reindex
from intake_broker_native.annotation_journal import FOLDER, AnnotationJournal


def _store_with_runs(folder, n=3):
    store = NativeStore.in_folder(folder)
    runs = [factories.scalar_run(scan_id=i + 1, proposal_id="p-1") for i in range(n)]
    for docs in runs:
        insert_all(store, docs)
    return store, [docs[0][1]["uid"] for docs in runs]


def _everything(store, uids):
    return {uid: (store.annotations(uid), store.annotation_history(uid)) for uid in uids}


def test_reindex_keeps_annotations_and_history(tmp_path):
    store, uids = _store_with_runs(tmp_path)
    first = BrokerCatalog(store)[uids[0]]
    first.tag("good", "calibration")
    first.annotate(rating=4, note="bad alignment", visibility="proposal")
    first.untag("calibration")
    first.annotate(rating=5, visibility="proposal")
    undone = first.undo_annotation(first.annotations[0]["id"])
    BrokerCatalog(store)[uids[1]].tag("bad", visibility="public")
    before = _everything(store, uids)
    assert undone["tags"] == ["calibration", "good"] and len(before[uids[0]][1]) == 5
    store.close()

    report = reindex(tmp_path)
    assert report.annotation_changes == 6 and not report.problems
    again = NativeStore.in_folder(tmp_path)
    assert _everything(again, uids) == before
    # searches use the rebuilt annotation tables
    assert [r.uid for r in again.runs(parse_query('tags contains "good"'))] == [uids[0]]
    assert again.count(parse_query('note text "alignment" and annotations.rating >= 5')) == 1
    # and changes go on from the restored versions
    after = BrokerCatalog(again)[uids[0]].tag("more", if_version=undone["version"])
    assert after["version"] == undone["version"] + 1
    again.close()


def test_a_change_is_kept_before_its_commit_and_a_failed_one_is_replaced(tmp_path, monkeypatch):
    """The file is written inside the write transaction: if keeping it fails, nothing is
    committed; if the commit fails after it, the next change of that version replaces it."""
    store, uids = _store_with_runs(tmp_path, 1)
    uid = uids[0]
    store.change_annotation(uid, annotation_change(store, uid, author="ada", add_tags=["a"]))

    def full_disk(self, entry):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(AnnotationJournal, "write", full_disk)
        with pytest.raises(OSError, match="No space"):
            store.change_annotation(
                uid, annotation_change(store, uid, author="ada", add_tags=["b"])
            )
    assert store.annotations(uid)[0]["tags"] == ["a"]  # nothing committed

    real_write = AnnotationJournal.write

    def written_then_died(self, entry):
        real_write(self, entry)
        raise RuntimeError("the commit never happened")

    with monkeypatch.context() as patch:
        patch.setattr(AnnotationJournal, "write", written_then_died)
        with pytest.raises(RuntimeError):
            store.change_annotation(
                uid, annotation_change(store, uid, author="ada", add_tags=["phantom"])
            )
    done = store.change_annotation(uid, annotation_change(store, uid, author="ada", add_tags=["c"]))
    assert done["tags"] == ["a", "c"] and done["version"] == 2
    before = _everything(store, uids)
    store.close()
    reindex(tmp_path)
    again = NativeStore.in_folder(tmp_path)
    assert _everything(again, uids) == before  # the phantom version 2 was replaced
    again.close()


def _annotate_forever(folder: str, uid: str, fd: int) -> None:
    store = NativeStore.in_folder(folder)
    n = 0
    while True:
        n += 1
        store.change_annotation(
            uid, annotation_change(store, uid, author="ada", fields={"n": n}, visibility="public")
        )
        os.write(fd, f"{n}\n".encode())


def test_acknowledged_changes_survive_kill_and_reindex(tmp_path):
    """A writer killed with SIGKILL while annotating: every change it acknowledged is in the
    rebuilt index, with a complete history."""
    store, uids = _store_with_runs(tmp_path, 1)
    store.close()
    read, write = os.pipe()
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_annotate_forever, args=(str(tmp_path), uids[0], write))
    child.start()
    os.close(write)
    acknowledged = 0
    with os.fdopen(read, "rb", buffering=0) as pipe:
        buffered = b""
        while acknowledged < 40:
            chunk = pipe.read(64)
            assert chunk, "the writer died by itself"
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            acknowledged = int(lines[-1]) if lines else acknowledged
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        for raw in (buffered + pipe.read()).split(b"\n"):
            if raw.strip().isdigit():
                acknowledged = max(acknowledged, int(raw))
    reindex(tmp_path)
    again = NativeStore.in_folder(tmp_path)
    (kept,) = again.annotations(uids[0])
    assert kept["fields"]["n"] >= acknowledged and kept["version"] == kept["fields"]["n"]
    history = again.annotation_history(uids[0])
    assert [e["version"] for e in history] == list(range(1, kept["version"] + 1))
    assert os.path.isdir(tmp_path / "data" / FOLDER)
    again.close()
