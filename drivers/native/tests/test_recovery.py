"""A damaged, lost or stale run index: clear errors, bad rows skipped, rebuilt from the data
folder (``reindex``); event logs replayed exactly once, never while their writer lives."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3

import event_model
import numpy as np
import pytest

from intake_broker import BrokerCatalog
from intake_broker.queries import Comparison
from intake_broker.testing import assert_same_documents, insert_all
from intake_broker.testing.factories import asset_run, image_run, scalar_run
from intake_broker_native import CorruptIndex, IndexMissing, NativeStore, reindex
from intake_broker_native.recovery import main
from intake_broker_native.store import BadRowWarning

DATA_KEYS = {"x": {"dtype": "number", "shape": [], "source": "s"}}


def _runs(bluesky_runs) -> list[list[tuple[str, dict]]]:
    return [*bluesky_runs.values(), scalar_run(), image_run(), asset_run()]


def _snapshot(store: NativeStore) -> dict:
    return {r.start["uid"]: list(store.documents(r.start["uid"])) for r in store.runs()}


def _partial_run(store: NativeStore, uid: str, events: int) -> None:
    bundle = event_model.compose_run(uid=uid, time=1.8e9)
    desc = bundle.compose_descriptor(uid=f"{uid}-d", name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    for i in range(1, events + 1):
        store.insert(
            "event", desc.compose_event(data={"x": i * 0.5}, timestamps={"x": 0.0}, seq_num=i)
        )


def _killed_writer(folder, uid: str, events: int) -> None:
    """A forked writer that inserts a partial run (events buffered, never flushed) and is
    killed -9; returns when it is dead."""

    def write(fd: int) -> None:
        store = NativeStore.in_folder(folder, flush_interval=None)
        _partial_run(store, uid, events)
        os.write(fd, b"done\n")
        signal.pause()

    read, fd = os.pipe()
    child = multiprocessing.get_context("fork").Process(target=write, args=(fd,))
    child.start()
    os.close(fd)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.readline() == b"done\n"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)


# -- a damaged or lost index ---------------------------------------------------------------------


def test_random_bytes_in_place_of_the_index_name_the_file(tmp_path):
    path = tmp_path / "index.sqlite"
    path.write_bytes(os.urandom(16384))
    with pytest.raises(CorruptIndex, match=r"index\.sqlite' is damaged .*reindex") as err:
        NativeStore(f"sqlite:///{path}", tmp_path / "data")
    assert str(tmp_path) in str(err.value)
    assert "\\x" not in str(err.value)  # no binary garbage


def test_a_damaged_page_of_the_index_is_a_clear_error(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    for i in range(300):
        insert_all(store, scalar_run(time=1.7e9 + i, scan_id=i, n=1))
    store.close()
    path = tmp_path / "index.sqlite"
    raw = bytearray(path.read_bytes())
    raw[8192 : len(raw) - 4096] = os.urandom(len(raw) - 4096 - 8192)
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptIndex, match="index.sqlite' is damaged"):
        store = NativeStore.in_folder(tmp_path)
        store.runs()
        store.count(Comparison("gt", "scan_id", 3))


def test_a_bad_row_is_skipped_with_a_warning(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    docs = [scalar_run(time=1.7e9 + i, scan_id=i) for i in range(3)]
    for run in docs:
        insert_all(store, run)
    bad = docs[1][0][1]["uid"]
    with sqlite3.connect(tmp_path / "index.sqlite") as conn:
        conn.execute("UPDATE runs SET start_doc = '{not json' WHERE uid = ?", (bad,))
    with pytest.warns(BadRowWarning, match=f"run {bad!r} whose start or stop document is not"):
        listed = [r.start["uid"] for r in store.runs()]
    assert listed == [docs[2][0][1]["uid"], docs[0][0][1]["uid"]]
    with pytest.warns(BadRowWarning):
        assert len(BrokerCatalog(store)) >= 2
        assert [r.start["uid"] for r in store.runs(Comparison("ge", "scan_id", 0))] == listed
    with pytest.raises(CorruptIndex, match="reindex"):
        store.run(bad)
    # and reindex restores it from the run's journal
    store.close()
    report = reindex(tmp_path)
    assert report.runs == 3 and report.moved_aside
    assert {r.start["uid"] for r in NativeStore.in_folder(tmp_path).runs()} == {
        d[0][1]["uid"] for d in docs
    }


def test_a_deleted_index_next_to_data_is_an_error_not_an_empty_store(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    insert_all(store, scalar_run())
    store.close()
    os.remove(tmp_path / "index.sqlite")
    with pytest.raises(
        IndexMissing, match="holds runs .*intake-broker reindex --data .*data --index sqlite"
    ):
        NativeStore.in_folder(tmp_path)
    assert not (tmp_path / "index.sqlite").exists()  # no empty store was made
    with pytest.raises(IndexMissing):
        BrokerCatalog(NativeStore(f"sqlite:///{tmp_path}/index.sqlite"))  # data: the default
    reindex(tmp_path)
    assert len(NativeStore.in_folder(tmp_path).runs()) == 1


def test_a_new_postgresql_index_over_existing_data_is_refused(
    tmp_path, postgres_url, postgres_server
):
    store = NativeStore(postgres_url, tmp_path / "data")
    insert_all(store, scalar_run())
    store.close()
    from .conftest import new_postgres_index

    other = new_postgres_index(postgres_server)
    with pytest.raises(IndexMissing, match="holds no tables"):
        NativeStore(other, tmp_path / "data")
    report = reindex(tmp_path / "data", other)
    assert report.runs == 1 and len(NativeStore(other).runs()) == 1


# -- rebuilding from the data folder -----------------------------------------------------------


def test_reindex_rebuilds_every_document_in_order(tmp_path, bluesky_runs):
    store = NativeStore.in_folder(tmp_path, chunk_rows=3)
    inserted = _runs(bluesky_runs)
    for docs in inserted:
        insert_all(store, docs)
    _partial_run(store, "partial", 8)
    store.flush()
    before = _snapshot(store)
    summary = store.summary(bluesky_runs["scan"][0][1]["uid"])
    store.close()

    os.remove(tmp_path / "index.sqlite")
    report = reindex(tmp_path)
    assert report.runs == len(before) and report.incomplete == 1 and not report.problems
    rebuilt = NativeStore.in_folder(tmp_path)
    after = _snapshot(rebuilt)
    assert list(after) == list(before)
    for uid, docs in before.items():
        assert_same_documents(after[uid], docs)
    for docs in inserted:
        assert_same_documents(list(rebuilt.documents(docs[0][1]["uid"])), docs)
    assert rebuilt.summary(bluesky_runs["scan"][0][1]["uid"]) == summary
    cat = BrokerCatalog(rebuilt)
    assert not cat["partial"].complete
    np.testing.assert_array_equal(cat["partial"].primary.read()["x"].values, np.arange(1, 9) / 2)
    # the rebuilt store takes more: the partial run goes on
    rebuilt.insert(
        "stop", {"uid": "s", "run_start": "partial", "time": 1.9e9, "exit_status": "success"}
    )
    assert BrokerCatalog(rebuilt)["partial"].complete


def test_reindex_replays_the_log_of_a_writer_that_died(tmp_path):
    _killed_writer(tmp_path, "died", 37)
    os.remove(tmp_path / "index.sqlite")
    out = main(["--data", str(tmp_path)])
    assert out == 0
    store = NativeStore.in_folder(tmp_path)
    run = BrokerCatalog(store)["died"]
    assert not run.complete
    np.testing.assert_array_equal(run.primary.read()["x"].values, np.arange(1, 38) / 2)
    assert not list((tmp_path / "data" / "_wal").glob("*.wal"))


def test_reindex_command_reports_a_folder_without_runs(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["--data", str(tmp_path)]) == 1
    assert "holds no runs" in capsys.readouterr().err


def test_a_torn_journal_line_and_a_torn_chunk_are_skipped(tmp_path):
    store = NativeStore.in_folder(tmp_path, chunk_rows=4)
    insert_all(store, scalar_run(n=10))
    store.close()
    (journal,) = (tmp_path / "data").glob("*/documents.jsonl")
    with open(journal, "a") as f:
        f.write('{"kind": "resource", "ord": 99, "doc": {"uid": "tor')  # died mid-line
    (last,) = (tmp_path / "data").glob("*/*/det/c/2")  # rows 8..9 of det
    last.write_bytes(last.read_bytes()[:-3])
    with pytest.warns(UserWarning):
        report = reindex(tmp_path)
    assert report.events == 8 + 2 and len(report.problems) == 2  # primary, baseline
    assert "not a journal line" in report.problems[0] and "crc32c" in report.problems[1]
    (record,) = NativeStore.in_folder(tmp_path).runs()
    assert record.complete
    run = BrokerCatalog(NativeStore.in_folder(tmp_path))[-1]
    assert run.primary.read()["det"].shape == (8,)


# -- replaying logs: once, and never a live writer's -------------------------------------------


def test_a_log_is_replayed_once_when_two_processes_open_the_store(tmp_path):
    _killed_writer(tmp_path, "died", 500)

    def open_store(fd: int) -> None:
        os.write(fd, b"%d\n" % NativeStore.in_folder(tmp_path).recovered)
        os._exit(0)

    pipes, children = [], []
    for _ in range(2):
        read, fd = os.pipe()
        child = multiprocessing.get_context("fork").Process(target=open_store, args=(fd,))
        children.append((child, fd))
        pipes.append(read)
    for child, _ in children:  # both open the store at about the same time
        child.start()
    for _, fd in children:
        os.close(fd)
    recovered = []
    for read in pipes:
        with os.fdopen(read, "rb") as pipe:
            recovered.append(int(pipe.read() or b"0"))
    for child, _ in children:
        child.join(30)
    assert sorted(recovered) == [0, 500]
    cols = NativeStore.in_folder(tmp_path).read_events("died-d", uids=True)
    assert len(cols.uid) == len(set(cols.uid.tolist())) == 500


def test_a_live_writer_s_log_is_not_replayed_by_a_reader(tmp_path):
    writer = NativeStore.in_folder(tmp_path, flush_interval=None)
    _partial_run(writer, "live", 20)
    reader = NativeStore.in_folder(tmp_path)
    assert reader.recovered == 0
    assert len(list((tmp_path / "data" / "_wal").glob("*.wal"))) == 1
    assert len(reader.read_events("live-d").seq_num) == 0  # buffered, not flushed yet
    writer.insert(
        "stop", {"uid": "s", "run_start": "live", "time": 1.9e9, "exit_status": "success"}
    )
    assert len(reader.read_events("live-d").seq_num) == 20
    writer.close()
    assert not list((tmp_path / "data" / "_wal").iterdir())  # a clean close leaves no log


def test_fsync_durability(tmp_path):
    store = NativeStore.in_folder(tmp_path, durability="fsync", flush_interval=None)
    _partial_run(store, "synced", 5)
    (log,) = (tmp_path / "data" / "_wal").glob("*.wal")
    assert log.stat().st_size > 0
    store.close()
    with pytest.raises(ValueError, match="durability='sometimes' is not one of"):
        NativeStore.in_folder(tmp_path, durability="sometimes").insert(
            "start", event_model.compose_run().start_doc
        )


# -- intake-broker reindex on a terminal and into a pipe -----------------------------------------


def _stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal of 100 columns; (status, what it drew)."""
    import fcntl
    import select
    import struct
    import subprocess
    import termios

    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


