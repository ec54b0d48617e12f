"""The leak matrix: a user of proposal A tries every path for runs of proposal B, on every store
(memory, files, native and MongoDB on SecantusDB)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.assets import AssetReader
from intake_broker.errors import InvalidDocument, RunNotFound, WriteDenied
from intake_broker.queries import (
    Annotated,
    Comparison,
    Contains,
    Eq,
    FullText,
    Fuzzy,
    In,
    KeyPresent,
    Not,
    NoteText,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
)
from intake_broker.store.abilities import flush
from intake_broker.testing import factories, insert_all

ADA = Principal("ada", proposals=("p-1",))
BOB = Principal("bob", proposals=("p-2",), beamtimes=("bt-9",))
STAFF = Principal("sam", beamlines=("csx",), roles=("user", "staff"))
ADMIN = Principal("root", roles=("admin",))
NOBODY = Principal("eve")


def _run(scan_id, when, **md):
    return factories.scalar_run(
        n=3, time=1_700_000_000 + when, scan_id=scan_id, plan_name="scan", **md
    )


RUNS = {
    "a1": _run(1, 0, proposal_id="p-1", beamline_id="chx", sample={"name": "LaB6"}),
    "a2": _run(2, 10, proposal_id="p-1", beamline_id="chx", sample={"name": "Si"}),
    "b1": _run(3, 20, proposal_id="p-2", beamline_id="csx", sample={"name": "secret gold"}),
    "b2": _run(
        1, 30, proposal_id="p-2", beamtime_id="bt-9", beamline_id="iss", sample={"name": "LaB6"}
    ),
    "public": _run(5, 40, proposal_id="p-3", embargo_until=time.time() - 60),
    "embargoed": _run(6, 50, proposal_id="p-3", embargo_until=time.time() + 3600),
    "unlabelled": _run(7, 60, sample={"name": "LaB6"}),
}
UID = {name: docs[0][1]["uid"] for name, docs in RUNS.items()}
VISIBLE = {
    "ada": {"a1", "a2", "public"},
    "bob": {"b1", "b2", "public"},
    "sam": {"b1", "public"},
    "root": set(RUNS),
    "eve": {"public"},
}


def files_store(tmp_path):
    files = pytest.importorskip("intake_broker_files")
    return files.MsgpackStore.in_folder(tmp_path / "runs")


def native_store(tmp_path):
    native = pytest.importorskip("intake_broker_native")
    return native.NativeStore.in_folder(tmp_path / "native")


def mongo_store(request, database):
    mongo = pytest.importorskip(
        "intake_broker_mongo", reason="the MongoDB driver (intake-broker-mongo) is not installed"
    )
    server = request.getfixturevalue("mongo_server")
    server.drop(database)
    return mongo.MongoStore(f"{server.uri}/{database}")


def filled_store(kind, tmp, request, database):
    """A store of ``kind`` holding every run of RUNS."""
    base = {
        "memory": MemoryStore,
        "files": lambda: files_store(tmp),
        "native": lambda: native_store(tmp),
        "mongo": lambda: mongo_store(request, database),
    }[kind]()
    for docs in RUNS.values():
        insert_all(base, docs)
    flush(base)
    return base


@pytest.fixture(params=["memory", "files", "native", "mongo"], scope="module")
def store(request, tmp_path_factory):
    base = filled_store(request.param, tmp_path_factory.mktemp("access"), request, "access_matrix")
    yield base
    base.close()


def catalog_for(store, who):
    return BrokerCatalog(GuardedStore(store, ProposalPolicy(), who))


def names(uids):
    by_uid = {uid: name for name, uid in UID.items()}
    return {by_uid[u] for u in uids}


@pytest.mark.parametrize("who", [ADA, BOB, STAFF, ADMIN, NOBODY], ids=lambda p: p.name)
def test_listing_and_counts(store, who):
    cat = catalog_for(store, who)
    assert names(cat) == VISIBLE[who.name]
    assert len(cat) == len(VISIBLE[who.name])


QUERIES = [
    Eq("plan_name", "scan"),
    Eq("sample.name", "secret gold"),
    Regex("sample.name", "gold"),
    Regex("uid", "."),
    FullText("secret gold"),
    Fuzzy("sample.name", "secret gild"),
    Contains("motors", "motor"),
    In("scan_id", [1, 2, 3, 4, 5, 6, 7]),
    KeyPresent("sample"),
    Not(Eq("proposal_id", "p-1")),
    Comparison("gt", "scan_id", 0),
    ScanID(3),
    ScanIDRange(0, 99),
    TimeRange(since=0),
    Eq("stop.exit_status", "success"),
    Eq("descriptors.name", "primary"),
    Comparison("gt", "summary.primary.det.max", -1),
    Eq("proposal_id", "p-2"),
    Eq("beamtime_id", "bt-9"),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.kind)
def test_search_never_leaks(store, query):
    for who in (ADA, BOB, STAFF, NOBODY):
        found = names(catalog_for(store, who).search(query))
        assert found <= VISIBLE[who.name], (who.name, found)
    assert names(catalog_for(store, ADMIN).search(query)) == names(r.uid for r in store.runs(query))


def test_lookups_of_other_proposals_look_missing(store):
    cat = catalog_for(store, ADA)
    for name in ("b1", "b2", "embargoed", "unlabelled"):
        uid = UID[name]
        for key in (uid, uid[:8]):
            with pytest.raises(RunNotFound) as info:
                cat[key]
            assert "no run" in str(info.value)
            assert key not in cat
    assert cat[1].metadata["start"]["uid"] == UID["a1"]  # b2 also has scan_id 1, and is newer
    with pytest.raises(RunNotFound):
        cat[3]  # only b1 has scan_id 3
    assert cat[-1].metadata["start"]["uid"] == UID["public"]
    assert {cat[-i].metadata["start"]["uid"] for i in (1, 2, 3)} == {
        UID["a1"],
        UID["a2"],
        UID["public"],
    }
    with pytest.raises(RunNotFound):
        cat[-4]


def test_every_read_path_of_the_store_is_checked(store):
    guarded = GuardedStore(store, ProposalPolicy(), ADA)
    other = UID["b1"]
    descriptor = store.descriptors(other)[0]["uid"]  # a uid learned elsewhere
    for call in (
        lambda: guarded.run(other),
        lambda: guarded.descriptors(other),
        lambda: list(guarded.documents(other)),
        lambda: guarded.run_assets(other),
        lambda: guarded.summary(other),
        lambda: list(guarded.datum_pages(other)),
        lambda: guarded.record_parts(other, {"descriptors"}),
        lambda: AssetReader(guarded, other).assets,
    ):
        with pytest.raises(RunNotFound):
            call()
    for call in (
        lambda: guarded.read_events(descriptor),
        lambda: guarded.event_chunks(descriptor),
        lambda: guarded.descriptor_run(descriptor),
    ):
        with pytest.raises(KeyError, match="not part of any run") as info:
            call()
        assert other not in str(info.value)  # the descriptor's run is not named
    # a fresh guard (another server worker) finds a visible descriptor's run by itself
    mine = store.descriptors(UID["a1"])[0]["uid"]
    fresh = GuardedStore(store, ProposalPolicy(), ADA)
    assert fresh.descriptor_run(mine) == UID["a1"]
    assert len(fresh.read_events(mine)) == len(store.read_events(mine)) > 0


def test_a_held_run_is_checked_again_where_it_is_used(store):
    cat = catalog_for(store, ADA)
    run = cat[UID["a1"]]
    primary = next(d["uid"] for n, d in RUNS["a1"] if n == "descriptor" and d["name"] == "primary")
    expected = [
        d["data"]["det"] for n, d in RUNS["a1"] if n == "event" and d["descriptor"] == primary
    ]
    np.testing.assert_array_equal(run.primary.read()["det"].values, expected)
    clone = pickle.loads(pickle.dumps(run))
    assert clone.primary.read()["det"].shape == (3,)
    # the same run object with a revoked grant: every access is refused
    revoked = GuardedStore(store, ProposalPolicy(), NOBODY)
    revoked._descriptors.update(run._store._descriptors)
    with pytest.raises(KeyError, match="not part of any run this catalog shows"):
        revoked.read_events(next(iter(run._store._descriptors)))


def test_staff_admin_public_and_unlabelled(store):
    assert names(catalog_for(store, STAFF)) == {"b1", "public"}
    assert UID["unlabelled"] in catalog_for(store, ADMIN)
    lenient = BrokerCatalog(GuardedStore(store, ProposalPolicy(deny_unlabelled=False), NOBODY))
    assert names(lenient) == {"public", "unlabelled"}


# -- writing --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "files", "native", "mongo"])
def writable(request, tmp_path):
    """A store of its own for a test that writes (the matrix's store stays as RUNS made it)."""
    base = filled_store(request.param, tmp_path, request, "access_writes")
    yield base
    base.close()


def stored(store, name):
    """What the store holds of run ``name``: its documents' kinds and uids."""
    return [(kind, doc.get("uid", doc.get("datum_id"))) for kind, doc in store.documents(UID[name])]


def test_users_write_runs_of_their_own_proposals(writable):
    docs = _run(8, 70, proposal_id="p-1")
    insert_all(GuardedStore(writable, ProposalPolicy(), ADA), docs)
    run = catalog_for(writable, ADA)[docs[0][1]["uid"]]
    assert run.primary.read()["det"].shape == (3,)
    staff_run = _run(9, 80, beamline_id="csx")  # staff write at their beamlines
    insert_all(GuardedStore(writable, ProposalPolicy(), STAFF), staff_run)
    assert staff_run[0][1]["uid"] in catalog_for(writable, STAFF)
    anything = _run(10, 90)  # admins write anything, unlabelled runs too
    insert_all(GuardedStore(writable, ProposalPolicy(), ADMIN), anything)
    assert anything[0][1]["uid"] in catalog_for(writable, ADMIN)


@pytest.mark.parametrize(
    "labels",
    [
        {"proposal_id": "p-2"},
        {"beamtime_id": "bt-9"},
        {},
        {"proposal_id": "p-3", "embargo_until": time.time() - 60},
        {"beamline_id": "csx"},
    ],
    ids=["other proposal", "other beamtime", "unlabelled", "public", "a beamline"],
)
def test_users_cannot_start_runs_outside_their_proposals(writable, labels):
    before = writable.count()
    docs = _run(11, 100, **labels)
    with pytest.raises(WriteDenied, match="'ada' may not start this run"):
        GuardedStore(writable, ProposalPolicy(), ADA).insert(*docs[0])
    assert writable.count() == before
    with pytest.raises(RunNotFound):
        writable.run(docs[0][1]["uid"])


# -- the leak matrix of write errors ---------------------------------------------------------
#
# ada (p-1) writes documents that join bob's run b1 (p-2), and the same documents joining
# things that do not exist: each pair must fail alike (same error, same words but for the uid
# ada gave), store nothing, and never describe bob's documents.


def primary_of(name):
    return next(d for n, d in RUNS[name] if n == "descriptor" and d["name"] == "primary")


def asset_docs(folder):
    """A resource, datum and stream_resource of b1 (bob's) and of a1 (ada's)."""
    docs = {}
    for name in ("a1", "b1"):
        uid = UID[name]
        docs[name] = [
            (
                "resource",
                {
                    "spec": "AD_HDF5",
                    "root": str(folder),
                    "resource_path": f"{name}.h5",
                    "resource_kwargs": {"frame_per_point": 1},
                    "path_semantics": "posix",
                    "uid": f"{name}-res",
                    "run_start": uid,
                },
            ),
            ("datum", {"datum_id": f"{name}-res/0", "resource": f"{name}-res", "datum_kwargs": {}}),
            (
                "stream_resource",
                {
                    "uid": f"{name}-sres",
                    "run_start": uid,
                    "data_key": "det",
                    "mimetype": "application/x-hdf5",
                    "uri": f"file://localhost{folder}/{name}-async.h5",
                    "parameters": {"dataset": "/entry/data/data"},
                },
            ),
        ]
    return docs


def write_attempts(folder):
    """``(what, name, doc, ref)`` pairs: the document joining bob's run (naming ``ref``) and
    the same document joining something missing (naming its own ``ref``)."""
    b1, a1 = UID["b1"], UID["a1"]
    theirs, ours = primary_of("b1"), primary_of("a1")
    event = next(d for n, d in RUNS["b1"] if n == "event" and d["descriptor"] == theirs["uid"])
    event = {**event, "uid": "x-event", "seq_num": 99}
    resource = {**asset_docs(folder)["b1"][0][1], "uid": "x-res"}
    sres = {**asset_docs(folder)["b1"][2][1], "uid": "x-sres"}
    stop = {"uid": "x-stop", "run_start": b1, "time": 1_700_000_100.0, "exit_status": "success"}
    sdatum = {
        "uid": "x-sd",
        "descriptor": ours["uid"],
        "stream_resource": "b1-sres",
        "indices": {"start": 0, "stop": 1},
        "seq_nums": {"start": 1, "stop": 2},
    }
    missing_run = "0badc0de-0000-4000-8000-000000000000"
    return [
        ("event", "event", event, theirs["uid"], {**event, "descriptor": "gone"}, "gone"),
        (
            "descriptor",
            "descriptor",
            {**theirs, "uid": "x-desc", "name": "sneaky"},
            b1,
            {**theirs, "uid": "x-desc", "name": "sneaky", "run_start": missing_run},
            missing_run,
        ),
        ("stop", "stop", stop, b1, {**stop, "run_start": missing_run}, missing_run),
        ("resource", "resource", resource, b1, {**resource, "run_start": missing_run}, missing_run),
        (
            "stream_resource",
            "stream_resource",
            sres,
            b1,
            {**sres, "run_start": missing_run},
            missing_run,
        ),
        (
            "datum",
            "datum",
            {"datum_id": "x-datum", "resource": "b1-res", "datum_kwargs": {}},
            "b1-res",
            {"datum_id": "x-datum", "resource": "gone", "datum_kwargs": {}},
            "gone",
        ),
        (
            "stream_datum of their stream_resource",
            "stream_datum",
            sdatum,
            "b1-sres",
            {**sdatum, "stream_resource": "gone"},
            "gone",
        ),
        (
            "stream_datum of their descriptor",
            "stream_datum",
            {**sdatum, "descriptor": theirs["uid"], "stream_resource": "a1-sres"},
            theirs["uid"],
            {**sdatum, "descriptor": "gone", "stream_resource": "a1-sres"},
            "gone",
        ),
        # reused uids: bob's, and ada's own, differ alike and are never described
        (
            "start reusing their uid",
            "start",
            {**RUNS["b1"][0][1], "proposal_id": "p-1"},
            b1,
            {**RUNS["a1"][0][1], "plan_name": "other"},
            a1,
        ),
        (
            "descriptor reusing their descriptor's uid",
            "descriptor",
            {**ours, "name": "sneaky", "uid": theirs["uid"]},
            theirs["uid"],
            {**ours, "name": "sneaky", "uid": primary_of("a2")["uid"]},
            primary_of("a2")["uid"],
        ),
        (
            "resource reusing their resource's uid",
            "resource",
            {**resource, "run_start": a1, "uid": "b1-res"},
            "b1-res",
            {**resource, "run_start": a1, "uid": "a1-res"},
            "a1-res",
        ),
    ]


#: What no write error may say about bob's run b1.
SECRETS = ("secret gold", "sample", "scan_id", "plan_name", "beamline_id", "csx", "p-2")


@pytest.fixture
def write_world(writable, tmp_path):
    """``writable`` with the asset documents of :func:`asset_docs` (written unguarded)."""
    for docs in asset_docs(tmp_path).values():
        insert_all(writable, docs)
    flush(writable)
    return writable, tmp_path


def outcome(call, *refs):
    """``(error name, message with each ref as '?')`` of a call that must fail."""
    try:
        call()
    except Exception as err:  # noqa: BLE001 (compared, whatever it is)
        message = str(err)
        for ref in refs:
            message = message.replace(ref, "?")
        return type(err).__name__, message
    raise AssertionError("the write was accepted")


def test_write_errors_about_hidden_runs_read_like_missing_ones(write_world):
    store, folder = write_world
    guarded = GuardedStore(store, ProposalPolicy(), ADA, asset_roots=[str(folder)])
    held = stored(store, "b1")
    for what, name, hidden, ref, missing, missing_ref in write_attempts(folder):
        got = outcome(lambda: guarded.insert(name, hidden), ref)  # noqa: B023
        assert got == outcome(lambda: guarded.insert(name, missing), missing_ref), what  # noqa: B023
        assert not any(secret in got[1] for secret in SECRETS), (what, got)
    assert stored(store, "b1") == held
    assert names(catalog_for(store, BOB)) == VISIBLE["bob"]
    assert names(catalog_for(store, ADA)) == VISIBLE["ada"]


def test_public_runs_are_read_but_not_written(write_world):
    store, _ = write_world
    guarded = GuardedStore(store, ProposalPolicy(), ADA)
    descriptor = {**primary_of("public"), "uid": "sneaky", "name": "sneaky"}
    held = stored(store, "public")
    with pytest.raises(WriteDenied, match="may read run .* but not write"):
        guarded.insert("descriptor", descriptor)
    assert stored(store, "public") == held


@pytest.mark.parametrize(
    "proposals, beamtimes, refused",
    [
        (["p-1", "p-2"], None, True),
        ("p-1", "bt-9", True),  # bob's beamtime: the run would show in his listing
        (["p-1"], None, False),
        ("p-1", None, False),
    ],
)
def test_a_start_names_only_proposals_its_writer_holds(writable, proposals, beamtimes, refused):
    labels = {"proposal_id": proposals, **({"beamtime_id": beamtimes} if beamtimes else {})}
    docs = _run(12, 110, **labels)
    guarded = GuardedStore(writable, ProposalPolicy(), ADA)
    if refused:
        with pytest.raises(WriteDenied, match="holds every one of them"):
            guarded.insert(*docs[0])
        assert names(catalog_for(writable, BOB)) == VISIBLE["bob"]
    else:
        insert_all(guarded, docs)
        assert docs[0][1]["uid"] in catalog_for(writable, ADA)
    both = _run(13, 120, proposal_id=["p-1", "p-2"])  # an admin may, and both see it
    insert_all(GuardedStore(writable, ProposalPolicy(), ADMIN), both)
    for who in (ADA, BOB):
        assert both[0][1]["uid"] in catalog_for(writable, who)


def test_datums_and_stream_datums_join_only_their_own_run(write_world):
    store, folder = write_world
    guarded = GuardedStore(store, ProposalPolicy(), ADA, asset_roots=[str(folder)])
    ours = primary_of("a1")
    a2 = UID["a2"]
    own = {**asset_docs(folder)["a1"][2][1], "uid": "a2-sres", "run_start": a2}
    guarded.insert("stream_resource", own)  # ada's run a2: fine
    # a stream_datum tying a1's descriptor to a2's stream_resource: both ada's, two runs
    with pytest.raises(InvalidDocument, match="two different runs"):
        guarded.insert(
            "stream_datum",
            {
                "uid": "x-sd",
                "descriptor": ours["uid"],
                "stream_resource": "a2-sres",
                "indices": {"start": 0, "stop": 1},
                "seq_nums": {"start": 1, "stop": 2},
            },
        )
    guarded.insert("datum", {"datum_id": "a1-res/1", "resource": "a1-res", "datum_kwargs": {}})
    assert "a1-res/1" in AssetReader(store, UID["a1"]).datums
    old = {k: v for k, v in asset_docs(folder)["a1"][0][1].items() if k != "run_start"}
    with pytest.raises(WriteDenied, match="no run_start"):  # old-style: admins only
        guarded.insert("resource", {**old, "uid": "x"})


# -- the same matrix through the service ------------------------------------------------------


@pytest.fixture(scope="module")
def live_server():
    testing = pytest.importorskip("intake_broker_server.testing")
    with testing.LiveServer() as server:
        yield server


def test_write_errors_through_the_service(write_world, live_server, tmp_path_factory):
    httpx = pytest.importorskip("httpx")
    import json

    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    store, folder = write_world
    secrets = tmp_path_factory.mktemp("auth")
    (secrets / "users.json").write_text(
        json.dumps({"users": {"ada": {"proposals": ["p-1"]}, "bob": {"proposals": ["p-2"]}}})
    )
    keys = ApiKeyStore(secrets / "keys.json")
    config = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(secrets / "users.json")
    )
    url = live_server.mount(store, auth=config, asset_roots=[str(folder)])
    held = stored(store, "b1")
    try:
        writer = {"Authorization": f"Apikey {keys.create('ada', ['read', 'write'])[1]}"}
        with httpx.Client(base_url=url, timeout=30, headers=writer) as http:

            def post(name, doc, ref):
                response = http.post("/api/v1/documents", json=[name, doc])
                assert response.status_code >= 400, response.text
                body = response.json()
                return response.status_code, body["error"], body["message"].replace(ref, "?")

            for what, name, hidden, ref, missing, missing_ref in write_attempts(folder):
                got = post(name, hidden, ref)
                assert got == post(name, missing, missing_ref), what
                assert got[0] < 500 and not any(s in got[2] for s in SECRETS), (what, got)
            response = http.post(
                "/api/v1/documents", json=["start", _run(14, 130, proposal_id=["p-1", "p-2"])[0][1]]
            )
            assert response.status_code == 403 and response.json()["error"] == "WriteDenied"
        reader = {"Authorization": f"Apikey {keys.create('bob', ['read'])[1]}"}
        with httpx.Client(base_url=url, timeout=30, headers=reader) as http:
            listed = {r["uid"] for r in http.get("/api/v1/runs").json()["data"]}
        assert names(listed) == VISIBLE["bob"]
    finally:
        live_server.unmount(url)
    assert stored(store, "b1") == held


