"""Packed streams: a small stream of a stopped run is one record in its run's journal (or one
file on an object store), not a zarr group of 23 arrays. Everything reads it as before:
events, documents, summaries, another process, ``reindex``, xarray through ``zarr_url``; more
events turn it into a zarr group; kill -9 loses no acknowledged document."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import event_model
import numpy as np
import pytest

from intake_broker import BrokerCatalog
from intake_broker.testing import assert_same_documents, insert_all
from intake_broker.testing.factories import (
    ad_hdf5_run,
    asset_run,
    image_run,
    reconfigured_run,
    scalar_run,
)
from intake_broker_native import CorruptChunk, NativeStore, reindex

DATA_KEYS = {
    "x": {"dtype": "number", "shape": [], "source": "s"},
    "n": {"dtype": "integer", "shape": [], "source": "s"},
}


def _runs(tmp_path: Path) -> list[list[tuple[str, dict]]]:
    return [scalar_run(n=7), image_run(), asset_run(), reconfigured_run(), ad_hdf5_run(tmp_path)[0]]


def _layouts(store: NativeStore) -> dict[str, object]:
    return {
        d["uid"]: store._info(d["uid"]).layout
        for r in store.runs()
        for d in store.descriptors(r.start["uid"])
    }


def _reads(store: NativeStore) -> dict:
    """Everything a reader sees of every run, comparable across stores."""
    out = {}
    for record in store.runs():
        uid = record.start["uid"]
        streams = {}
        for d in store.descriptors(uid):
            cols = store.read_events(d["uid"], uids=True)
            streams[d["uid"]] = (
                cols.seq_num.tolist(),
                cols.time.tolist(),
                cols.uid.tolist(),
                {k: np.asarray(v).tolist() for k, v in cols.data.items()},
                {k: np.asarray(v).tolist() for k, v in cols.timestamps.items()},
                {k: np.asarray(v).tolist() for k, v in cols.filled.items()},
                [(c.seq_start, c.seq_stop, c.rows) for c in store.event_chunks(d["uid"])],
            )
        out[uid] = (streams, json.dumps(store.summary(uid), sort_keys=True))
    return out


def test_a_small_stopped_run_is_packed_and_reads_as_a_zarr_one(tmp_path):
    packed = NativeStore.in_folder(tmp_path / "packed")
    zarr = NativeStore.in_folder(tmp_path / "zarr", pack_bytes=0)
    runs = _runs(tmp_path)
    for docs in runs:
        insert_all(packed, docs)
        insert_all(zarr, docs)
    layouts = _layouts(packed)
    assert layouts and all(layout.packed and layout.packed_at for layout in layouts.values())
    assert not any(layout.packed for layout in _layouts(zarr).values())
    data = Path(packed.data)
    assert not list(data.glob("*/*/zarr.json")), "no zarr group is written"
    journals = {p.parent.name: p.read_text() for p in data.glob("*/documents.jsonl")}
    assert all('"kind":"events"' in text for text in journals.values())
    # this store, a fresh one (another reader) and the zarr store read the same
    fresh = NativeStore(packed.index)
    assert _reads(packed) == _reads(fresh) == _reads(zarr)
    for docs in runs:
        uid = docs[0][1]["uid"]
        assert_same_documents(list(fresh.documents(uid)), list(zarr.documents(uid)))
    # the summary recorded with the stop is the one computed from the stored columns
    for record in fresh.runs():
        uid = record.start["uid"]
        assert fresh._stored_summary(uid) == super(NativeStore, fresh).summary(uid)
    # the catalog (dask chunks, xarray) reads it as any run
    run = BrokerCatalog(fresh)[runs[0][0][1]["uid"]]
    assert run.complete and run.primary.read()["det"].shape == (7,)


def test_large_or_flushed_streams_stay_zarr(tmp_path):
    store = NativeStore.in_folder(tmp_path, pack_bytes=2_000)
    insert_all(store, scalar_run(n=40))
    insert_all(store, scalar_run(n=3))
    seen = set()
    for record in store.runs():
        for d in store.descriptors(record.start["uid"]):
            layout = store._info(d["uid"]).layout
            rows = len(store.read_events(d["uid"]).seq_num)
            assert layout.packed == (rows * layout.row_bytes() <= 2_000), (rows, d["name"])
            seen.add(layout.packed)
    assert seen == {True, False}
    flushed = NativeStore.in_folder(tmp_path / "flushed", chunk_rows=4)
    docs = scalar_run(n=10)  # whole chunks of primary are written while acquiring
    insert_all(flushed, docs)
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    assert not flushed._info(primary["uid"]).layout.packed
    assert flushed.read_events(primary["uid"]).seq_num.tolist() == list(range(1, 11))


def test_zarr_url_writes_the_zarr_group_plain_xarray_reads(tmp_path):
    import xarray as xr

    store = NativeStore.in_folder(tmp_path)
    docs = scalar_run(n=6)
    insert_all(store, docs)
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    assert store._info(primary["uid"]).layout.packed
    url = store.zarr_url(primary["uid"])
    ds = xr.open_zarr(url, consolidated=False)
    events = store.read_events(primary["uid"], uids=True)
    np.testing.assert_array_equal(ds["det"].values, events.data["det"])
    np.testing.assert_array_equal(ds["seq_num"].values, events.seq_num)
    assert ds["uid"].values.tolist() == events.uid.tolist()
    assert ds["motor"].attrs["units"] == "mm"
    assert store.zarr_url(primary["uid"]) == url  # once
    assert store._info(primary["uid"]).layout.packed  # the store still reads the record


def test_more_events_for_a_packed_stream_make_it_a_zarr_group(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys=DATA_KEYS)
    uid = desc.descriptor_doc["uid"]
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    for i in range(1, 4):
        store.insert(
            "event",
            desc.compose_event(data={"x": i / 2, "n": i}, timestamps={"x": 0, "n": 0}, seq_num=i),
        )
    store.insert("stop", bundle.compose_stop())
    assert store._info(uid).layout.packed
    # a stopped run takes no new events through insert (the core refuses them); put, the
    # store contract's bare write, may still add some: the stream becomes a zarr group
    late = NativeStore.in_folder(tmp_path)
    more = [
        desc.compose_event(
            data={"x": i / 2, "n": i}, timestamps={"x": 0, "n": 0}, seq_num=i, validate=False
        )
        for i in range(4, 7)
    ]
    late.put("event_page", event_model.pack_event_page(*more))
    late.close()
    reader = NativeStore.in_folder(tmp_path)
    layout = reader._info(uid).layout
    assert not layout.packed and (Path(reader.data) / reader._info(uid).path / "zarr.json").exists()
    events = reader.read_events(uid, uids=True)
    assert events.seq_num.tolist() == [1, 2, 3, 4, 5, 6]
    assert events.data["x"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    # reindex takes the zarr group (more rows) over the stale record in the journal
    os.remove(tmp_path / "index.sqlite")
    report = reindex(tmp_path)
    assert report.events == 6 and not report.problems
    assert NativeStore.in_folder(tmp_path).read_events(uid).seq_num.tolist() == [1, 2, 3, 4, 5, 6]


def test_reindex_rebuilds_packed_streams(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    runs = _runs(tmp_path)
    for docs in runs:
        insert_all(store, docs)
    before = _reads(store)
    store.close()
    os.remove(tmp_path / "index.sqlite")
    report = reindex(tmp_path)
    assert report.runs == len(runs) and not report.problems
    rebuilt = NativeStore.in_folder(tmp_path)
    assert _reads(rebuilt) == before
    assert all(layout.packed for layout in _layouts(rebuilt).values())


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_record_is_an_error_naming_the_journal(tmp_path, damage):
    store = NativeStore.in_folder(tmp_path)
    docs = scalar_run(n=5)
    insert_all(store, docs)
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    offset, length = store._info(primary["uid"]).layout.packed_at
    (journal,) = Path(store.data).glob("*/documents.jsonl")
    raw = bytearray(journal.read_bytes())
    if damage == "flip":
        raw[offset + length - 20] = ord("A") if raw[offset + length - 20] != ord("A") else ord("B")
    else:
        raw = raw[: offset + length // 2]
    journal.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunk, match="documents.jsonl") as info:
        NativeStore.in_folder(tmp_path).read_events(primary["uid"])
    assert primary["uid"] in str(info.value)


def test_packed_streams_on_an_object_store(tmp_path, s3_server, s3_data):
    store = NativeStore(
        f"sqlite:///{tmp_path}/index.sqlite",
        s3_data,
        storage_options=s3_server["storage_options"],
    )
    zarr = NativeStore.in_folder(tmp_path / "zarr", pack_bytes=0)
    docs = scalar_run(n=5)
    insert_all(store, docs)
    insert_all(zarr, docs)
    layouts = _layouts(store)
    assert all(layout.packed and layout.packed_at is None for layout in layouts.values())
    fresh = NativeStore(
        f"sqlite:///{tmp_path}/index.sqlite", storage_options=s3_server["storage_options"]
    )
    assert _reads(fresh) == _reads(zarr)


# -- kill -9 during small runs -----------------------------------------------------------------


def _small_runs_writer(index: str, data: str, round_: int, fd: int) -> None:
    store = NativeStore(index, data)
    os.write(fd, b"open\n")
    for r in range(10_000):
        bundle = event_model.compose_run(uid=f"run-{round_}-{r}", time=1.7e9 + r)
        desc = bundle.compose_descriptor(uid=f"d-{round_}-{r}", name="primary", data_keys=DATA_KEYS)
        store.insert("start", bundle.start_doc)
        store.insert("descriptor", desc.descriptor_doc)
        for i in range(1, 6):
            event = desc.compose_event(
                uid=f"e{round_}-{r}-{i}",
                data={"x": i * 1.5, "n": i},
                timestamps={"x": 0, "n": 0},
                seq_num=i,
            )
            store.insert("event", event)
            os.write(fd, b"%d:%d\n" % (r, i))
        store.insert("stop", bundle.compose_stop())
        os.write(fd, b"%d:stop\n" % r)


def test_kill_9_during_small_runs_loses_no_acknowledged_document(tmp_path):
    index, data = f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "data")
    rng = random.Random(16)
    stopped_runs = 0
    for round_ in range(4):
        read, write = os.pipe()
        child = multiprocessing.get_context("fork").Process(
            target=_small_runs_writer, args=(index, data, round_, write)
        )
        child.start()
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            assert pipe.readline() == b"open\n"
            time.sleep(rng.uniform(0.2, 0.8))
            os.kill(child.pid, signal.SIGKILL)
            child.join(30)
            acked = pipe.read().decode().split()
        store = NativeStore(index, data)  # replays the dead writer's log
        events: dict[int, list[int]] = {}
        stopped = set()
        for a in acked:
            r, what = a.split(":")
            if what == "stop":
                stopped.add(int(r))
            else:
                events.setdefault(int(r), []).append(int(what))
        for r, seqs in events.items():
            got = store.read_events(f"d-{round_}-{r}").seq_num.tolist()
            assert got[: len(seqs)] == seqs and len(got) - len(seqs) <= 1, (r, got, seqs)
            complete = store.run(f"run-{round_}-{r}").complete
            if r in stopped:
                assert complete and got == [1, 2, 3, 4, 5]
            elif complete:  # killed while its stop was being inserted
                assert got == [1, 2, 3, 4, 5]
        stopped_runs += len(stopped)
        store.close()
    assert stopped_runs > 20, "the kills came too early to test anything"
    assert not [f for f in os.listdir(os.path.join(data, "_wal")) if f.endswith(".wal")]
