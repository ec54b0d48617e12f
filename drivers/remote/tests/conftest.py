"""A live server on a loopback port for the whole session; each test mounts its own store."""

from __future__ import annotations

import pytest

from intake_broker.store.memory import MemoryStore

server_testing = pytest.importorskip(
    "intake_broker_server.testing", reason="the tests need intake-broker-server"
)


@pytest.fixture(scope="session")
def live_server():
    with server_testing.LiveServer() as server:
        yield server


@pytest.fixture
def served(live_server):
    """``(url, store)``: a new, empty memory store served under its own URL."""
    store = MemoryStore()
    # a served store takes resources only under its asset roots: /data is where the
    # conformance suite's asset_run says its (never read) files are
    url = live_server.mount(store, asset_roots=["/data"])
    yield url, store
    live_server.unmount(url)
