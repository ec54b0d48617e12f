"""The native store beyond the conformance suite: layout, live ingest, odd values, plugins."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import event_model
import numpy as np
import pytest
import sqlalchemy as sa

from intake_broker.errors import DocumentConflict, InvalidDocument
from intake_broker.store import RunRecord
from intake_broker.store.documents import event_page_rows
from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_native import NativeCatalog, NativeStore
from intake_broker_native.schema import event_chunks


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/index.sqlite"
    return request.getfixturevalue("postgres_url")


def reader(store: NativeStore) -> NativeStore:
    """Another store over the same index and data, as another process would open it."""
    return NativeStore(store.index, store.data, storage_options=store.storage_options)


def scalar_events(desc, n, start=0, t0=1_700_000_000.0):
    return [
        desc.compose_event(
            data={"x": float(i), "n": i},
            timestamps={"x": t0 + i, "n": t0},
            time=t0 + i,
            seq_num=i + 1,
        )
        for i in range(start, start + n)
    ]


def new_run(store, **data_keys):
    bundle = event_model.compose_run(metadata={"scan_id": 1, "plan_name": "test"})
    keys = data_keys or {
        "x": {"dtype": "number", "shape": [], "source": "s"},
        "n": {"dtype": "integer", "shape": [], "source": "s"},
    }
    desc = bundle.compose_descriptor(name="primary", data_keys=keys)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    return bundle, desc


# -- where things are ---------------------------------------------------------------------------


def test_in_folder_records_its_data_folder(tmp_path):
    store = NativeStore.in_folder(tmp_path / "runs")
    assert store.index == f"sqlite:///{tmp_path}/runs/index.sqlite"
    assert store.data == f"{tmp_path}/runs/data"
    insert_all(store, factories.scalar_run(n=3))
    store.close()
    # the index remembers where its columns are (relative to itself): no data= needed
    again = NativeStore(f"sqlite:///{tmp_path}/runs/index.sqlite")
    assert again.data == f"{tmp_path}/runs/data"
    assert BrokerCatalog(again)[-1].primary.read()["det"].shape == (3,)
    with sa.create_engine(again.index).connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM settings").scalar() == "./data"
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_default_data_folder_is_beside_a_sqlite_index(tmp_path):
    store = NativeStore(f"sqlite:///{tmp_path}/my-runs.db")
    assert store.data == f"{tmp_path}/my-runs-data"


def test_postgres_index_needs_a_data_url_once(postgres_url, tmp_path):
    with pytest.raises(ValueError, match="data="):
        NativeStore(postgres_url)
    NativeStore(postgres_url, str(tmp_path / "cols"))
    assert NativeStore(postgres_url).data == str(tmp_path / "cols")


def test_plain_xarray_reads_a_descriptor_group(tmp_path):
    """The zarr layout is readable without this library (a subprocess that never imports it)."""
    store = NativeStore.in_folder(tmp_path, chunk_rows=4)
    docs = factories.scalar_run(n=10)
    insert_all(store, docs)
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    url = store.zarr_url(primary["uid"])
    script = textwrap.dedent(f"""
        import json, sys, warnings
        import xarray as xr
        ds = xr.open_zarr({url!r}, consolidated=False)
        assert "intake_broker_native" not in sys.modules
        print(json.dumps({{"dims": dict(ds.sizes), "det": ds["det"].values.tolist(),
                          "count": ds["count"].values.tolist(), "time": ds["time"].values.tolist(),
                          "seq_num": ds["seq_num"].values.tolist(),
                          "chunks": list(ds["det"].chunks[0]), "units": ds["motor"].attrs["units"],
                          "uid": ds["uid"].values.tolist()}}))
    """)
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
    )
    events = [d for n, d in docs if n == "event" and d["descriptor"] == primary["uid"]]
    assert out["dims"] == {"time": 10}
    assert out["det"] == [e["data"]["det"] for e in events]
    assert out["count"] == [e["data"]["count"] for e in events]
    assert out["time"] == [e["time"] for e in events]
    assert out["seq_num"] == list(range(1, 11)) and out["chunks"] == [4, 4, 2]
    assert out["uid"] == [e["uid"] for e in events] and out["units"] == "mm"


# -- live ingest ----------------------------------------------------------------------------------


def test_live_run_is_readable_up_to_the_last_whole_chunk(index, tmp_path):
    store = NativeStore(index, str(tmp_path / "data"), chunk_rows=100, flush_interval=None)
    bundle, desc = new_run(store)
    for event in scalar_events(desc, 250):
        store.insert("event", event)
    other = reader(store)
    run = BrokerCatalog(other)[-1]
    assert not run.complete and run.metadata["stop"] is None
    ds = run.primary(seq_num=True).read()
    np.testing.assert_array_equal(ds["x"].values, np.arange(200.0))  # two whole chunks
    assert ds["n"].dtype == np.int64 and ds["seq_num"].values[-1] == 200
    assert [c.rows for c in other.event_chunks(desc.descriptor_doc["uid"])] == [100, 100]
    store.insert("stop", bundle.compose_stop())
    run = BrokerCatalog(reader(store))[-1]
    assert run.complete and run.primary.read()["x"].shape == (250,)
    assert [c.rows for c in store.event_chunks(desc.descriptor_doc["uid"])] == [100, 100, 50]


def test_flush_interval_writes_partial_chunks_that_grow(tmp_path):
    store = NativeStore.in_folder(tmp_path, chunk_rows=20, flush_interval=0.0)
    bundle, desc = new_run(store)
    other = reader(store)
    for i, event in enumerate(scalar_events(desc, 26)):
        store.insert("event", event)
        if i in (0, 11, 19, 25):  # every insert flushed: another reader sees it at once
            cols = other.read_events(desc.descriptor_doc["uid"])
            np.testing.assert_array_equal(cols.data["x"], np.arange(i + 1.0))
            np.testing.assert_array_equal(cols.seq_num, np.arange(1, i + 2))
    uid = desc.descriptor_doc["uid"]
    assert [c.rows for c in store.event_chunks(uid)] == [20, 6]
    store.insert("stop", bundle.compose_stop())
    got = list(reader(store).documents(bundle.start_doc["uid"]))
    assert [n for n, _ in got] == ["start", "descriptor", "event_page", "event_page", "stop"]
    assert sum(len(d["uid"]) for n, d in got if n == "event_page") == 26


def test_writing_goes_on_in_a_new_process_after_a_partial_flush(index, tmp_path):
    """A second writer (after the first closed) appends to the partial chunk; re-inserting
    stored events is still a no-op and a changed one still a conflict."""
    first = NativeStore(index, str(tmp_path / "data"), chunk_rows=40)
    bundle, desc = new_run(first)
    events = scalar_events(desc, 100)
    for event in events[:55]:
        first.insert("event", event)
    first.close()  # flushes 55 rows: one whole chunk and a partial one
    second = reader(first)
    second.chunk_rows = 40
    for event in events[30:]:  # 30..54 are stored: no-ops; then new ones
        second.insert("event", event)
    with pytest.raises(DocumentConflict, match="data"):
        second.insert("event", {**events[10], "data": {"x": -1.0, "n": 10}})
    page = event_model.pack_event_page(
        events[99],
        desc.compose_event(data={"x": 0.0, "n": 0}, timestamps={"x": 0, "n": 0}, seq_num=101),
    )
    with pytest.raises(InvalidDocument, match="mixes new events"):
        second.insert("event_page", page)
    second.insert("stop", bundle.compose_stop())
    cols = reader(second).read_events(desc.descriptor_doc["uid"], uids=True)
    np.testing.assert_array_equal(cols.data["x"], np.arange(100.0))
    assert list(cols.uid) == [e["uid"] for e in events]
    assert [c.rows for c in second.event_chunks(desc.descriptor_doc["uid"])] == [40, 40, 20]


def test_seq_nums_out_of_order_are_read_in_order(tmp_path):
    store = NativeStore.in_folder(tmp_path, chunk_rows=4)
    bundle, desc = new_run(store)
    events = scalar_events(desc, 10)
    order = [3, 0, 1, 2, 9, 8, 4, 5, 6, 7]
    for i in order:
        store.insert("event", events[i])
    store.insert("stop", bundle.compose_stop())
    uid = desc.descriptor_doc["uid"]
    chunks = store.event_chunks(uid)
    assert len(chunks) == 1 and (chunks[0].seq_start, chunks[0].seq_stop) == (1, 11)
    cols = store.read_events(uid, seq_range=(3, 8))
    np.testing.assert_array_equal(cols.seq_num, [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(cols.data["x"], [2.0, 3.0, 4.0, 5.0, 6.0])
    ds = BrokerCatalog(store)[-1].primary.read()
    np.testing.assert_array_equal(ds["x"].values, np.arange(10.0))
    # replay keeps the order of insertion
    pages = [d for n, d in store.documents(bundle.start_doc["uid"]) if n == "event_page"]
    assert [e["seq_num"] for p in pages for e in event_page_rows(p)] == [i + 1 for i in order]


def test_interleaved_streams_replay_in_insertion_order(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    bundle = event_model.compose_run()
    a = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"dtype": "number", "shape": [], "source": "s"}}
    )
    b = bundle.compose_descriptor(
        name="monitor", data_keys={"y": {"dtype": "number", "shape": [], "source": "s"}}
    )
    docs = [
        ("start", bundle.start_doc),
        ("descriptor", a.descriptor_doc),
        ("descriptor", b.descriptor_doc),
    ]
    for i in range(6):
        desc, key = (a, "x") if i % 3 else (b, "y")
        docs.append(("event", desc.compose_event(data={key: float(i)}, timestamps={key: i})))
    docs.append(("stop", bundle.compose_stop()))
    insert_all(store, docs)
    assert_same_documents(list(store.documents(bundle.start_doc["uid"])), docs)


# -- values of every kind -------------------------------------------------------------------------


def test_values_of_every_kind_round_trip(index, tmp_path):
    store = NativeStore(index, str(tmp_path / "data"), chunk_rows=3, chunk_bytes=130)
    keys = {
        "f": {"dtype": "number", "shape": [], "source": "s"},
        "i": {"dtype": "integer", "shape": [], "source": "s"},
        "b": {"dtype": "boolean", "shape": [], "source": "s"},
        "s": {"dtype": "string", "shape": [], "source": "s"},
        "img": {
            "dtype": "array",
            "shape": [2, 3],
            "dtype_numpy": "<i4",
            "source": "s",
            "dims": ["y", "x"],
        },
        "wave": {"dtype": "array", "shape": [], "source": "s"},  # ragged: kept as JSON
        "ext": {"dtype": "array", "shape": [5, 5], "source": "s", "external": "FILESTORE:"},
        "zero": {"dtype": "number", "shape": [], "source": "s"},
    }
    bundle, desc = new_run(store, **keys)
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for i in range(7):
        data = {
            "f": i / 3,
            "i": 2**40 + i,
            "b": bool(i % 2),
            "s": f"ü{i}" * i,
            "img": np.arange(6, dtype="i4").reshape(2, 3) * i,
            "wave": list(range(i)),
            "ext": f"datum-{i}",
            "zero": 0.0,
        }
        event = desc.compose_event(
            data=data, timestamps=dict.fromkeys(keys, 1.0 + i), filled={"ext": False}
        )
        docs.append(("event", event))
        store.insert("event", event)
    docs.append(("stop", bundle.compose_stop()))
    store.insert("stop", docs[-1][1])
    other = reader(store)
    assert_same_documents(list(other.documents(bundle.start_doc["uid"])), docs)
    # rows per chunk follow chunk_bytes (a string counts 64 bytes: 130 // 64 = 2 rows)
    uid = desc.descriptor_doc["uid"]
    assert [c.rows for c in other.event_chunks(uid)] == [2, 2, 2, 1]
    cols = other.read_events(uid)
    assert cols.data["img"].shape == (7, 2, 3) and cols.data["img"].dtype == np.int32
    assert cols.data["i"].tolist() == [2**40 + i for i in range(7)]
    assert cols.data["wave"][3] == [0, 1, 2] and cols.data["s"][2] == "ü2ü2"
    assert cols.filled["ext"].tolist() == [False] * 7 and cols.data["zero"].sum() == 0
    clone = pickle.loads(pickle.dumps(other.read_events(uid, fields=["f", "s"])))
    assert clone.timestamps["s"].tolist() == [1.0 + i for i in range(7)]
    ds = BrokerCatalog(other)[-1].primary(include=["img", "b"]).read()
    assert ds["img"].dims == ("time", "y", "x") and ds["b"].dtype == bool


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"x": "high", "n": 1}, "declared <f8"),
        ({"x": 1.0, "n": 1.5}, "declared <i8"),
        ({"x": [1.0, 2.0], "n": 1}, "shape"),
    ],
)
def test_values_that_do_not_fit_their_descriptor_are_refused(tmp_path, bad, match):
    store = NativeStore.in_folder(tmp_path)
    bundle, desc = new_run(store)
    good = scalar_events(desc, 2)
    store.insert("event", good[0])
    with pytest.raises(InvalidDocument, match=match):
        store.insert("event", {**good[1], "data": bad})
    store.insert("stop", bundle.compose_stop())
    assert reader(store).read_events(desc.descriptor_doc["uid"]).data["x"].tolist() == [0.0]


# -- the plugin side ------------------------------------------------------------------------------


def test_registered_for_intake_and_as_a_store(tmp_path):
    import intake

    from intake_broker.catalogs.config import installed_stores, load_store

    assert "native" in installed_stores()
    store = load_store("native", index=f"sqlite:///{tmp_path}/a/index.sqlite")
    assert isinstance(store, NativeStore)
    catalog_file = tmp_path / "cat.yml"
    catalog_file.write_text(
        textwrap.dedent(f"""
        sources:
          local:
            driver: bluesky-native-catalog
            args:
              index: "sqlite:///{tmp_path}/b/index.sqlite"
              data: "{tmp_path}/b/columns"
              create: true
    """)
    )
    cat = intake.open_catalog(str(catalog_file))["local"]
    assert isinstance(cat, NativeCatalog)
    docs = factories.scalar_run(n=4)
    for name, doc in docs:
        cat.insert(name, doc)
    assert (tmp_path / "b" / "columns").is_dir()
    assert cat[-1].primary.read()["det"].shape == (4,)
    clone = pickle.loads(pickle.dumps(cat))
    assert isinstance(clone, NativeCatalog) and list(clone) == list(cat)


def test_bulk_insert_runs_builds_the_index(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    runs = [RunRecord(d[0][1], d[-1][1]) for d in factories.many_runs(30)]
    assert store.bulk_insert_runs(runs[:20], batch=7) == 20
    assert store.bulk_insert_runs(runs, batch=7) == 10  # those held are skipped
    assert store.count() == 30 and [r.uid for r in store.runs(limit=3)] == [
        r.uid for r in runs[::-1][:3]
    ]
    assert all(r.complete for r in store.runs())


def test_chunk_rows_are_committed_with_their_chunks(tmp_path):
    store = NativeStore.in_folder(tmp_path, chunk_rows=10)
    bundle, desc = new_run(store)
    for event in scalar_events(desc, 25):
        store.insert("event", event)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(event_chunks.c.idx, event_chunks.c.rows, event_chunks.c.contiguous)
        ).all()
    assert sorted(rows) == [(0, 10, True), (1, 10, True)]


def test_two_store_objects_writing_one_run_in_turn(tmp_path):
    """A descriptor inserted through another store object is taken up by the first."""
    first = NativeStore.in_folder(tmp_path)
    second = reader(first)
    bundle = event_model.compose_run()
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "x": {"dtype": "number", "shape": [], "source": "s"},
            "n": {"dtype": "integer", "shape": [], "source": "s"},
        },
    )
    first.insert("start", bundle.start_doc)
    second.insert("descriptor", desc.descriptor_doc)
    for event in scalar_events(desc, 5):
        first.insert("event", event)
    first.insert("stop", bundle.compose_stop())
    assert reader(first).read_events(desc.descriptor_doc["uid"]).data["x"].tolist() == [
        0.0,
        1.0,
        2.0,
        3.0,
        4.0,
    ]
