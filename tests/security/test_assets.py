"""Issue 14, item 1: asset documents must not read arbitrary files or fetch URLs.

The repros: a writer of proposal p-A inserts a resource / stream_resource naming another
proposal's HDF5 file, a server-side ``.npy`` or ``http://127.0.0.1:<port>/internal.h5`` and
reads it through their own run -- through the service and through a guarded catalog. Each is
refused at insert and again at read; a local, unguarded catalog still reads files anywhere."""

from __future__ import annotations

import http.server
import json
import os
import threading

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.assets import AssetReader, AssetReadError
from intake_broker.assets.roots import AssetOutsideRoots, AssetRoots
from intake_broker.testing import factories, insert_all

h5py = pytest.importorskip("h5py")

ADA = Principal("ada", proposals=("p-A",))
BOB = Principal("bob", proposals=("p-B",))
ROOT = Principal("root", roles=("admin",))


def labelled(docs, proposal):
    docs[0][1]["proposal_id"] = proposal
    return docs


@pytest.fixture
def facility(tmp_path):
    """``data/p-A`` and ``data/p-B`` with an AD_HDF5 run each (bob's written by an admin),
    a secret ``.npy`` outside ``data``, and a store holding bob's run."""
    data = tmp_path / "data"
    for p in ("p-A", "p-B"):
        (data / p).mkdir(parents=True)
    bob_docs, bob_frames = factories.ad_hdf5_run(data / "p-B", n=4, shape=(8, 8))
    np.save(tmp_path / "secret_0.npy", np.arange(16.0))
    store = MemoryStore()
    insert_all(store, labelled(bob_docs, "p-B"))
    return store, data, bob_frames, tmp_path


def attack_docs(resource_doc, datum_kwargs=None):
    """A p-A run whose one event points, through ``resource_doc``, at someone's file."""
    import event_model

    bundle = event_model.compose_run(metadata={"proposal_id": "p-A", "scan_id": 1})
    resource_doc = {**resource_doc, "run_start": bundle.start_doc["uid"]}
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "cam": {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": [8, 8],
                "source": "PV:cam",
                "external": "FILESTORE:",
            }
        },
    )
    datum = {
        "datum_id": "d-0",
        "resource": resource_doc["uid"],
        "datum_kwargs": datum_kwargs or {"point_number": 0},
    }
    event = desc.compose_event(
        data={"cam": "d-0"}, timestamps={"cam": 1.0}, filled={"cam": False}, seq_num=1
    )
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("resource", resource_doc),
        ("datum", datum),
        ("event", event),
        ("stop", bundle.compose_stop()),
    ]


def resource(path, spec="AD_HDF5", **kwargs):
    return {
        "spec": spec,
        "root": "",
        "resource_path": str(path),
        "resource_kwargs": kwargs,
        "path_semantics": "posix",
        "uid": "attack-res",
    }


def test_another_proposals_frames_are_refused_at_insert_and_at_read(facility):
    store, data, bob_frames, _ = facility
    theirs = str(data / "p-B" / "scan.h5")
    docs = attack_docs(resource(theirs))
    guarded = GuardedStore(store, ProposalPolicy(), ADA, asset_roots=[str(data / "{proposal_id}")])
    guarded.insert(*docs[0])
    guarded.insert(*docs[1])
    with pytest.raises(AssetOutsideRoots, match="outside") as info:
        guarded.insert(*docs[2])
    assert "asset_roots" in str(info.value)  # says how to configure them
    # written anyway (a store filled before the roots were configured): refused at read
    insert_all(store, docs[2:])
    run = BrokerCatalog(guarded)[docs[0][1]["uid"]]
    with pytest.raises(AssetOutsideRoots):
        run.primary.read()
    # an export reads through the same roots, and says so (not "the destination failed")
    out = data.parent / "exported"
    with pytest.raises(AssetOutsideRoots):
        run.export("nexus", out, progress=False)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".nxs"]
    # bob himself reads his frames under the same roots
    own = BrokerCatalog(
        GuardedStore(store, ProposalPolicy(), BOB, asset_roots=[str(data / "{proposal_id}")])
    )
    np.testing.assert_array_equal(own[-1].primary.read()["cam_image"].values, bob_frames)


def test_a_shared_root_without_proposal_template_still_confines_to_the_root(facility):
    store, data, _, tmp = facility
    docs = attack_docs(resource(tmp / "secret", spec="NPY_SEQ"))
    guarded = GuardedStore(store, ProposalPolicy(), ADA, asset_roots=[str(data)])
    insert_all(guarded, docs[:2])
    with pytest.raises(AssetOutsideRoots):
        guarded.insert(*docs[2])
    # a resource inside the root whose handler parameter leads out: checked at each open
    template = f"{tmp}/secret%.0s%.0s_%d.tiff"  # AD_TIFF: template % (path, filename, n)
    inside = {
        **resource("p-A", spec="AD_TIFF", template=template, filename="x"),
        "root": str(data),
    }
    reader_docs = attack_docs(inside)
    insert_all(guarded, reader_docs)  # the resource itself is inside the root
    with pytest.raises(AssetOutsideRoots, match="secret"):
        BrokerCatalog(guarded)[reader_docs[0][1]["uid"]].primary.read()