def test_events_of_a_descriptor_no_run_holds_are_refused(writable):
    event = {**next(d for n, d in RUNS["a1"] if n == "event"), "descriptor": "no-such-desc"}
    with pytest.raises(InvalidDocument, match="insert the descriptor"):
        GuardedStore(writable, ProposalPolicy(), ADA).insert("event", event)


def test_muxing_sees_only_the_runs_the_guard_shows(store):
    from intake_broker.views.mux import merge_runs

    cat = catalog_for(store, ADA)
    merged = cat.merge(coords=["scan_id"])
    assert names(merged["uid"].values.tolist()) == VISIBLE["ada"]
    aligned = cat[UID["a1"]].align(["primary", "baseline"]).compute()
    assert aligned["temperature"].values.tolist() == [290.0] * 3
    held = catalog_for(store, BOB)[UID["b1"]]  # a run object of bob's ...
    revoked = GuardedStore(store, ProposalPolicy(), ADA)
    held._store = revoked  # ... read with ada's grant: refused on every path
    for call in (
        lambda: merge_runs([held]),
        lambda: held.to_datatree(),
        lambda: BrokerCatalog(revoked)[UID["b1"]],
    ):
        with pytest.raises(KeyError):
            call()


def test_arrow_events_through_the_service_leak_nothing(store, live_server, tmp_path_factory):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("pyarrow")
    import json

    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    secrets = tmp_path_factory.mktemp("auth-arrow")
    (secrets / "users.json").write_text(
        json.dumps({"users": {"ada": {"proposals": ["p-1"]}, "bob": {"proposals": ["p-2"]}}})
    )
    keys = ApiKeyStore(secrets / "keys.json")
    config = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(secrets / "users.json")
    )
    url = live_server.mount(store, auth=config)
    arrow = {"Accept": "application/vnd.apache.arrow.stream"}
    theirs = store.descriptors(UID["b1"])[0]["uid"]
    try:
        ada = {"Authorization": f"Apikey {keys.create('ada', ['read'])[1]}", **arrow}
        bob = {"Authorization": f"Apikey {keys.create('bob', ['read'])[1]}", **arrow}
        with httpx.Client(base_url=url, timeout=30) as http:
            for tail in ("events", "chunks", "run"):  # every path by descriptor uid
                hidden = http.get(f"/api/v1/descriptors/{theirs}/{tail}", headers=ada)
                missing = http.get(f"/api/v1/descriptors/{'0' * 36}/{tail}", headers=ada)
                assert hidden.status_code == missing.status_code == 404, tail
                assert hidden.json()["error"] == missing.json()["error"]
                assert hidden.json()["message"].replace(theirs, "X") == missing.json()[
                    "message"
                ].replace("0" * 36, "X")
                assert UID["b1"] not in hidden.text
            mine = store.descriptors(UID["a1"])[0]["uid"]
            found = http.get(f"/api/v1/descriptors/{mine}/run", headers=ada)
            assert found.json() == {"descriptor": mine, "run": UID["a1"]}
            anonymous = http.get(f"/api/v1/descriptors/{theirs}/events", headers=arrow)
            assert anonymous.status_code == 401
            own = http.get(f"/api/v1/descriptors/{theirs}/events", headers=bob)
            assert own.status_code == 200
            assert own.headers["content-type"] == "application/vnd.apache.arrow.stream"
    finally:
        live_server.unmount(url)


