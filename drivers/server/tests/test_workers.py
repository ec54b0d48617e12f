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
