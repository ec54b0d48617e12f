"""Derived runs, their provenance and lineage, and pipelines over real RunEngine runs.

The inputs are the runs a RunEngine recorded (``intake_broker.testing.recorded``); the steps are
``intake_broker.testing.pipelines`` (reduce ``det``, then fit its peak), importable by dask
workers. ``reduce_det`` fails on the recorded ``grid_scan`` (it has ``det4``, not ``det``).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.errors import BadQuery
from intake_broker.federation import FederatedStore
from intake_broker.provenance import Pipeline, ProvenanceError, derived, lineage
from intake_broker.provenance.record import provenance_key
from intake_broker.provenance.shipping import cached_stores
from intake_broker.testing import insert_all
from intake_broker.testing.pipelines import fit_peaks, reduce_and_fit, reduce_det
from intake_broker.testing.recorded import recorded_runs

ADA = Principal("ada", proposals=("p-A",))
BOB = Principal("bob", proposals=("p-A", "p-B"))


@pytest.fixture(scope="module")
def recorded():
    pytest.importorskip("bluesky")
    return recorded_runs()


def labelled(docs, proposal):
    """The recorded documents of a run with its start naming ``proposal``."""
    docs = copy.deepcopy(docs)
    for name, doc in docs:
        if name == "start":
            doc["proposal_id"] = proposal
    return docs


@pytest.fixture
def raw(recorded):
    """A store holding the recorded scan, count (inputs of reduce_det) and grid_scan (fails)."""
    store = MemoryStore()
    for label in ("scan", "count", "grid_scan"):
        insert_all(store, recorded[label])
    return store


def uid_of(recorded, label):
    return recorded[label][0][1]["uid"]


def make_store(kind, tmp_path, request=None):
    if kind == "memory":
        return MemoryStore()
    if kind == "mongo":
        server = request.getfixturevalue("mongo_server")  # SecantusDB; skips when missing
        from intake_broker_mongo import MongoStore

        name = tmp_path.name[-20:].replace("[", "-").replace("]", "")
        return MongoStore(f"{server.uri}/prov-{name}", f"{server.uri}/prov-assets-{name}")
    if kind == "jsonl":
        pytest.importorskip("intake_broker_files")
        from intake_broker.catalogs.config import folder_store

        return folder_store("jsonl", tmp_path / "results")
    native = pytest.importorskip("intake_broker_native")
    return native.NativeStore.in_folder(tmp_path / "results")


def fits(catalog, report):
    """The fit results of a report's outputs, by the uid of the raw run they came from."""
    out = {}
    for uid in report.outputs:
        run = catalog[uid]
        raw_uid = run.provenance.inputs[0].start["derived_from"][0]
        ds = run.primary.read()
        out[raw_uid] = {k: ds[k].values.tolist() for k in ds.data_vars}
    return out


# -- derived runs and what they record ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "native", "mongo", "jsonl"])
def test_a_derived_run_records_its_provenance_and_is_searchable(
    kind, raw, recorded, tmp_path, request
):
    dest = make_store(kind, tmp_path, request)
    scan = uid_of(recorded, "scan")
    report = reduce_det.run(BrokerCatalog(raw)[scan], dest, parameters={"scale": 2.0})
    assert len(report.written) == 1 and not report.failed
    results = BrokerCatalog(dest)
    run = results[report.written[0]]
    start = run.start
    assert start["derived_from"] == [scan]
    assert start["derived_name"] == "reduce_det-v1/1"
    prov = start["provenance"]
    assert prov["code"]["name"] == "reduce_det" and prov["code"]["version"] == "1"
    assert prov["code"]["qualname"] == "reduce_det"
    assert len(prov["code"]["source_sha256"]) == 64
    assert prov["parameters"] == {"scale": 2.0}
    assert prov["inputs"] == [
        {
            "uid": scan,
            "scan_id": 1,
            "streams": ["primary"],
            "fields": ["det"],
            "event_ranges": {"primary": [1, 5]},
        }
    ]
    assert prov["times"]["started"] <= prov["times"]["finished"]
    assert "numpy" in prov["code"]["packages"]
    det = BrokerCatalog(raw)[scan].primary.read()["det"].values
    np.testing.assert_allclose(run.primary.read()["det"].values, det * 2.0)
    assert run.stop["exit_status"] == "success"

    # the searches, in the query language, answered by this store
    assert list(results.search(f'derived_from contains "{scan}"')) == [run.uid]
    assert list(results.search(f'derived_from contains "{uid_of(recorded, "count")}"')) == []
    assert list(results.search('provenance.code.name == "reduce_det"')) == [run.uid]
    assert list(results.search('provenance.code.name == "fit_peaks"')) == []
    fitted = fit_peaks.run(run, dest)
    assert list(results.search('provenance.code.name == "fit_peaks"')) == fitted.written
    assert list(run.derived) == fitted.written
    assert results[fitted.written[0]].start["derived_name"] == "fit_peaks-v1/reduce_det-v1/1"