def test_a_guarded_store_without_roots_reads_no_asset(facility):
    store, _, _, _ = facility
    cat = BrokerCatalog(GuardedStore(store, ProposalPolicy(), BOB))
    with pytest.raises(AssetOutsideRoots, match="none configured"):
        cat[-1].primary.read()


def test_a_local_unguarded_catalog_reads_files_anywhere(facility):
    store, _, bob_frames, _ = facility
    np.testing.assert_array_equal(
        BrokerCatalog(store)[-1].primary.read()["cam_image"].values, bob_frames
    )
    confined = AssetReader(store, store.runs()[0].uid, asset_roots=["/nonexistent-root"])
    with pytest.raises(AssetOutsideRoots):
        confined.read_datums("cam_image", [next(iter(confined.datums))], np.dtype("<u2"), (8, 8))


def test_root_map_dots_and_symlinks_are_resolved_before_the_check(facility):
    store, data, bob_frames, tmp = facility
    allowed = data / "p-A"
    roots = AssetRoots.of([str(allowed)])
    with pytest.raises(AssetOutsideRoots):
        roots.check(str(allowed / ".." / "p-B" / "scan.h5"))
    os.symlink(data / "p-B" / "scan.h5", allowed / "link.h5")
    with pytest.raises(AssetOutsideRoots):
        roots.check(str(allowed / "link.h5"))
    os.symlink(allowed, tmp / "alias")  # a link to an allowed folder is that folder
    assert roots.check(str(tmp / "alias" / "x.h5")) == os.path.realpath(allowed / "x.h5")
    # root_map: its targets are roots, and '..' after mapping is resolved
    uid = store.runs()[0].uid
    moved = {"/old-root": str(allowed)}
    reader = AssetReader(store, uid, root_map=moved, asset_roots=[])
    assert reader.asset_roots.check(str(allowed / "f.h5"))
    doc = {**resource("../p-B/scan.h5"), "root": "/old-root", "run_start": uid}
    from intake_broker.assets import check_asset_document

    with pytest.raises(AssetOutsideRoots):
        check_asset_document("resource", doc, reader.asset_roots)


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/det/../other/x.h5",
        "s3://bucket/det/%2e%2e/other/x.h5",
        "s3://bucket/det/%252e%252e/other/x.h5",
        "s3://bucket/detx/x.h5",
        "simplecache::s3://bucket/det/x.h5",
        "s3://bucket/det/x.h5::http://127.0.0.1/",
        "http://127.0.0.1:9/internal.h5",
        "S3://bucket/other/x.h5",
    ],
)
def test_urls_outside_their_prefix_are_refused(url):
    roots = AssetRoots.of(["s3://bucket/det"])
    with pytest.raises(AssetOutsideRoots):
        roots.check(url)
    assert roots.check("s3://bucket/det/run1/x.h5") == "s3://bucket/det/run1/x.h5"


class _Counting(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def internal_http(tmp_path):
    """An internal HTTP server on 127.0.0.1 serving ``internal.h5``; counts its requests."""
    (tmp_path / "www").mkdir()
    with h5py.File(tmp_path / "www" / "internal.h5", "w") as f:
        f["/entry/data/data"] = np.ones((2, 8, 8), dtype="<u2")
    _Counting.hits = []
    handler = lambda *a, **k: _Counting(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/internal.h5", _Counting.hits
    server.shutdown()
    server.server_close()


def stream_attack(uri):
    import event_model

    bundle = event_model.compose_run(metadata={"proposal_id": "p-A"})
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "blob": {
                "dtype": "array",
                "dtype_numpy": "<u2",
                "shape": [8, 8],
                "source": "x",
                "external": "STREAM:",
            }
        },
    )
    sres = bundle.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri=uri,
        data_key="blob",
        parameters={"dataset": "/entry/data/data"},
    )
    sdatum = sres.compose_stream_datum(
        indices={"start": 0, "stop": 1},
        seq_nums={"start": 1, "stop": 2},
        descriptor=desc.descriptor_doc,
    )
    return [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
        ("stream_resource", sres.stream_resource_doc),
        ("stream_datum", sdatum),
        ("event", desc.compose_event(data={}, timestamps={}, seq_num=1)),
        ("stop", bundle.compose_stop()),
    ]


