"""A live server on a loopback port for the session; tests mount their own stores on it."""

from __future__ import annotations

import httpx
import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_server.testing import LiveServer


@pytest.fixture(scope="session")
def live_server():
    with LiveServer() as server:
        yield server


@pytest.fixture
def store():
    """A memory store holding a scalar run (10 events in chunks of 4), an image run and a run
    whose primary stream has two descriptors."""
    store = MemoryStore(chunk_rows=4)
    for docs in (
        factories.scalar_run(n=10),
        factories.image_run(n=5),
        factories.reconfigured_run(),
    ):
        insert_all(store, docs)
    return store


@pytest.fixture
def url(live_server, store):
    url = live_server.mount(store)
    yield url
    live_server.unmount(url)


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