# -- the leak matrix of annotations (private / proposal / public x user / other / admin) -----


@pytest.fixture(params=["memory", "native"], scope="module")
def annotated_world(request, tmp_path_factory):
    """RUNS with annotations ada wrote on her run a1 (private, proposal, public) and bob on
    b1 (private, proposal)."""
    base = filled_store(request.param, tmp_path_factory.mktemp("ann"), request, "ann_matrix")
    for who, name, tags in (
        (ADA, "a1", ("mine", "ours", "everyones")),
        (BOB, "b1", ("bobs", "p2")),
    ):
        run = catalog_for(base, who)[UID[name]]
        for tag, visibility in zip(tags, ("private", "proposal", "public"), strict=False):
            run.tag(tag, visibility=visibility)
        run.annotate(note=f"{who.name} private words", secret=1)
    yield base
    base.close()


ANNOTATION_SEES = {  # which tags each principal finds, by search and on the runs
    "ada": {"mine", "ours", "everyones"},
    "bob": {"bobs", "p2"},
    "sam": set(),  # staff see run b1 but none of its proposal's shared annotations
    "root": {"ours", "everyones", "p2"},
    "eve": set(),
}


@pytest.mark.parametrize("who", [ADA, BOB, STAFF, ADMIN, NOBODY], ids=lambda p: p.name)
def test_annotations_never_leak(annotated_world, who):
    cat = catalog_for(annotated_world, who)
    store = cat.store
    sees = ANNOTATION_SEES[who.name]
    found = set()
    for tag in ("mine", "ours", "everyones", "bobs", "p2"):
        uids = {r.uid for r in store.runs(Annotated(Contains("tags", tag)))}
        if uids:
            found.add(tag)
        assert store.count(Annotated(Contains("tags", tag))) == len(uids)
    assert found == sees
    shown = set()
    for name in VISIBLE[who.name]:
        run = cat[UID[name]]
        shown |= set(run.tags)
        text = repr(run.annotations) + repr(run.annotation_history())
        author = {"a1": "ada", "b1": "bob"}.get(name)
        assert ("private words" in text) == (author == who.name)
    assert shown == sees
    for name in set(RUNS) - VISIBLE[who.name]:  # hidden runs: every path says "missing"
        for call in (store.annotations, store.annotation_history):
            with pytest.raises(RunNotFound):
                call(UID[name])
        with pytest.raises(RunNotFound):
            store.change_annotation(UID[name], {"add_tags": ["x"]})
    private = {r.uid for r in store.runs(Annotated(NoteText("private words")))}
    assert private == {UID[n] for n in ("a1", "b1") if who.name == {"a1": "ada", "b1": "bob"}[n]}


