"""copy_runs: any store into any store, resumable, with its counts checked."""

from __future__ import annotations

import pytest

from intake_broker.errors import ReadOnlyStore
from intake_broker.queries import Eq
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker_native import CopyMismatch, NativeStore, copy_runs


@pytest.fixture
def source():
    store = MemoryStore()
    runs = [
        factories.scalar_run(n=30, time=1_600_000_000, scan_id=1),
        factories.image_run(),
        factories.reconfigured_run(),
        factories.asset_run(),
        factories.scalar_run(n=4, time=1_600_000_900, scan_id=2, stop=False),
    ]
    for docs in runs:
        insert_all(store, docs)
    return store


def _same_runs(a, b) -> None:
    assert sorted(r.uid for r in a.runs()) == sorted(r.uid for r in b.runs())
    for record in a.runs():
        assert_same_documents(list(b.documents(record.uid)), list(a.documents(record.uid)))


def test_copy_then_copy_again_skips_what_is_complete(source, tmp_path, capsys):
    dest = NativeStore.in_folder(tmp_path, chunk_rows=8)
    report = copy_runs(source, dest, progress=True)
    assert len(report.copied) == 5 and report.skipped == [] and len(report.incomplete) == 1
    assert (
        report.events
        == sum(
            len(d["uid"])
            for r in source.runs()
            for n, d in source.documents(r.uid)
            if n == "event_page"
        )
        == 50
    )
    assert "copying runs" in capsys.readouterr().err  # the progress bar
    _same_runs(source, NativeStore(dest.index))
    again = copy_runs(source, dest, progress=False)
    # complete runs are skipped; the incomplete one is replayed (every document a no-op)
    assert len(again.skipped) == 4 and again.copied == report.incomplete
    assert capsys.readouterr().err == ""
    _same_runs(source, dest)


def test_an_interrupted_copy_resumes(source, tmp_path):
    class Failing:
        """The source, failing in the middle of the third run's documents."""

        def __init__(self, store, fail_after):
            self.store, self.left = store, fail_after

        def __getattr__(self, name):
            return getattr(self.store, name)

        def documents(self, uid):
            for doc in self.store.documents(uid):
                self.left -= 1
                if self.left < 0:
                    raise ConnectionError("the source went away")
                yield doc

    dest = NativeStore.in_folder(tmp_path, chunk_rows=8)
    first_two = sum(
        len(list(source.documents(r.uid))) for r in source.runs(sort=(("time", 1),))[:2]
    )
    with pytest.raises(ConnectionError):
        copy_runs(Failing(source, first_two + 5), dest, progress=False)
    # oldest first: a complete run, the incomplete one, and the third broken off
    assert dest.count() == 3 and sum(r.complete for r in dest.runs()) == 1
    report = copy_runs(source, dest, progress=False)
    assert len(report.skipped) == 1 and len(report.copied) == 4
    _same_runs(source, dest)


def test_counts_that_differ_after_copying_are_an_error(tmp_path):
    docs = factories.scalar_run(n=6)
    dest = NativeStore.in_folder(tmp_path)
    insert_all(dest, docs)  # the destination holds all six events
    fewer = MemoryStore()
    insert_all(fewer, [d for d in docs if not (d[0] == "event" and d[1]["seq_num"] > 4)])
    with pytest.raises(CopyMismatch) as info:
        copy_runs(fewer, dest, progress=False)
    message = str(info.value)
    assert docs[0][1]["uid"] in message and "'primary': source 4, destination 6" in message


def test_native_to_memory_and_a_query(source, tmp_path):
    native = NativeStore.in_folder(tmp_path)
    copy_runs(source, native, progress=False)
    back = MemoryStore()
    report = copy_runs(native, back, query=Eq("plan_name", "count"), progress=False)
    assert len(report.copied) == 3
    assert sorted(r.uid for r in back.runs()) == sorted(
        r.uid for r in source.runs(Eq("plan_name", "count"))
    )
    for record in back.runs():
        assert_same_documents(list(back.documents(record.uid)), list(source.documents(record.uid)))


def test_copy_from_suitcase_files(tmp_path, bluesky_runs):
    files = pytest.importorskip("intake_broker_files")
    folder = tmp_path / "jsonl"
    folder.mkdir()
    jsonl = files.FilesStore([str(folder / "*.jsonl")], format="jsonl")
    for docs in bluesky_runs.values():
        insert_all(jsonl, docs)
    dest = NativeStore.in_folder(tmp_path / "native")
    report = copy_runs(
        files.FilesStore([str(folder / "*.jsonl")], format="jsonl"), dest, progress=False
    )
    assert len(report.copied) == len(bluesky_runs)
    for docs in bluesky_runs.values():
        assert_same_documents(list(dest.documents(docs[0][1]["uid"])), docs)


def test_a_read_only_destination_is_refused(source):
    class ReadOnly(MemoryStore):
        writable = False

    with pytest.raises(ReadOnlyStore, match="read-only"):
        copy_runs(source, ReadOnly(), progress=False)