def test_the_service_never_fetches_a_url_a_client_chose(facility, internal_http):
    httpx = pytest.importorskip("httpx")
    testing = pytest.importorskip("intake_broker_server.testing")
    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    store, data, bob_frames, tmp = facility
    url_of_internal, hits = internal_http
    (tmp / "users.json").write_text(
        json.dumps({"users": {"ada": {"proposals": ["p-A"]}, "bob": {"proposals": ["p-B"]}}})
    )
    keys = ApiKeyStore(tmp / "keys.json")
    auth = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(tmp / "users.json")
    )
    ada = {"Authorization": f"Apikey {keys.create('ada', ['read', 'write'])[1]}"}
    with testing.LiveServer() as server:
        url = server.mount(store, auth=auth, asset_roots=[str(data / "{proposal_id}")])
        with httpx.Client(base_url=url, timeout=30, headers=ada) as http:
            for docs in (
                stream_attack(url_of_internal),
                attack_docs(resource(data / "p-B" / "scan.h5")),
            ):
                statuses = [
                    http.post("/api/v1/documents", json=[n, d]).status_code for n, d in docs
                ]
                assert statuses[2] == 403, statuses  # the stream_resource / resource
                assert all(s < 500 for s in statuses), statuses
            # the same documents stored behind the service's back: refused when read
            docs = stream_attack(url_of_internal)
            insert_all(store, docs)
            uid = docs[0][1]["uid"]
            desc = docs[1][1]["uid"]
            response = http.get(
                f"/api/v1/runs/{uid}/assets/stream",
                params={"key": "blob", "descriptor": desc, "seq_start": 1, "seq_stop": 2},
            )
            assert response.status_code == 403, response.text
            assert response.json()["error"] == "AssetOutsideRoots"
            stolen = attack_docs(resource(data / "p-B" / "scan.h5"))
            insert_all(store, stolen)
            response = http.post(
                f"/api/v1/runs/{stolen[0][1]['uid']}/assets/datums",
                json={"key": "cam", "datum_ids": ["d-0"]},
            )
            assert response.status_code == 403, response.text
            assert bob_frames[0].tobytes() not in response.content
            # the web page's export downloads read assets through the same roots (csv leaves
            # arrays out, reading none: a download without them)
            for run_uid in (uid, stolen[0][1]["uid"]):
                for fmt in ("nexus", "csv"):
                    response = http.get(
                        f"/api/v1/web/runs/{run_uid}/export", params={"format": fmt}
                    )
                    assert response.status_code == (403 if fmt == "nexus" else 200), fmt
                    if fmt == "nexus":
                        assert response.json()["error"] == "AssetOutsideRoots"
                    assert bob_frames[0].tobytes() not in response.content
    assert hits == []  # the internal server was never asked


def test_hdf5_links_out_of_an_allowed_file_are_refused(facility):
    store, data, bob_frames, _ = facility
    theirs = data / "p-B" / "scan.h5"
    with h5py.File(data / "p-A" / "linked.h5", "w") as f:
        f["entry"] = h5py.ExternalLink(str(theirs), "/entry")
    layout = h5py.VirtualLayout(shape=(4, 8, 8), dtype="<u2")
    layout[:] = h5py.VirtualSource(str(theirs), "/entry/data/data", shape=(4, 8, 8))
    with h5py.File(data / "p-A" / "virtual.h5", "w") as f:
        f.create_virtual_dataset("/entry/data/data", layout)
    roots = [str(data / "{proposal_id}")]
    guarded = GuardedStore(store, ProposalPolicy(), ADA, asset_roots=roots)
    for name in ("linked.h5", "virtual.h5"):
        docs = attack_docs({**resource(data / "p-A" / name), "uid": f"res-{name}"})
        insert_all(guarded, docs)  # inside p-A's folder: accepted
        with pytest.raises(AssetOutsideRoots, match="other file"):
            BrokerCatalog(guarded)[docs[0][1]["uid"]].primary.read()


def test_documents_cannot_choose_storage_options_or_foreign_resources(facility):
    store, data, bob_frames, _ = facility
    roots = [str(data / "{proposal_id}")]
    evil = resource(data / "p-A" / "x.h5", storage_options={"endpoint_url": "http://127.0.0.1:9"})
    with pytest.raises(AssetOutsideRoots):  # a URL in the parameters
        GuardedStore(store, ProposalPolicy(), ROOT, asset_roots=roots).insert(
            "resource", {**evil, "run_start": store.runs()[0].uid}
        )
    # an event of ada's run naming bob's datum: resolved only among ada's run's datums
    bob_run = store.runs()[0].uid
    bob_datum = next(iter(AssetReader(store, bob_run).datums))
    docs = attack_docs(resource(data / "p-A" / "x.h5"))
    docs[4][1]["data"]["cam"] = bob_datum
    insert_all(store, docs)
    reader = AssetReader(
        GuardedStore(store, ProposalPolicy(), ADA, asset_roots=roots), docs[0][1]["uid"]
    )
    with pytest.raises(AssetReadError, match="not among the run's datums"):
        reader.read_datums("cam", [bob_datum], np.dtype("<u2"), (8, 8))
