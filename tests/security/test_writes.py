"""Issue 14, items 4 and 5: cross-proposal writes, and leaks through write errors, as reported
against ``serve --auth`` (exact repros over HTTP; the store-by-store matrix is in
``tests/test_access.py``)."""

from __future__ import annotations

import json

import pytest

from intake_broker import MemoryStore
from intake_broker.access import ProposalPolicy
from intake_broker.testing import factories, insert_all

httpx = pytest.importorskip("httpx")
testing = pytest.importorskip("intake_broker_server.testing")
from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider  # noqa: E402


@pytest.fixture
def service(tmp_path):
    """A served memory store holding bob's run (p-B, with a resource and a datum); ada's
    read-write client, bob's reader, and bob's run's documents."""
    store = MemoryStore()
    theirs = factories.scalar_run(n=3, proposal_id="p-B", plan_name="secret_plan", scan_id=77)
    run_uid = theirs[0][1]["uid"]
    resource = {
        "spec": "AD_HDF5",
        "root": str(tmp_path),
        "resource_path": "b.h5",
        "resource_kwargs": {},
        "path_semantics": "posix",
        "uid": "bob-res",
        "run_start": run_uid,
    }
    insert_all(store, [*theirs[:-1], ("resource", resource)])
    store.insert("datum", {"datum_id": "bob-res/0", "resource": "bob-res", "datum_kwargs": {}})
    store.insert(*theirs[-1])
    (tmp_path / "users.json").write_text(
        json.dumps({"users": {"ada": {"proposals": ["p-A"]}, "bob": {"proposals": ["p-B"]}}})
    )
    keys = ApiKeyStore(tmp_path / "keys.json")
    auth = AuthConfig(
        policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(tmp_path / "users.json")
    )
    with testing.LiveServer() as server:
        url = server.mount(store, auth=auth, asset_roots=[str(tmp_path)])
        ada = {"Authorization": f"Apikey {keys.create('ada', ['read', 'write'])[1]}"}
        bob = {"Authorization": f"Apikey {keys.create('bob', ['read'])[1]}"}
        with (
            httpx.Client(base_url=url, timeout=30, headers=ada) as writer,
            httpx.Client(base_url=url, timeout=30, headers=bob) as reader,
        ):
            yield store, writer, reader, theirs


def post(http, name, doc):
    return http.post("/api/v1/documents", json=[name, doc])


def bobs_listing(reader):
    return sorted(r["uid"] for r in reader.get("/api/v1/runs").json()["data"])


def test_a_start_naming_two_proposals_needs_both(service):
    store, writer, reader, _ = service
    before = bobs_listing(reader)
    both = factories.scalar_run(n=1, proposal_id=["p-A", "p-B"])[0][1]
    response = post(writer, "start", both)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "WriteDenied"
    assert "holds every one of them" in response.json()["message"]
    assert bobs_listing(reader) == before
    ours = factories.scalar_run(n=1, proposal_id=["p-A"])[0][1]
    assert post(writer, "start", ours).status_code == 200


def test_a_datum_for_another_proposals_resource_is_refused(service):
    store, writer, _, theirs = service
    held = list(store.documents(theirs[0][1]["uid"]))
    datum = {"datum_id": "sneaky/1", "resource": "bob-res", "datum_kwargs": {}}
    response = post(writer, "datum", datum)
    missing = post(writer, "datum", {**datum, "resource": "no-such-res"})
    assert response.status_code == missing.status_code == 422, response.text
    assert response.json()["message"].replace("bob-res", "?") == missing.json()["message"].replace(
        "no-such-res", "?"
    )
    assert list(store.documents(theirs[0][1]["uid"])) == held


def test_an_event_naming_their_descriptor_does_not_name_their_run(service):
    _, writer, _, theirs = service
    run_uid = theirs[0][1]["uid"]
    descriptor = next(d for n, d in theirs if n == "descriptor" and d["name"] == "primary")
    event = next(d for n, d in theirs if n == "event" and d["descriptor"] == descriptor["uid"])
    event = {**event, "uid": "sneaky-event", "seq_num": 50}
    response = post(writer, "event", event)
    missing = post(writer, "event", {**event, "descriptor": "no-such-descriptor"})
    assert response.status_code == missing.status_code, response.text
    assert response.status_code == 422
    assert run_uid not in response.text
    assert response.json()["message"].replace(descriptor["uid"], "?") == missing.json()[
        "message"
    ].replace("no-such-descriptor", "?")


def test_reposting_their_start_does_not_describe_it(service):
    _, writer, _, theirs = service
    start = {**theirs[0][1], "proposal_id": "p-A", "plan_name": "mine"}
    response = post(writer, "start", start)
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    for secret in (
        "plan_name",
        "scan_id",
        "secret_plan",
        "proposal_id",
        "p-B",
        "differs from the stored document in",
    ):
        assert secret not in message, message
    assert "give the new document its own uid" in message
    exact = post(writer, "start", theirs[0][1])  # their start, exactly: not ada's to write
    assert exact.status_code == 403 and exact.json()["error"] == "WriteDenied"
