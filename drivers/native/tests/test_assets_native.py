"""External assets in the native store: its own ``run_assets`` / ``datum_pages`` (straight from
the ``documents`` table) against the core default's answer, and chunk rows fitted to a run's
events (while runs written with the old, fixed chunk rows still read)."""

from __future__ import annotations

import json

import event_model
import numpy as np
import pytest

from intake_broker import BrokerCatalog
from intake_broker.errors import RunNotFound
from intake_broker.store import DocumentStore
from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker_native import NativeStore
from intake_broker_native import layout as layout_module
from intake_broker_native.columns import _PY_VLEN_ITEMS, ColumnStore, _Meta, _vlen_utf8
from intake_broker_native.errors import CorruptChunk
from intake_broker_native.layout import LIVE_CHUNK_ROWS, Layout, fitted_chunk_rows

h5py = pytest.importorskip("h5py")


def ad_hdf5_run(root, n=6, shape=(8, 12)):
    """An AD_HDF5 run (a datum per event, datums and events interleaved) and its frames."""
    return factories.ad_hdf5_run(root, n=n, shape=shape)


def ophyd_async_docs(tmp_path, n=3):
    """Documents of an ophyd-async detector (stream_resource / stream_datum) run by bluesky."""
    pytest.importorskip("ophyd_async")
    pytest.importorskip("bluesky")
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider, init_devices
    from ophyd_async.sim import SimBlobDetector

    RE = RunEngine()
    with init_devices():
        det = SimBlobDetector(StaticPathProvider(UUIDFilenameProvider(), tmp_path), name="blob")
    docs: list = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([det], n))
    return docs


def assert_assets_as_the_core_default(store, uid):
    ours, core = store.run_assets(uid), DocumentStore.run_assets(store, uid)
    assert ours == core
    assert json.dumps(ours.stream_datums) == json.dumps(core.stream_datums)  # same order
    assert list(store.datum_pages(uid)) == list(DocumentStore.datum_pages(store, uid))
    return ours


def test_run_assets_of_an_ad_hdf5_run(tmp_path):
    store = NativeStore.in_folder(tmp_path / "native")
    docs, frames = ad_hdf5_run(tmp_path, n=6)
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    assets = assert_assets_as_the_core_default(store, uid)
    assert len(assets.resources) == 1 and len(assets.datums) == 6
    assert not assets.stream_resources and not assets.stream_datums
    cat = BrokerCatalog(NativeStore(store.index))
    np.testing.assert_array_equal(cat[uid].primary.to_dask()["cam_image"][4].values, frames[4])
    np.testing.assert_array_equal(cat[uid].primary.read()["cam_image"].values, frames)


def test_run_assets_of_an_ophyd_async_run(tmp_path):
    docs = ophyd_async_docs(tmp_path, n=3)
    store = NativeStore.in_folder(tmp_path / "native")
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    assets = assert_assets_as_the_core_default(store, uid)
    assert assets.stream_resources and len(assets.stream_datums) >= 3 and not assets.datums
    resource = next(d for n, d in docs if n == "stream_resource" and d["data_key"] == "blob")
    with h5py.File(resource["uri"].removeprefix("file://localhost")) as f:
        expected = f["/entry/data/data"][:]
    ds = BrokerCatalog(NativeStore(store.index))[uid].primary.to_dask()
    np.testing.assert_array_equal(ds["blob"][:, 0].values, expected[:3])


def test_run_assets_of_runs_without_assets_and_of_unknown_runs(tmp_path):
    store = NativeStore.in_folder(tmp_path)
    bundle = event_model.compose_run()
    store.insert("start", bundle.start_doc)
    assert store.run_assets(bundle.start_doc["uid"]) == DocumentStore.run_assets(
        store, bundle.start_doc["uid"]
    )
    assert list(store.datum_pages(bundle.start_doc["uid"])) == []
    with pytest.raises(RunNotFound):
        store.run_assets("no-such-run")


# -- chunk rows fitted to the run ----------------------------------------------------------------


def _zarr_meta(store, descriptor_uid, array):
    info = store._info(descriptor_uid)
    with open(store.columns.path(info.path, array, "zarr.json")) as f:
        return json.load(f)


def test_a_stopped_run_gets_one_chunk_of_its_size(tmp_path):
    # pack_bytes=0: the zarr group itself is what is looked at (small streams are packed)
    store = NativeStore.in_folder(tmp_path / "native", pack_bytes=0)
    docs, frames = ad_hdf5_run(tmp_path, n=7)
    insert_all(store, docs)
    fresh = NativeStore(store.index)
    (desc,) = fresh.descriptors(docs[0][1]["uid"])
    layout = fresh._info(desc["uid"]).layout
    assert layout.chunk_rows == 7 and not layout.compress_strings
    meta = _zarr_meta(fresh, desc["uid"], layout.fields["cam_image"].array)
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [7]
    assert [c["name"] for c in meta["codecs"]] == ["vlen-utf8", "crc32c"]
    assert _zarr_meta(fresh, desc["uid"], "time")["chunk_grid"]["configuration"]["chunk_shape"] == [
        7
    ]
    assert_same_documents(list(fresh.documents(docs[0][1]["uid"])), docs)
    got = fresh.read_events(desc["uid"], uids=True)
    assert got.data["cam_image"].tolist() == [
        d["data"]["cam_image"] for n, d in docs if n == "event"
    ]