def test_the_idempotency_key_holds_the_source_hash_and_version(raw, recorded):
    run = BrokerCatalog(raw)[uid_of(recorded, "scan")]

    def first(ds):
        return {"x": ds["det"].values}

    def second(ds):
        return {"x": ds["det"].values * 2}

    a = derived(name="same", version="1", stream="primary")(first)
    b = derived(name="same", version="1", stream="primary")(second)
    c = derived(name="same", version="2", stream="primary")(first)
    keys = {step.key({}, [run]) for step in (a, b, c)}
    assert len(keys) == 3
    assert a.key({}, [run]) == derived(name="same", version="1", stream="primary")(first).key(
        {}, [run]
    )
    assert a.key({"p": 1}, [run]) != a.key({}, [run])
    assert provenance_key(a.code, {}, [run.uid]) == a.key({}, [run])
    dest = MemoryStore()
    a.run(run, dest)
    assert b.run(run, dest).written  # edited source: computed again
    assert not a.run(run, dest).written


def test_bad_parameters_and_naming_schemes_are_refused_clearly(raw):
    with pytest.raises(ProvenanceError, match="JSON values"):
        reduce_det.run(BrokerCatalog(raw), MemoryStore(), parameters={"scale": object()})
    with pytest.raises(ProvenanceError, match="indexing and _names are not allowed"):
        derived(name="x", naming="{input.__class__}")(lambda run: {"x": 1})
    with pytest.raises(ProvenanceError, match="1 to 200 characters"):
        derived(name="")(lambda run: {"x": 1})
    with pytest.raises(ProvenanceError, match="pipeline inputs are runs"):
        reduce_det.run(["not a run"], MemoryStore())


# -- pipelines ----------------------------------------------------------------------------------


def test_a_failing_input_is_recorded_and_the_rest_stored(raw, recorded):
    dest = MemoryStore()
    reports = reduce_and_fit.run(BrokerCatalog(raw), dest, progress=False)
    reduce, fit = reports
    grid = uid_of(recorded, "grid_scan")
    assert [f.inputs for f in reduce.failed] == [[grid]]
    assert reduce.failed[0].reason.startswith("FieldNotFound: stream 'primary' has no data keys")
    assert len(reduce.written) == 2 and len(fit.written) == 2 and fit.ok
    failed = BrokerCatalog(dest)[reduce.failed[0].recorded]
    assert failed.stop["exit_status"] == "fail" and "det" in failed.stop["reason"]
    assert failed.start["derived_from"] == [grid]
    assert list(failed) == []  # no streams: nothing was computed


def test_re_running_a_pipeline_skips_everything_computed(raw, recorded):
    dest = MemoryStore()
    source = BrokerCatalog(raw).search('plan_name != "grid_scan"')
    first = reduce_and_fit.run(source, dest, progress=False)
    count = len(BrokerCatalog(dest))
    again = reduce_and_fit.run(source, dest, progress=False)
    assert [r.written for r in again] == [[], []]
    assert [sorted(r.skipped) for r in again] == [sorted(r.written) for r in first]
    assert [r.outputs for r in again] == [r.outputs for r in first]
    assert len(BrokerCatalog(dest)) == count
    # other parameters are another computation
    other = reduce_and_fit.run(source, dest, parameters={"reduce_det": {"scale": 3.0}})
    assert len(other[0].written) == 2


