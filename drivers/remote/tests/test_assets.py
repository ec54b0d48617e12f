"""External assets are read on the server: the client sees detector frames it has no file
for. Resource/datum (AD_HDF5) and stream_resource/stream_datum (ophyd-async HDF5)."""

from __future__ import annotations

import event_model
import numpy as np
import pytest

from intake_broker.assets import AssetNotFound
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import insert_all
from intake_broker_remote import RemoteCatalog

h5py = pytest.importorskip("h5py")
xr = pytest.importorskip("xarray")


def hdf5_runs(folder, n=5, shape=(6, 8)):
    """Two runs with frames in HDF5 files under ``folder``, and the frames."""
    frames = (np.arange(n * shape[0] * shape[1], dtype=np.uint16) % 1009).reshape((n, *shape))
    with h5py.File(folder / "ad.h5", "w") as f:
        f.create_dataset("/entry/data/data", data=frames, chunks=(1, *shape))
    with h5py.File(folder / "async.h5", "w") as f:
        f.create_dataset("/entry/data/data", data=frames[::-1].copy())
    ad = event_model.compose_run(time=1_700_000_000, metadata={"scan_id": 1})
    resource = ad.compose_resource(
        spec="AD_HDF5",
        root=str(folder),
        resource_path="ad.h5",
        resource_kwargs={"frame_per_point": 1},
    )
    desc = ad.compose_descriptor(
        name="primary",
        data_keys={
            "cam": {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": list(shape),
                "source": "PV:cam",
                "external": "FILESTORE:",
            },
            "total": {"dtype": "number", "shape": [], "source": "PV:total"},
        },
    )
    docs = [
        ("start", ad.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("resource", resource.resource_doc),
    ]
    for i in range(n):
        datum = resource.compose_datum(datum_kwargs={"point_number": i})
        docs += [
            ("datum", datum),
            (
                "event",
                desc.compose_event(
                    data={"cam": datum["datum_id"], "total": float(frames[i].sum())},
                    timestamps={"cam": 1.0 + i, "total": 1.0 + i},
                    filled={"cam": False},
                ),
            ),
        ]
    docs.append(("stop", ad.compose_stop()))

    oa = event_model.compose_run(time=1_700_000_100, metadata={"scan_id": 2})
    desc2 = oa.compose_descriptor(
        name="primary",
        data_keys={
            "blob": {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": list(shape),
                "source": "file",
                "external": "STREAM:",
            }
        },
    )
    sres = oa.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri=f"file://localhost{folder}/async.h5",
        data_key="blob",
        parameters={"dataset": "/entry/data/data"},
    )
    docs2 = [
        ("start", oa.start_doc),
        ("descriptor", desc2.descriptor_doc),
        ("stream_resource", sres.stream_resource_doc),
        (
            "stream_datum",
            sres.compose_stream_datum(
                indices={"start": 0, "stop": n},
                seq_nums={"start": 1, "stop": n + 1},
                descriptor=desc2.descriptor_doc,
            ),
        ),
    ]
    for i in range(n):
        docs2.append(("event", desc2.compose_event(data={}, timestamps={}, time=2.0 + i)))
    docs2.append(("stop", oa.compose_stop()))
    return docs, docs2, frames


@pytest.fixture
def asset_runs(live_server, tmp_path):
    """The runs of :func:`hdf5_runs` served by a server whose asset root is their folder
    (a served store reads assets only under configured roots)."""
    store = MemoryStore()
    docs, docs2, frames = hdf5_runs(tmp_path)
    insert_all(store, docs)
    insert_all(store, docs2)
    url = live_server.mount(store, asset_roots=[str(tmp_path)])
    yield url, frames, tmp_path
    live_server.unmount(url)


def test_datum_frames_are_read_by_the_server(asset_runs):
    url, frames, _ = asset_runs
    run = RemoteCatalog(url)[1]
    ds = run.primary.to_dask()
    assert ds["cam"].shape == frames.shape and ds["cam"].dtype == np.uint16
    np.testing.assert_array_equal(ds["cam"][3].values, frames[3])
    np.testing.assert_array_equal(run.primary.read()["cam"].values, frames)
    np.testing.assert_array_equal(ds["total"].values, frames.sum(axis=(1, 2)))


def test_stream_resource_rows_are_read_by_the_server(asset_runs):
    url, frames, _ = asset_runs
    ds = RemoteCatalog(url)[2].primary.read()
    np.testing.assert_array_equal(ds["blob"].values, frames[::-1])