# -- the web page's endpoints through the service ---------------------------------------------


def test_the_web_endpoints_leak_nothing(store, live_server, tmp_path_factory):
    """The table, a run's progress, plot and frame: ada sees her runs and the public one; bob's
    run answers exactly as a missing one, on every path, and a search for its metadata finds
    nothing (nor counts it)."""
    httpx = pytest.importorskip("httpx")
    import json

    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    secrets = tmp_path_factory.mktemp("auth-web")
    (secrets / "users.json").write_text(json.dumps({"users": {"ada": {"proposals": ["p-1"]}}}))
    keys = ApiKeyStore(secrets / "keys.json")
    config = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(secrets / "users.json")
    )
    url = live_server.mount(store, auth=config)
    ada = {"Authorization": f"Apikey {keys.create('ada', ['read'])[1]}"}
    paths = [
        ("/api/v1/web/runs/{uid}/progress", {}),
        ("/api/v1/web/runs/{uid}/plot", {"y": "det"}),
        ("/api/v1/web/runs/{uid}/frame", {"field": "det"}),
        ("/api/v1/web/runs/{uid}/export", {"format": "jsonl"}),
        ("/api/v1/web/runs/{uid}/live", {}),
    ]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            table = http.get("/api/v1/web/runs", headers=ada, params={"limit": 500}).json()
            assert names(r["uid"] for r in table["data"]) == VISIBLE["ada"]
            assert table["count"] == len(VISIBLE["ada"])
            secret = http.get(
                "/api/v1/web/runs", headers=ada, params={"q": 'sample.name == "secret gold"'}
            ).json()
            assert secret == {"data": [], "count": 0, "skip": 0, "limit": 50}
            assert http.get("/api/v1/web/runs").status_code == 401  # no credentials
            for path, params in paths:
                hidden = http.get(path.format(uid=UID["b1"]), headers=ada, params=params)
                missing = http.get(path.format(uid="0" * 36), headers=ada, params=params)
                assert hidden.status_code == missing.status_code == 404, path
                assert hidden.json()["error"] == missing.json()["error"] == "RunNotFound"
                asked = hidden.json()["message"].replace(UID["b1"], "?")  # (echoes the uid asked)
                assert asked == missing.json()["message"].replace("0" * 36, "?")
                assert "gold" not in hidden.text
                assert http.get(path.format(uid=UID["a1"]), params=params).status_code == 401
            own = http.get(f"/api/v1/web/runs/{UID['a1']}/plot", headers=ada, params={"y": "det"})
            assert own.status_code == 200 and own.json()["rows"] == 3
            mine = http.get(
                f"/api/v1/web/runs/{UID['a1']}/export", headers=ada, params={"format": "jsonl"}
            )
            assert mine.status_code == 200 and UID["a1"].encode() in mine.content
            assert UID["b1"].encode() not in mine.content
            me = http.get("/api/v1/web/me", headers=ada).json()
            assert me["user"] == "ada" and me["scopes"] == ["read"] and me["auth"] is True
            assert http.get("/api/v1/web/me").status_code == 401
            # how to log in: public, and nothing about any run or user
            for headers in ({}, ada):
                options = http.get("/api/v1/web/login-options", headers=headers)
                assert options.status_code == 200, headers
                assert options.json() == {
                    "auth": True,
                    "api_key": True,
                    "bearer": False,
                    "oidc": None,
                }
            # the page annotates through the store API: a read-only key may not
            change = {"visibility": "public", "add_tags": ["x"]}
            refused = http.post(f"/api/v1/runs/{UID['a1']}/annotations", headers=ada, json=change)
            assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    finally:
        live_server.unmount(url)


def test_the_guard_remembers_a_bounded_number_of_descriptors(monkeypatch):
    from intake_broker.access import guard as guard_module

    monkeypatch.setattr(guard_module, "_KNOWN_DESCRIPTORS", 2)
    base = filled_store("memory", None, None, None)
    guarded = GuardedStore(base, ProposalPolicy(), ADMIN)
    listed = [d["uid"] for name in ("a1", "a2", "b1") for d in guarded.descriptors(UID[name])]
    assert len(guarded._descriptors) == 2 < len(listed)
    for uid in listed:  # what was forgotten is asked of the store again
        assert guarded.descriptor_run(uid) in {UID["a1"], UID["a2"], UID["b1"]}
        assert len(guarded._descriptors) <= 2