def test_reindex_command_shows_progress_only_on_a_terminal(tmp_path):
    import subprocess
    import sys

    store = NativeStore.in_folder(tmp_path / "runs")
    for i in range(3):
        insert_all(store, scalar_run(n=4, scan_id=i + 1))
    store.close()
    env = {**os.environ, "INTAKE_BROKER_DATA": str(tmp_path / "elsewhere")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("NO_COLOR", None)
    cli = [sys.executable, "-m", "intake_broker.cli"]
    runs = str(tmp_path / "runs")

    done = subprocess.run(
        [*cli, "reindex", "--data", runs], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "3 runs (0 incomplete), 6 descriptors, 18 events" in done.stdout
    assert done.stderr == ""  # no bar into a pipe
    # the data folder given before the command's name is the one rebuilt (it was ignored)
    code, drawn = _stderr_on_a_terminal([*cli, "--data", runs, "reindex"], env)
    assert code == 0, drawn
    assert "reindex" in drawn and "%|" in drawn and "0/3" in drawn  # a tqdm bar of the runs
    assert drawn.count("\r") < 20  # throttled
    code, drawn = _stderr_on_a_terminal([*cli, "reindex", "--data", runs, "--no-progress"], env)
    assert code == 0 and "%|" not in drawn
    assert not (tmp_path / "elsewhere").exists()


def test_reindex_report_counts_with_plurals(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    _partial_run(store, "one", 1)
    store.close()
    text = str(reindex(tmp_path))
    assert "1 run (1 incomplete), 1 descriptor, 1 event," in text
    assert "1 runs" not in text and "1 descriptors" not in text