def test_progress_is_shown_when_asked(raw, capsys):
    reduce_det.run(BrokerCatalog(raw).search('plan_name == "scan"'), MemoryStore(), progress=True)
    assert "reduce_det" in capsys.readouterr().err


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_a_pipeline_on_two_dask_worker_processes_equals_the_serial_run(raw, tmp_path, dask_client):
    serial_dest, dask_dest = MemoryStore(), make_store("native", tmp_path)
    source = BrokerCatalog(raw)
    serial = reduce_and_fit.run(source, serial_dest, progress=False)
    shipped = reduce_and_fit.run(source, dask_dest, client=dask_client, progress=False)
    assert [len(r.written) for r in shipped] == [len(r.written) for r in serial] == [2, 2]
    assert [f.inputs for f in shipped[0].failed] == [f.inputs for f in serial[0].failed]
    a = fits(BrokerCatalog(serial_dest), serial[1])
    b = fits(BrokerCatalog(dask_dest), shipped[1])
    assert a == b and len(a) == 2
    again = reduce_and_fit.run(source, dask_dest, client=dask_client, progress=False)
    assert [r.written for r in again] == [[], []]
    # the runs travelled by reference: the workers opened their stores (once each)
    opened = dask_client.run(cached_stores)
    assert len(opened) == 2 and sum(opened.values()) >= 1


# -- lineage -------------------------------------------------------------------------------------


def test_lineage_across_a_federation_and_as_w3c_prov(raw, recorded):
    results = MemoryStore()
    reduce, fit = reduce_and_fit.run(BrokerCatalog(raw), results, progress=False)
    federation = BrokerCatalog(FederatedStore({"raw": raw, "results": results}, timeout=5))
    fitted = federation[fit.written[0]]
    graph = fitted.provenance
    assert len(graph) == 3 and not graph.withheld and not graph.truncated
    reduced = graph.inputs[0]
    assert reduced.code["name"] == "reduce_det"
    (raw_node,) = [graph[i] for i in reduced.inputs]
    assert raw_node.start["plan_name"] in ("scan", "count") and not raw_node.derived
    assert reduced.reads[raw_node.id]["fields"] == ["det"]
    assert list(federation[raw_node.uid].derived) == [reduced.uid]

    # from the results store alone the raw input is not found: withheld, unless looked up
    alone = BrokerCatalog(results)[fitted.uid]
    assert [n.uid for n in alone.provenance.withheld] == [None]
    assert len(alone.lineage(within=federation)) == 3
    assert len(alone.lineage(within=[BrokerCatalog(results), raw])) == 3
    assert len(lineage(alone, federation.store, max_depth=1)) == 2

    doc = graph.to_prov()
    assert set(doc["entity"]) == {f"run:{n.uid}" for n in graph.nodes.values()}
    assert len(doc["activity"]) == 2 and len(doc["wasDerivedFrom"]) == 2
    assert len(doc["used"]) == 2 and len(doc["wasGeneratedBy"]) == 2
    assert {a["prov:type"] for a in doc["agent"].values()} == {"prov:SoftwareAgent"}
    json.dumps(doc)  # plain JSON
    assert "withheld" in alone.provenance.text()


# -- access control ------------------------------------------------------------------------------


@pytest.fixture
def proposals(recorded):
    """scan and grid_scan in proposal p-A, count in p-B."""
    store = MemoryStore()
    for label, proposal in (("scan", "p-A"), ("count", "p-B"), ("grid_scan", "p-A")):
        insert_all(store, labelled(recorded[label], proposal))
    return store


def as_user(store, who):
    return GuardedStore(store, ProposalPolicy(), who)


def test_a_pipeline_as_a_user_reads_their_runs_and_writes_into_their_proposal(proposals, recorded):
    results = MemoryStore()
    reports = reduce_and_fit.run(
        BrokerCatalog(as_user(proposals, ADA)), as_user(results, ADA), progress=False
    )
    assert [len(r.written) for r in reports] == [1, 1]  # scan (grid_scan fails), not count
    for run in BrokerCatalog(results).values():
        assert run.start["proposal_id"] == "p-A"
        assert uid_of(recorded, "count") not in json.dumps(run.start)
    # writing into a proposal that is not theirs fails that input, recorded in the report
    refused = reduce_det.run(
        BrokerCatalog(as_user(proposals, ADA)).search('plan_name == "scan"'),
        as_user(results, ADA),
        metadata={"proposal_id": "p-B"},
        rerun=True,
    )
    assert not refused.written and "may not start this run" in refused.failed[0].reason