def test_searched_and_pickled_catalogs_still_read_on_the_server(asset_runs):
    import pickle

    url, frames, _ = asset_runs
    narrowed = RemoteCatalog(url).search({"scan_id": 1})
    clone = pickle.loads(pickle.dumps(narrowed[-1]))
    np.testing.assert_array_equal(clone.primary.read()["cam"].values, frames)


def test_client_side_filling_reads_local_files(asset_runs):
    url, frames, folder = asset_runs
    np.testing.assert_array_equal(
        RemoteCatalog(url, fill="client")[1].primary.read()["cam"].values, frames
    )
    (folder / "ad.h5").rename(folder / "moved.h5")
    # the server's error class, as the local one; the path stays in the server's log
    with pytest.raises(AssetNotFound, match="request id") as info:
        RemoteCatalog(url)[1].primary.read()
    assert str(folder) not in str(info.value)


def test_zarr_layout_serves_asset_frames(asset_runs):
    url, frames, _ = asset_runs
    uid = RemoteCatalog(url)[1].uid
    ds = xr.open_zarr(f"{url}/zarr/v3/runs/{uid}/primary", consolidated=False)
    np.testing.assert_array_equal(ds["cam"].values, frames)
    assert ds["cam"].dims == ("time", "cam_dim_0", "cam_dim_1")


# -- behind the access guard and a federation, assets are still read on the server ------------

NOWHERE = "/beamline/not-on-this-client"


@pytest.fixture
def far_assets(live_server, tmp_path):
    """A server whose runs name asset files under a root only the server maps (``root_map``):
    a client that read them itself would not find them."""
    from intake_broker import BrokerCatalog, MemoryStore

    docs, docs2, frames = hdf5_runs(tmp_path)
    for name, doc in docs + docs2:
        if name == "resource":
            doc["root"] = NOWHERE
        elif name == "stream_resource":
            doc["uri"] = f"file://localhost{NOWHERE}/async.h5"
    store = MemoryStore()
    insert_all(store, docs + docs2)
    url = live_server.mount(BrokerCatalog(store, root_map={NOWHERE: str(tmp_path)}))
    yield url, frames
    live_server.unmount(url)


def wrapped(url, how):
    from intake_broker import BrokerCatalog, MemoryStore
    from intake_broker.access import GuardedStore, Principal, ProposalPolicy
    from intake_broker.federation import FederatedStore
    from intake_broker_remote import RemoteStore

    remote = RemoteStore(url)
    if how == "guarded":
        policy = ProposalPolicy(deny_unlabelled=False)
        return BrokerCatalog(GuardedStore(remote, policy, Principal("ada", proposals=("p-1",))))
    return BrokerCatalog(FederatedStore({"empty": MemoryStore(), "remote": remote}))


@pytest.mark.parametrize("how", ["guarded", "federated"])
def test_a_remote_store_behind_a_wrapper_reads_assets_on_the_server(far_assets, how):
    url, frames = far_assets
    cat = wrapped(url, how)
    np.testing.assert_array_equal(cat[1].primary.read()["cam"].values, frames)
    np.testing.assert_array_equal(cat[2].primary.read()["blob"].values, frames[::-1])
    filled = [d for n, d in cat[1].documents(fill="yes") if n == "event_page"]
    np.testing.assert_array_equal(np.concatenate([p["data"]["cam"] for p in filled]), frames)


def test_the_client_cannot_read_those_files_itself(far_assets):
    """What the test above relies on: read on the client, the same frames are not found."""
    url, _ = far_assets
    with pytest.raises(AssetNotFound, match="not-on-this-client"):
        RemoteCatalog(url, fill="client")[1].primary.read()


def test_documents_fill_on_a_remote_run_reads_on_the_server(far_assets):
    url, frames = far_assets
    run = RemoteCatalog(url)[1]
    filled = [d for n, d in run.documents(fill="yes") if n == "event_page"]
    np.testing.assert_array_equal(np.concatenate([p["data"]["cam"] for p in filled]), frames)
    assert all(isinstance(i, str) for p in filled for i in p["filled"]["cam"])
    lazy = [d for n, d in run.documents(fill="delayed") if n == "event_page"]
    np.testing.assert_array_equal(lazy[0]["data"]["cam"][0].compute(), frames[0])
