"""kill -9 of a writer: no acknowledged document is lost.

A writer process inserts a run one document per ``insert`` (as a RunEngine does) and reports
each document the moment ``insert`` returned; it is killed at a random (seeded) moment; the
store is reopened (which replays the writer's write-ahead log) and must hold every
acknowledged event, read the partial run as not stopped, and take new runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import event_model
import numpy as np
import pytest
import sqlalchemy as sa

from intake_broker.testing.crash import DATA_KEYS, EVENTS, run_and_kill
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore

CHUNK = 500
KILLS = 10


def _check_round(store: NativeStore, round_: int, acked: list[str]) -> None:
    uid = f"run-{round_}"
    if "start" not in acked:  # killed before the start was acknowledged
        return
    record = store.run(uid)
    events = [int(a) for a in acked if a.isdigit()]
    if "descriptor" not in acked:
        assert not events
        return
    stored = store.read_events(f"desc-{round_}", uids=True)
    seq = np.asarray(stored.seq_num)
    # every acknowledged event is there (at most the one being inserted beyond them)
    assert set(events) <= set(seq.tolist()), f"lost {len(set(events) - set(seq.tolist()))}"
    assert len(seq) - len(events) <= 1
    np.testing.assert_array_equal(seq, np.arange(1, len(seq) + 1))
    np.testing.assert_array_equal(stored.data["x"], seq * 1.5)
    np.testing.assert_array_equal(stored.data["n"], seq)
    assert stored.uid.tolist() == [f"e{round_}-{i}" for i in seq]
    if "stop" in acked:
        assert record.complete
    elif len(seq) < EVENTS:  # a partial run: readable and not stopped
        assert record.stop is None and not record.complete
        run = BrokerCatalog(store)[uid]
        assert not run.complete
        np.testing.assert_array_equal(run.primary.read()["n"].values, seq)


def _ten_kills(index: str, data: str, seed: int) -> None:
    rng = random.Random(seed)
    # the writer needs ~2 s for 10,000 events on a 2-core machine shared with other tests
    delays = [rng.uniform(0.0, 2.5) for _ in range(KILLS)]
    acknowledged = 0
    for round_, delay in enumerate(delays):
        acked = run_and_kill(
            lambda: NativeStore(index, data, chunk_rows=CHUNK, flush_interval=None), round_, delay
        )
        acknowledged += sum(a.isdigit() for a in acked)
        store = NativeStore(index, data)  # replays the dead writer's log
        try:
            _check_round(store, round_, acked)
        finally:
            store.close()
    assert acknowledged > KILLS * 500, "the kills came too early to test anything"
    # the store takes a new run after all that, and every round's run is listed
    store = NativeStore(index, data)
    bundle = event_model.compose_run(uid="after", time=1.9e9)
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    for i in range(1, 6):
        store.insert(
            "event", desc.compose_event(data={"x": 1.0, "n": i}, timestamps={"x": 0, "n": 0})
        )
    store.insert("stop", bundle.compose_stop())
    run = BrokerCatalog(store)["after"]
    assert run.complete and run.primary.read()["n"].values.tolist() == [1, 2, 3, 4, 5]
    store.close()
    assert not [f for f in os.listdir(os.path.join(data, "_wal")) if f.endswith(".wal")], (
        "replayed logs are removed"
    )


def test_kill_9_ten_times_sqlite_loses_no_acknowledged_event(tmp_path):
    _ten_kills(f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "data"), seed=14)


def test_kill_9_ten_times_postgresql_loses_no_acknowledged_event(tmp_path, postgres_url):
    _ten_kills(postgres_url, str(tmp_path / "data"), seed=15)


# -- a whole run resumed by a new writer, in a fresh interpreter --------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    import event_model
    from intake_broker_native import NativeStore

    index, data, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
    store = NativeStore(index, data, chunk_rows=500, flush_interval=None)
    bundle = event_model.compose_run(uid="crash-run", time=1.7e9,
                                     metadata={"scan_id": 1, "plan_name": "count"})
    desc = bundle.compose_descriptor(
        uid="crash-descriptor", name="primary", time=1.7e9,
        data_keys={"x": {"dtype": "number", "shape": [], "source": "s"},
                   "n": {"dtype": "integer", "shape": [], "source": "s"}})
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    print("started", flush=True)
    events = []
    for i in range(EVENTS):
        t = 1.7e9 + i
        events.append(desc.compose_event(
            uid=f"event-{i}", data={"x": i * 1.5, "n": i}, timestamps={"x": t, "n": t},
            time=t, seq_num=i + 1))
        if not resume:  # live, one event at a time, from a detector that takes its time
            store.insert("event", events.pop())
            print(i, flush=True)
            time.sleep(0.0002)
        elif i < 9000:  # replayed one by one (stored events are no-ops), then in pages
            store.insert("event", events.pop())
        elif len(events) == 100:
            store.insert("event_page", event_model.pack_event_page(*events))
            events.clear()
    if events:
        store.insert("event_page", event_model.pack_event_page(*events))
    store.insert("stop", bundle.compose_stop(uid="crash-stop", time=1.7e9 + EVENTS))
    print("finished", flush=True)
""").replace("EVENTS", str(EVENTS))