def test_lineage_never_reveals_an_input_the_reader_may_not_see(proposals, recorded):
    results = MemoryStore()
    count = uid_of(recorded, "count")
    scan = uid_of(recorded, "scan")
    # bob (p-A and p-B) derives from count (p-B) into p-A, and from scan
    bob_reads = BrokerCatalog(as_user(proposals, BOB))
    report = reduce_and_fit.run(
        [bob_reads[count], bob_reads[scan]],
        as_user(results, BOB),
        parameters={"reduce_det": {"scale": 1.0}},
        metadata={"proposal_id": "p-A"},
    )
    from_count, from_scan = report[0].written
    everything = FederatedStore({"raw": proposals, "results": results}, timeout=5)
    ada = BrokerCatalog(as_user(everything, ADA))

    run = ada[from_count]
    assert run.start["derived_from"] == [None]
    assert run.start["provenance"]["inputs"] == [{"withheld": True}]
    assert count not in json.dumps(run.start)
    assert count not in json.dumps(dict(run.documents()))
    graph = run.provenance
    assert [(n.uid, n.start) for n in graph.withheld] == [(None, None)]
    assert count not in json.dumps(graph.to_prov()) + json.dumps(graph.to_dict())
    fitted = ada[run.derived.keys().__iter__().__next__()].provenance
    assert len(fitted) == 3 and len(fitted.withheld) == 1

    # bob sees the same run whole
    assert BrokerCatalog(as_user(everything, BOB))[from_count].start["derived_from"] == [count]
    assert not BrokerCatalog(as_user(everything, BOB))[from_count].provenance.withheld

    # a visible input's lineage is whole, and searches on visible uids work
    assert ada[from_scan].start["derived_from"] == [scan]
    assert list(ada.search(f'derived_from contains "{scan}"')) == [from_scan]
    # searches cannot probe hidden inputs: the same refusal for hidden and missing uids
    for query in (
        f'derived_from contains "{count}"',
        'derived_from contains "0000-no-such-run"',
        'derived_from ~ "^a"',
        f'provenance.inputs.uid == "{scan}"',
    ):
        with pytest.raises(BadQuery, match="runs derived from runs you can see"):
            len(ada.search(query))


def test_a_pipeline_step_must_be_declared():
    with pytest.raises(ProvenanceError, match="@derived"):
        Pipeline(lambda run: run)


# -- live mode -----------------------------------------------------------------------------------


def test_live_mode_computes_a_run_a_run_engine_writes_during_the_test(raw, recorded):
    import queue
    import threading

    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, motor

    source, results = BrokerCatalog(raw), MemoryStore()
    stop, reports = threading.Event(), queue.Queue()
    watcher = threading.Thread(
        target=reduce_and_fit.watch,
        args=(source, results),
        kwargs={"poll_interval": 0.05, "stop": stop, "on_report": reports.put},
        daemon=True,
    )
    watcher.start()
    try:
        RE = RunEngine({}, call_returns_result=False)
        (uid,) = RE(bp.scan([det], motor, -1, 1, 3), source.insert)
        reduced = reports.get(timeout=60)
    finally:
        stop.set()
        watcher.join(timeout=60)
    assert not watcher.is_alive()
    assert [r.name for r in reduced] == ["reduce_det", "fit_peaks"]
    assert [len(r.written) for r in reduced] == [1, 1]  # only the new run, not those before
    assert BrokerCatalog(results)[reduced[0].written[0]].start["derived_from"] == [uid]


def test_a_users_pipeline_on_dask_workers_reads_through_their_guard(
    proposals, recorded, dask_client
):
    results = MemoryStore()
    reports = reduce_and_fit.run(
        BrokerCatalog(as_user(proposals, ADA)),
        as_user(results, ADA),
        client=dask_client,
        progress=False,
    )
    assert [len(r.written) for r in reports] == [1, 1]
    assert {r.start["proposal_id"] for r in BrokerCatalog(results).values()} == {"p-A"}
    # a ticket naming another proposal's run is refused on the worker by the shipped guard
    from intake_broker.provenance.pipeline import _compute_remote
    from intake_broker.provenance.shipping import RunTicket

    bob_count = BrokerCatalog(as_user(proposals, BOB))[uid_of(recorded, "count")]
    ticket, _ = RunTicket.of(bob_count, {})
    guarded = as_user(proposals, ADA)
    _, ada_store = RunTicket.of(BrokerCatalog(guarded)[-1], {})
    forged = RunTicket(ada_store.token, ticket.start, ticket.stop, {})
    outcome = dask_client.submit(
        _compute_remote, reduce_det, [forged], {ada_store.token: ada_store}, {}, pure=False
    ).result()
    assert outcome.data is None and outcome.error.startswith("RunNotFound")