def test_a_live_run_gets_chunks_sized_at_its_first_flush(tmp_path):
    store = NativeStore.in_folder(tmp_path / "native", flush_interval=None)
    docs, _ = ad_hdf5_run(tmp_path, n=40)
    events = [i for i, (n, _) in enumerate(docs) if n == "event"]
    insert_all(store, docs[: events[10]])
    store.flush()  # the run goes on: chunks sized for more events
    insert_all(store, docs[events[10] :])
    fresh = NativeStore(store.index)
    (desc,) = fresh.descriptors(docs[0][1]["uid"])
    assert fresh._info(desc["uid"]).layout.chunk_rows == LIVE_CHUNK_ROWS
    assert_same_documents(list(fresh.documents(docs[0][1]["uid"])), docs)


def test_fitted_chunk_rows():
    assert fitted_chunk_rows(100_000, 200, final=True) == 200
    assert fitted_chunk_rows(100, 200, final=True) == 100
    assert fitted_chunk_rows(100_000, 0, final=True) == 1
    assert fitted_chunk_rows(100_000, 5, final=False) == LIVE_CHUNK_ROWS
    assert fitted_chunk_rows(100_000, 5000, final=False) == 8192
    assert fitted_chunk_rows(6000, 5000, final=False) == 6000
    assert fitted_chunk_rows(10, 3, final=False) == 10


def test_runs_written_with_fixed_chunk_rows_still_read(tmp_path, monkeypatch):
    """Before chunk rows were fitted, a descriptor's chunks held chunk_rows (100,000) rows and
    strings were zstd-compressed; such runs read as before, beside fitted ones."""
    docs, frames = ad_hdf5_run(tmp_path, n=5)
    with monkeypatch.context() as patch:
        patch.setattr(layout_module.Layout, "fitted", lambda self, rows, final: self)
        old = NativeStore.in_folder(tmp_path / "native", pack_bytes=0)  # nor packed streams
        insert_all(old, docs)
        old.close()
    fresh = NativeStore(old.index)
    uid = docs[0][1]["uid"]
    (desc,) = fresh.descriptors(uid)
    layout = fresh._info(desc["uid"]).layout
    assert layout.chunk_rows == 100_000 and layout.compress_strings
    assert "compress_strings" not in json.loads(layout.to_json())  # the old JSON, unchanged
    meta = _zarr_meta(fresh, desc["uid"], layout.fields["cam_image"].array)
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [100_000]
    assert [c["name"] for c in meta["codecs"]] == ["vlen-utf8", "zstd", "crc32c"]
    assert_same_documents(list(fresh.documents(uid)), docs)
    assert_assets_as_the_core_default(fresh, uid)
    np.testing.assert_array_equal(
        BrokerCatalog(fresh)[uid].primary.read()["cam_image"].values, frames
    )
    # a new run in the same index gets fitted chunks
    (tmp_path / "second").mkdir()
    new_docs, new_frames = ad_hdf5_run(tmp_path / "second", n=3)
    insert_all(fresh, new_docs)
    (new_desc,) = fresh.descriptors(new_docs[0][1]["uid"])
    assert NativeStore(fresh.index)._info(new_desc["uid"]).layout.chunk_rows == 3
    np.testing.assert_array_equal(
        BrokerCatalog(NativeStore(fresh.index))[new_docs[0][1]["uid"]]
        .primary.read()["cam_image"]
        .values,
        new_frames,
    )


def test_layout_json_round_trip():
    layout = Layout(200, {}, compress_strings=False)
    assert Layout.from_json(layout.to_json()) == layout
    assert Layout.from_json(json.dumps({"chunk_rows": 5, "fields": []})).compress_strings


# -- decoding strings without numcodecs ----------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[], ["a", "bé€", "", "x" * 300], [f"datum/{i}" for i in range(_PY_VLEN_ITEMS + 3)]]
)
def test_vlen_utf8_decodes_as_numcodecs(values):
    from numcodecs.vlen import VLenUTF8

    encoded = VLenUTF8().encode(np.array(values, dtype=object))
    got = _vlen_utf8(encoded)
    assert got.dtype == object and got.tolist() == values


def test_damaged_vlen_utf8_is_a_corrupt_chunk():
    from numcodecs.vlen import VLenUTF8

    encoded = bytes(VLenUTF8().encode(np.array(["abc", "de"], dtype=object)))
    meta = _Meta(2, (2,), np.dtype(object), "vlen-utf8", (), True)
    assert ColumnStore._decode("p", meta, encoded, "here").tolist() == ["abc", "de"]
    for damaged in (encoded[:-1], encoded + b"x", encoded[:2]):
        with pytest.raises(CorruptChunk):
            ColumnStore._decode("p", meta, damaged, "here")
