"""kill -9 of a writer in the middle of a 10,000-event run: every flushed chunk stays readable,
the index stays consistent, and a new writer completes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import sqlalchemy as sa

from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeStore

EVENTS = 10_000
CHUNK = 500

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
            time.sleep(0.0002)
        elif len(events) == 100:  # replayed in pages (stored pages are no-ops)
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


def test_kill_9_mid_run_leaves_flushed_chunks_readable(tmp_path):
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
    assert "finished" not in writer.stdout.read(), "the writer ended before it was killed"

    store = NativeStore(index, data)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    rows = sum(c.rows for c in store.event_chunks("crash-descriptor"))
    assert 3 * CHUNK <= rows < EVENTS and rows % CHUNK == 0  # whole chunks only
    run = BrokerCatalog(store)["crash-run"]
    assert not run.complete and run.metadata["stop"] is None
    ds = run.primary.read()
    np.testing.assert_array_equal(ds["x"].values, np.arange(rows) * 1.5)
    np.testing.assert_array_equal(ds["n"].values, np.arange(rows))
    np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, rows + 1))
    docs = list(store.documents("crash-run"))
    assert [n for n, _ in docs[:2]] == ["start", "descriptor"]
    uids = [u for n, d in docs if n == "event_page" for u in d["uid"]]
    assert uids == [f"event-{i}" for i in range(rows)]
    assert store.read_events("crash-descriptor", uids=True).uid.tolist() == uids

    # a new writer replays the whole run in pages: what is stored is a no-op, the rest is added
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
    assert run.primary.read()["x"].shape == (0,)  # buffered events died with the writer