def _flushed(index: str) -> int:
    engine = sa.create_engine(index)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT coalesce(sum(rows), 0) FROM event_chunks").scalar()
    except sa.exc.OperationalError:  # the tables are not there yet
        return 0
    finally:
        engine.dispose()


def test_a_killed_run_is_recovered_then_completed_by_a_new_writer(tmp_path):
    index, data = f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "data")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, index, data, "live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while _flushed(index) < 3 * CHUNK:
        assert writer.poll() is None, writer.stderr.read()
        assert time.monotonic() < deadline, "the writer flushed nothing in 60 s"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    out = writer.stdout.read().split()
    assert "finished" not in out, "the writer ended before it was killed"
    acked = int(out[-1]) + 1

    store = NativeStore(index, data)
    assert acked - 3 * CHUNK <= store.recovered  # what was only in the log came back
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    rows = sum(c.rows for c in store.event_chunks("crash-descriptor"))
    assert acked <= rows <= acked + 1
    run = BrokerCatalog(store)["crash-run"]
    assert not run.complete and run.metadata["stop"] is None
    ds = run.primary(seq_num=True).read()
    np.testing.assert_array_equal(ds["x"].values, np.arange(rows) * 1.5)
    np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, rows + 1))
    docs = list(store.documents("crash-run"))
    assert [n for n, _ in docs[:2]] == ["start", "descriptor"]
    uids = [u for n, d in docs if n == "event_page" for u in d["uid"]]
    assert uids == [f"event-{i}" for i in range(rows)]
    store.close()

    # a new writer replays the whole run: what is stored is a no-op, the rest is added
    resumed = subprocess.run(
        [sys.executable, "-c", WRITER, index, data, "resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "finished" in resumed.stdout, resumed.stderr
    run = BrokerCatalog(NativeStore(index, data))["crash-run"]
    assert run.complete
    np.testing.assert_array_equal(run.primary.read()["x"].values, np.arange(EVENTS) * 1.5)


@pytest.mark.parametrize("rows", [0, 7])
def test_a_run_whose_writer_died_is_listed_as_incomplete(tmp_path, rows):
    index, data = f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "data")
    script = WRITER.replace(f"range({EVENTS})", f"range({rows})").replace(
        'store.insert("stop"', 'import os; os.kill(os.getpid(), 9); store.insert("stop"'
    )
    died = subprocess.run(
        [sys.executable, "-c", script, index, data, "resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == -signal.SIGKILL
    store = NativeStore(index, data)
    (record,) = store.runs()
    assert not record.complete
    run = BrokerCatalog(store)[-1]
    # the events inserted (buffered, not flushed) survived in the write-ahead log
    np.testing.assert_array_equal(run.primary.read()["x"].values, np.arange(rows) * 1.5)
