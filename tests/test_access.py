"""The leak matrix: a user of proposal A tries every path for runs of proposal B, on every store
(memory, files, native and MongoDB on SecantusDB)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.abilities import flush
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.assets import AssetReader
from intake_broker.errors import InvalidDocument, RunNotFound, WriteDenied
from intake_broker.queries import (
    Comparison,
    Contains,
    Eq,
    FullText,
    Fuzzy,
    In,
    KeyPresent,
    Not,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
)
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
    for call in (lambda: guarded.read_events(descriptor), lambda: guarded.event_chunks(descriptor)):
        with pytest.raises(KeyError, match="not part of any run") as info:
            call()
        assert other not in str(info.value)  # the descriptor's run is not named


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


def test_users_cannot_write_into_runs_of_others(writable):
    guarded = GuardedStore(writable, ProposalPolicy(), ADA)
    held = {name: stored(writable, name) for name in ("b1", "public")}
    for name, error in (("b1", RunNotFound), ("public", WriteDenied)):
        uid = UID[name]
        ((_, descriptor),) = [
            (n, d) for n, d in RUNS[name] if n == "descriptor" and d["name"] == "primary"
        ]
        sneaky = {**descriptor, "uid": f"{uid[:8]}-sneaky", "name": "sneaky"}
        event = next(d for n, d in RUNS[name] if n == "event")
        extra = {**event, "uid": f"{uid[:8]}-extra", "seq_num": 99}
        resource = {
            "spec": "NPY_SEQ",
            "root": "/",
            "resource_path": "x",
            "resource_kwargs": {},
            "path_semantics": "posix",
            "uid": f"{uid[:8]}-res",
            "run_start": uid,
        }
        for doc_name, doc in (("descriptor", sneaky), ("event", extra), ("resource", resource)):
            with pytest.raises(error) as info:
                guarded.insert(doc_name, doc)
            if error is RunNotFound:  # looks exactly like a missing run
                assert str(info.value) == f"no run with uid {uid!r} in this catalog"
            else:
                assert "may read run" in str(info.value) and "not write" in str(info.value)
    assert {name: stored(writable, name) for name in held} == held


def test_events_of_a_descriptor_no_run_holds_are_refused(writable):
    event = {**next(d for n, d in RUNS["a1"] if n == "event"), "descriptor": "no-such-desc"}
    with pytest.raises(InvalidDocument, match="insert the descriptor"):
        GuardedStore(writable, ProposalPolicy(), ADA).insert("event", event)
