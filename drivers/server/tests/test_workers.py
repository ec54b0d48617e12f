"""Stateless serving: ``serve(CATALOG.yml, workers=2)`` in a subprocess, two uvicorn workers
over one folder of msgpack files; every answer is the same whichever worker gives it, and a
run added to the folder is seen by all of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from intake_broker.testing import factories
from intake_broker_server.testing import free_port

files = pytest.importorskip("intake_broker_files")


def write_runs(folder, runs):
    store = files.MsgpackStore.in_folder(str(folder))
    for docs in runs:
        for name, doc in docs:
            store.insert(name, doc)
    store.close()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    write_runs(folder, factories.many_runs(4))
    catalog = folder / "catalog.yml"
    catalog.write_text(
        textwrap.dedent(f"""
        sources:
          beamline:
            driver: bluesky-msgpack-catalog
            args:
              paths: ["{folder}/*.msgpack"]
              refresh_interval: 0.2
    """)
    )
    port = free_port()
    code = (
        "from intake_broker_server import serve; "
        f"serve({str(catalog)!r}, port={port}, workers=2, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the server with two workers did not start")
        time.sleep(0.1)
    yield url, folder
    process.terminate()
    process.wait(timeout=20)


def test_every_worker_gives_the_same_answers(two_workers):
    url, _ = two_workers
    with httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0)) as http:

        def listing(_):
            return [r["uid"] for r in http.get("/api/v1/runs").json()["data"]]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(listing, range(40)))
    assert len(answers[0]) == 4 and all(a == answers[0] for a in answers)


def test_a_new_run_is_seen_by_every_worker(two_workers):
    from intake_broker_remote import RemoteCatalog

    url, folder = two_workers
    docs = factories.scalar_run(n=3, scan_id=77, time=1_700_000_000)
    write_runs(folder, [docs])
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        while True:  # each worker re-globs the folder at its own pace
            counts = {http.get("/api/v1/runs/count").json()["count"] for _ in range(10)}
            if counts == {5} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert counts == {5}
    catalog = RemoteCatalog(url)
    assert catalog[77].primary.read()["det"].shape == (3,)


# -- any worker answers any request: event reads by descriptor uid, guarded -------------------


@pytest.fixture(scope="module")
def guarded_workers(tmp_path_factory):
    """Two workers with auth over a federation of two msgpack folders: runs of proposals
    p-A and p-B in each; ada holds p-A."""
    from intake_broker_server.auth import ApiKeyStore
    from intake_broker_server.testing import serve_workers

    root = tmp_path_factory.mktemp("guarded")
    runs = {"A": [], "B": []}
    for member in ("one", "two"):
        folder = root / member
        folder.mkdir()
        batch = []
        for number in range(6):
            proposal = "p-A" if number % 2 == 0 else "p-B"
            docs = factories.scalar_run(
                n=5, time=1_700_000_000.0 + 10 * number, proposal_id=proposal, sample="secret"
            )
            batch.append(docs)
            descriptor = next(d for n, d in docs if n == "descriptor")["uid"]
            runs[proposal[-1]].append((docs[0][1]["uid"], descriptor))
        write_runs(folder, batch)
    (root / "catalog.yml").write_text(
        textwrap.dedent(f"""
        sources:
          one:
            driver: bluesky-msgpack-catalog
            args: {{paths: ["{root}/one/*.msgpack"]}}
          two:
            driver: bluesky-msgpack-catalog
            args: {{paths: ["{root}/two/*.msgpack"]}}
          both:
            driver: bluesky-federation-catalog
            args: {{members: {{one: "catalog.yml#one", two: "catalog.yml#two"}}}}
    """)
    )
    (root / "users.yml").write_text("users:\n  ada: {proposals: [p-A]}\n")
    _, key = ApiKeyStore(root / "keys.json").create("ada")
    (root / "auth.yml").write_text("users: users.yml\napi_keys: keys.json\n")
    with serve_workers(
        str(root / "catalog.yml"),
        entry="both",
        auth=str(root / "auth.yml"),
    ) as url:
        yield url, key, runs


def fresh(url: str, key: str) -> httpx.Client:
    """A client opening a new connection per request (so the kernel picks a worker each time)."""
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Apikey {key}"},
        limits=httpx.Limits(max_keepalive_connections=0),
        timeout=30,
    )


def test_any_worker_reads_events_of_a_run_it_never_listed(guarded_workers):
    from intake_broker_server.testing import WORKER_HEADER

    url, key, runs = guarded_workers
    paths = [
        path
        for run_uid, descriptor in runs["A"]
        for path in (
            f"/api/v1/descriptors/{descriptor}/events?fields=det",
            f"/api/v1/descriptors/{descriptor}/chunks",
            f"/api/v1/descriptors/{descriptor}/run",
        )
    ]
    answered: dict[str, int] = {}
    statuses = []
    deadline = time.monotonic() + 30
    with fresh(url, key) as http:

        def read(path):
            response = http.get(path)
            return path, response.status_code, response.headers.get(WORKER_HEADER), response

        while len(answered) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(4) as pool:  # no descriptor listed first, on any worker
                for path, status, pid, response in pool.map(read, paths):
                    statuses.append((path, status))
                    answered[pid] = answered.get(pid, 0) + 1
                    if path.endswith("/run"):
                        run_uid = dict(runs["A"])
                        assert response.json()["run"] in run_uid
    assert len(answered) == 2, answered  # both workers answered
    assert {status for _, status in statuses} == {200}, [s for s in statuses if s[1] != 200]


def test_a_hidden_runs_descriptor_is_404_like_a_missing_one_on_every_worker(guarded_workers):
    from intake_broker_server.testing import WORKER_HEADER

    url, key, runs = guarded_workers
    missing = "0" * 36
    answered = set()
    with fresh(url, key) as http:
        for _, descriptor in runs["B"] * 3:
            for tail in ("events", "chunks", "run"):
                hidden = http.get(f"/api/v1/descriptors/{descriptor}/{tail}")
                absent = http.get(f"/api/v1/descriptors/{missing}/{tail}")
                answered |= {hidden.headers[WORKER_HEADER], absent.headers[WORKER_HEADER]}
                assert hidden.status_code == absent.status_code == 404, hidden.text
                assert hidden.json()["error"] == absent.json()["error"]
                assert hidden.json()["message"].replace(descriptor, "X") == absent.json()[
                    "message"
                ].replace(missing, "X")
                assert "secret" not in hidden.text
    assert answered  # (which workers answered depends on the kernel: both, usually)


def test_the_remote_store_asks_the_server_for_a_descriptors_run(guarded_workers):
    from intake_broker.errors import DescriptorNotFound
    from intake_broker.store.abilities import DescriptorIndex
    from intake_broker_remote import RemoteStore

    url, key, runs = guarded_workers
    store = RemoteStore(url, api_key=key)
    assert store.supports(DescriptorIndex)
    for run_uid, descriptor in runs["A"]:
        assert store.descriptor_run(descriptor) == run_uid
    for _, descriptor in runs["B"]:
        with pytest.raises(DescriptorNotFound):
            store.descriptor_run(descriptor)


@pytest.mark.parametrize("shared", [True, False])
def test_shared_writes_are_seen_at_once_by_another_process_of_the_store(tmp_path, shared):
    from fastapi.testclient import TestClient

    from intake_broker_server import create_app
    from intake_broker_server.service import Limits

    native = pytest.importorskip("intake_broker_native")
    writer = native.NativeStore.in_folder(tmp_path)
    docs = factories.scalar_run(n=4)
    descriptor = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")["uid"]
    app = create_app(writer, limits=Limits(shared_writes=shared))
    with TestClient(app) as http:
        for name, doc in docs[:-1]:  # all but the stop
            assert http.post("/api/v1/documents", json=[name, doc]).status_code == 200
        other = native.NativeStore.in_folder(tmp_path)  # another worker's store
        try:
            seen = len(other.read_events(descriptor))
        finally:
            other.close()
    writer.close()
    # shared: the stop may go to any worker, which then sees every event written before it
    assert seen == (4 if shared else 0)
