"""A multi-process deployment, as docs/how-to/deployment.md lays it out: the run index on
PostgreSQL, event columns on S3 (moto), the service with two worker processes over them, a
remote client, and a dask.distributed cluster of two worker processes running a pipeline
(reduce, then fit) through the remote catalog, the results written back through the service.

Every request goes on a fresh connection (``Connection: close``), so the kernel hands each to
either server worker: a run's documents are written through both, and its events read from
both. The workers count what they answered (the test-only factory of
``intake_broker_server.testing``)."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.testing import insert_all
from intake_broker.testing.pipelines import reduce_and_fit

distributed = pytest.importorskip("distributed")
native = pytest.importorskip("intake_broker_native")
remote = pytest.importorskip("intake_broker_remote")
server_testing = pytest.importorskip("intake_broker_server.testing")

FRESH = {"Connection": "close"}  # a new connection per request: any worker may answer it


def fits(catalog, report):
    """The fit results of a pipeline's last report, by the uid of the raw run they came from."""
    out = {}
    for uid in report.outputs:
        run = catalog[uid]
        raw_uid = run.provenance.inputs[0].start["derived_from"][0]
        ds = run.primary.read()
        out[raw_uid] = {k: ds[k].values.tolist() for k in ds.data_vars}
    return out


@pytest.fixture(scope="module")
def deployment(postgres_server, s3_server, bluesky_runs, tmp_path_factory):
    from .conftest import new_postgres_index

    index = new_postgres_index(postgres_server)
    data = f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}"
    options = s3_server["storage_options"]
    acquisition = native.NativeStore(index, data, storage_options=options)  # the beamline
    for docs in bluesky_runs.values():
        insert_all(acquisition, docs)
    acquisition.close()
    folder = tmp_path_factory.mktemp("deployment")
    catalog = folder / "facility.yml"
    endpoint = options["client_kwargs"]["endpoint_url"]
    catalog.write_text(
        textwrap.dedent(f"""
        sources:
          facility:
            driver: bluesky-native-catalog
            args:
              index: "{index}"
              data: "{data}"
              storage_options:
                key: testing
                secret: testing
                client_kwargs: {{endpoint_url: "{endpoint}"}}
    """)
    )
    with server_testing.serve_workers(str(catalog), entry="facility", workers=2) as url:
        yield {"url": url, "index": index, "data": data, "options": options}


@pytest.fixture(scope="module")
def cluster_client():
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_a_pipeline_on_a_dask_cluster_through_two_server_workers(
    deployment, cluster_client, bluesky_runs
):
    url = deployment["url"]
    facility = remote.RemoteCatalog(url, headers=FRESH)
    raw = facility.search({"derived_from": {"$exists": False}})
    assert len(raw) == len(bluesky_runs)
    assert facility.search({"derived_from": {"$exists": True}}).__len__() == 0
    dest = remote.RemoteStore(url, headers=FRESH)
    shipped = reduce_and_fit.run(raw, dest, client=cluster_client, progress=False)

    # the same computation in this process, from the raw documents, into memory
    serial_dest, reference = MemoryStore(), MemoryStore()
    for docs in bluesky_runs.values():
        insert_all(reference, docs)
    serial = reduce_and_fit.run(BrokerCatalog(reference), serial_dest, progress=False)
    # reduce: the runs with a det field (the others recorded as failures); fit: each reduced
    assert [len(r.written) for r in shipped] == [len(r.written) for r in serial] == [2, 2]
    assert sorted(f.inputs for f in shipped[0].failed) == sorted(f.inputs for f in serial[0].failed)
    assert len(shipped[0].failed) == len(bluesky_runs) - 2 and not shipped[1].failed
    expected = fits(BrokerCatalog(serial_dest), serial[1])
    assert fits(facility, shipped[1]) == expected and len(expected) == 2

    # the results are in PostgreSQL + S3 with their provenance, as any process opens them
    stored = native.NativeStore(
        deployment["index"], deployment["data"], storage_options=deployment["options"]
    )
    try:
        stored_catalog = BrokerCatalog(stored)
        for uid in shipped[1].outputs:
            run = stored_catalog[uid]
            assert run.metadata["start"]["provenance"]["code"]["name"] == "fit_peaks"
            assert run.stop["exit_status"] == "success"
            assert run.primary.read()["peak_index"].shape == (1,)
        for raw_uid in expected:
            derived = stored_catalog.search(f'derived_from contains "{raw_uid}"')
            assert len(derived) == 1  # the reduced run (the fit derives from that)
        # each failed input recorded as a failed derived run
        for failure in shipped[0].failed:
            assert stored_catalog[failure.recorded].stop["exit_status"] == "fail"
    finally:
        stored.close()

    # run again: everything is skipped, through the provenance records the service returns
    again = reduce_and_fit.run(raw, dest, client=cluster_client, progress=False)
    assert [r.written for r in again] == [[], []]

    # both server workers answered reads and writes, and no request failed
    answers = server_testing.worker_answers(url)
    assert len(answers) == 2, answers
    for pid, answered in answers.items():
        assert not [k for k in answered if k.split()[-1].startswith("5")], (pid, answered)
        assert sum(answered.values()) > 0, (pid, answered)
    # which worker takes a connection is the kernel's choice: a given kind of request may all
    # land on one of them, so the kinds are counted over both (every one of them a 200 above)
    both = list(answers.values())
    assert sum(a.get("GET descriptors/events 200", 0) for a in both) > 0, answers
    assert sum(a.get("POST documents 200", 0) for a in both) > 0, answers
