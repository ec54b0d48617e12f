"""A live server on a loopback port for the whole session; each test mounts its own store."""

from __future__ import annotations

import pytest

from intake_broker.memory import MemoryStore

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
    url = live_server.mount(store)
    yield url, store
    live_server.unmount(url)
