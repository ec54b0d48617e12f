"""kill -9 of a writer into the files store: no acknowledged document is lost.

A forked writer inserts a 10,000-event run one document per ``insert`` and reports each
document the moment ``insert`` returned; it is killed at a random (seeded) moment, ten times;
the store, reopened, holds every acknowledged event, reads the partial run as not stopped, and
takes new runs.
"""

from __future__ import annotations

import random

import event_model
import numpy as np

from intake_broker import BrokerCatalog
from intake_broker.testing.crash import DATA_KEYS, EVENTS, run_and_kill
from intake_broker_files import FilesStore

KILLS = 10


def test_kill_9_ten_times_loses_no_acknowledged_event(tmp_path, fmt="jsonl"):
    folder = str(tmp_path)
    rng = random.Random(14)
    acknowledged = 0
    for round_ in range(KILLS):
        acked = run_and_kill(
            lambda: FilesStore([], directory=folder, format=fmt), round_, rng.uniform(0.0, 2.0)
        )
        events = [int(a) for a in acked if a.isdigit()]
        acknowledged += len(events)
        if "descriptor" not in acked:
            continue
        store = FilesStore([], directory=folder, format=fmt)
        record = store.run(f"run-{round_}")
        stored = store.read_events(f"desc-{round_}", uids=True)
        seq = np.asarray(stored.seq_num)
        assert set(events) <= set(seq.tolist())
        assert len(seq) - len(events) <= 1
        np.testing.assert_array_equal(seq, np.arange(1, len(seq) + 1))
        np.testing.assert_array_equal(stored.data["x"], seq * 1.5)
        if "stop" not in acked and len(seq) < EVENTS:
            assert record.stop is None
            run = BrokerCatalog(store)[f"run-{round_}"]
            assert not run.complete
            np.testing.assert_array_equal(run.primary.read()["n"].values, seq)
        store.close()
    assert acknowledged > KILLS * 500, "the kills came too early to test anything"
    store = FilesStore([], directory=folder, format=fmt)
    bundle = event_model.compose_run(uid="after", time=1.9e9)
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    for i in range(1, 6):
        store.insert(
            "event", desc.compose_event(data={"x": 1.0, "n": i}, timestamps={"x": 0, "n": 0})
        )
    store.insert("stop", bundle.compose_stop())
    run = BrokerCatalog(FilesStore([], directory=folder, format=fmt))["after"]
    assert run.complete and run.primary.read()["n"].values.tolist() == [1, 2, 3, 4, 5]
    assert len(list(FilesStore([], directory=folder, format=fmt).runs())) >= KILLS
