"""External assets read lazily: NPY_SEQ (ophyd.sim), AD_HDF5 (written here with h5py), ophyd-async
HDF5 (stream_resource / stream_datum), on local disk and from a moto S3 server, in every store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.assets import AssetNotFound, UnknownAssetSpec, register_handler
from intake_broker.testing import factories

h5py = pytest.importorskip("h5py")
pytest.importorskip("bluesky")
from bluesky import RunEngine  # noqa: E402
from bluesky.plans import count  # noqa: E402


def files_store(tmp_path):
    files = pytest.importorskip("intake_broker_files")
    folder = tmp_path / "runs"
    folder.mkdir(exist_ok=True)
    return files.JSONLStore.in_folder(folder)


STORES = {"memory": lambda tmp_path: MemoryStore(), "jsonl files": files_store}


@pytest.fixture(params=list(STORES))
def make_catalog(request, tmp_path):
    def make(**kwargs):
        return BrokerCatalog(STORES[request.param](tmp_path), **kwargs)

    return make


def ad_hdf5_run(root, filename="scan.h5", n=6, shape=(32, 48)):
    return factories.ad_hdf5_run(root, filename=filename, n=n, shape=shape)


def insert(cat, docs):
    for name, doc in docs:
        cat.insert(name, doc)


# -- resource / datum -------------------------------------------------------------------------


def test_ophyd_sim_npy_seq_frames(make_catalog, tmp_path):
    from ophyd.sim import img

    img.save_path = str(tmp_path)
    cat = make_catalog()
    RE = RunEngine()
    RE.subscribe(cat.insert)
    RE(count([img], 3))
    ds = cat[-1].primary.to_dask()
    assert ds["img"].shape == (3, 10, 10) and ds["img"].dtype == np.float64
    np.testing.assert_array_equal(ds["img"].values, np.ones((3, 10, 10)))
    np.testing.assert_array_equal(cat[-1].primary.read()["img"].values, np.ones((3, 10, 10)))


def test_ad_hdf5_frames_are_lazy_and_equal_the_file(make_catalog, tmp_path):
    docs, frames = ad_hdf5_run(tmp_path)
    cat = make_catalog()
    insert(cat, docs)
    ds = cat[-1].primary.to_dask()
    image = ds["cam_image"]
    assert image.shape == frames.shape and image.dtype == np.uint16
    assert image.data.chunks[0] == (6,)  # 3 KiB frames: several to a chunk
    np.testing.assert_array_equal(image[4].values, frames[4])
    np.testing.assert_array_equal(cat[-1].primary.read()["cam_image"].values, frames)
    np.testing.assert_array_equal(ds["cam_stats_total"].values, frames.sum(axis=(1, 2)))


def test_large_frames_get_a_chunk_each(tmp_path):
    docs, frames = ad_hdf5_run(tmp_path, n=4, shape=(512, 512))
    cat = BrokerCatalog(MemoryStore())
    insert(cat, docs)
    image = cat[-1].primary.to_dask()["cam_image"]
    assert image.data.chunks[0] == (1, 1, 1, 1)
    np.testing.assert_array_equal(image[2].values, frames[2])


class IndexedStore(MemoryStore):
    """A store that indexes its datum pages and resources, and counts full document scans."""

    def __init__(self):
        super().__init__()
        self.scans = 0

    def documents(self, run_uid):
        self.scans += 1
        return super().documents(run_uid)

    def datum_pages(self, run_uid):
        return [doc for kind, doc in super().documents(run_uid) if kind == "datum_page"]


def test_a_frame_is_read_without_going_through_every_document(tmp_path):
    """Resource/datum frames need the datum pages and the resource only: a store's documents()
    (every event, for an indexed store) is not read."""
    docs, frames = ad_hdf5_run(tmp_path, n=4, shape=(512, 512))
    store = IndexedStore()
    cat = BrokerCatalog(store)
    insert(cat, docs)
    image = cat[-1].primary.to_dask()["cam_image"]
    store.scans = 0
    np.testing.assert_array_equal(image[2].values, frames[2])
    np.testing.assert_array_equal(cat[-1].primary.read()["cam_image"].values, frames)
    assert store.scans == 0


def test_nothing_is_read_at_open(tmp_path):
    docs, _ = ad_hdf5_run(tmp_path)
    cat = BrokerCatalog(MemoryStore())
    insert(cat, docs)
    (tmp_path / "scan.h5").unlink()  # opening must not touch the file
    ds = cat[-1].primary.to_dask()
    assert ds["cam_image"].shape == (6, 32, 48)
    with pytest.raises(AssetNotFound) as info:
        ds["cam_image"][0].compute()
    message = str(info.value)
    assert "scan.h5" in message and "cam_image" in message and cat[-1].uid in message
    assert "root_map in effect: {}" in message


def test_root_map_relocates_moved_files(make_catalog, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    docs, frames = ad_hdf5_run(old)
    new = tmp_path / "new"
    shutil.move(old, new)
    cat = make_catalog(root_map={str(old): str(new)})
    insert(cat, docs)
    np.testing.assert_array_equal(cat[-1].primary.read()["cam_image"].values, frames)
    unmapped = BrokerCatalog(cat.store)
    with pytest.raises(AssetNotFound, match="root_map"):
        unmapped[-1].primary.read()


def test_unknown_spec_lists_the_handlers(tmp_path):
    docs, _ = ad_hdf5_run(tmp_path)
    for name, doc in docs:
        if name == "resource":
            doc["spec"] = "MY_DETECTOR"
    cat = BrokerCatalog(MemoryStore())
    insert(cat, docs)
    with pytest.raises(UnknownAssetSpec) as info:
        cat[-1].primary.read()
    message = str(info.value)
    assert "MY_DETECTOR" in message and "AD_HDF5" in message and "NPY_SEQ" in message
    assert "area-detector-handlers" in message and "databroker.handlers" in message


def test_handlers_given_per_catalog_and_at_run_time(tmp_path):
    docs, frames = ad_hdf5_run(tmp_path)
    for name, doc in docs:
        if name == "resource":
            doc["spec"] = "DOUBLED"

    class Doubled:
        def __init__(self, path, frame_per_point=1):
            self.path = path

        def __call__(self, point_number):
            with h5py.File(self.path) as f:
                return f["/entry/data/data"][point_number] * 2

    cat = BrokerCatalog(MemoryStore(), handler_registry={"DOUBLED": Doubled})
    insert(cat, docs)
    np.testing.assert_array_equal(cat[-1].primary.read()["cam_image"].values, frames * 2)
    register_handler("DOUBLED", Doubled)
    plain = BrokerCatalog(cat.store)
    np.testing.assert_array_equal(plain[-1].primary.read()["cam_image"].values, frames * 2)


def test_documents_fill_from_hdf5(tmp_path):
    docs, frames = ad_hdf5_run(tmp_path)
    cat = BrokerCatalog(MemoryStore())
    insert(cat, docs)
    pages = [d for n, d in cat[-1].documents(fill="yes") if n == "event_page"]
    got = np.stack([np.asarray(v) for p in pages for v in p["data"]["cam_image"]])
    np.testing.assert_array_equal(got, frames)
    # event-model marks a filled value with the datum id it came from
    assert all(isinstance(p["filled"]["cam_image"][0], str) for p in pages)
    unfilled = [d for n, d in cat[-1].documents() if n == "event_page"]
    assert all(p["filled"]["cam_image"] == [False] for p in unfilled)


# -- stream_resource / stream_datum (ophyd-async) -------------------------------------------


def ophyd_async_run(tmp_path, cat, n=3):
    pytest.importorskip("ophyd_async")
    from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider, init_devices
    from ophyd_async.sim import SimBlobDetector

    RE = RunEngine()
    with init_devices():
        det = SimBlobDetector(StaticPathProvider(UUIDFilenameProvider(), tmp_path), name="blob")
    docs = []
    RE.subscribe(cat.insert)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([det], n))
    return docs


def test_ophyd_async_hdf5_frames_equal_the_file(make_catalog, tmp_path):
    cat = make_catalog()
    docs = ophyd_async_run(tmp_path, cat, n=3)
    resource = next(d for n, d in docs if n == "stream_resource" and d["data_key"] == "blob")
    path = resource["uri"].removeprefix("file://localhost")
    with h5py.File(path) as f:
        expected = f["/entry/data/data"][:]
        sums = f["/entry/sum"][:]
    ds = cat[-1].primary.to_dask()
    assert ds["blob"].shape == (3, 1, 240, 320) and ds["blob"].dtype == np.uint8
    np.testing.assert_array_equal(ds["blob"][:, 0].values, expected)
    np.testing.assert_array_equal(ds["blob-sum"].values[:, 0], sums[:3])
    np.testing.assert_array_equal(cat[-1].primary.read()["blob"].values[1, 0], expected[1])


# -- S3 ---------------------------------------------------------------------------------------


def test_hdf5_assets_from_s3(tmp_path, s3_server):
    fs, options = s3_server.filesystem(), s3_server.storage_options
    fs.mkdir("assets")
    docs, frames = ad_hdf5_run(tmp_path, filename="on-s3.h5")
    fs.put(str(tmp_path / "on-s3.h5"), "assets/beamline/on-s3.h5")
    (tmp_path / "on-s3.h5").unlink()
    cat = BrokerCatalog(
        MemoryStore(),
        root_map={str(tmp_path): "s3://assets/beamline"},
        asset_storage_options=options,
    )
    insert(cat, docs)
    ds = cat[-1].primary.to_dask()
    np.testing.assert_array_equal(ds["cam_image"][5].values, frames[5])
    np.testing.assert_array_equal(cat[-1].primary.read()["cam_image"].values, frames)


def test_summaries_of_asset_data_are_computed_on_demand_and_searchable(tmp_path):
    from intake_broker.queries import Comparison
    from intake_broker.store.summary import summarize_assets

    docs, frames = ad_hdf5_run(tmp_path)
    cat = BrokerCatalog(MemoryStore())
    insert(cat, docs)
    query = Comparison("gt", "summary.primary.cam_image.max", 0)
    assert len(cat.search(query)) == 0  # asset data are not summarised at ingest
    stats = summarize_assets(cat[-1])["primary"]["cam_image"]
    sums = frames.reshape(len(frames), -1).sum(axis=1)
    assert stats["max"] == sums.max() and stats["count"] == len(frames)
    assert stats["mean"] == pytest.approx(sums.mean())
    assert len(cat.search(query)) == 1
    assert cat.store.summary(cat[-1].uid)["primary"]["cam_stats_total"]["max"] == sums.max()
