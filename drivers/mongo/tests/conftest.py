"""Shared fixtures: a real MongoDB-wire server (SecantusDB) for the session, a fresh database
per test, and documents from a real RunEngine written by suitcase-mongo."""

from __future__ import annotations

import copy
import uuid

import pytest

from intake_broker.testing.servers import SecantusServer, secantusd

pymongo = pytest.importorskip("pymongo")
pytest.importorskip("intake_broker_mongo", reason="pip install -e 'drivers/mongo[test]'")


@pytest.fixture(scope="session")
def mongo_server():
    """``mongodb://127.0.0.1:<port>`` of a SecantusDB server (in memory) for this session."""
    if secantusd() is None:
        pytest.skip("SecantusDB is not installed (pip install -e 'drivers/mongo[test]')")
    with SecantusServer() as server:
        yield server.uri


@pytest.fixture
def database_uri(mongo_server):
    """A function giving URIs of new, empty databases, all dropped after the test."""
    names: list[str] = []

    def new() -> str:
        names.append(f"test-{uuid.uuid4().hex[:16]}")
        return f"{mongo_server}/{names[-1]}"

    yield new
    client = pymongo.MongoClient(mongo_server)
    for name in names:
        client.drop_database(name)
    client.close()


@pytest.fixture
def store(database_uri):
    """A new MongoStore over two new databases (metadatastore, asset registry)."""
    from intake_broker_mongo import MongoStore

    opened = MongoStore(database_uri(), database_uri())
    yield opened
    opened.close()


@pytest.fixture
def bluesky_runs(recorded_runs):
    """Documents of five plans run by a real RunEngine over ophyd.sim devices, as
    ``{label: [(name, doc), ...]}``, exactly as the RunEngine emitted them (a fresh copy per
    test: ``intake_broker.testing.assert_same_documents`` pops ``filled`` from the documents
    it is given)."""
    return copy.deepcopy(recorded_runs)


@pytest.fixture(scope="session")
def recorded_runs():
    pytest.importorskip("bluesky")
    pytest.importorskip("ophyd")
    from intake_broker.testing.recorded import recorded_runs as record

    return record()
