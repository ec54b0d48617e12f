"""Connection errors: an unreachable server gives a clear error naming the URI, password
removed, once the configured timeout has passed; bad arguments are refused up front."""

from __future__ import annotations

import socket
import threading

import pytest

from intake_broker.errors import BrokerError
from intake_broker_mongo import (
    MongoConfigurationError,
    MongoConnectionError,
    MongoNormalizedCatalog,
    MongoStore,
    redact,
)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raised_by(func):
    """The exception ``func`` raises, run in a thread that must end (no hang)."""
    outcome: dict = {}

    def target():
        try:
            func()
        except BaseException as err:  # noqa: BLE001 (handed back to the test)
            outcome["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the call hung instead of giving up"
    return outcome.get("error")


@pytest.mark.parametrize("operation", ["len", "last", "insert"])
def test_unreachable_server_names_the_uri_without_the_password(closed_port, operation):
    uri = f"mongodb://ann:s3cr3t-pw@127.0.0.1:{closed_port}/mds?authSource=admin"
    cat = MongoNormalizedCatalog(uri, server_selection_timeout=0.3)  # opening does not connect
    call = {
        "len": lambda: len(cat),
        "last": lambda: cat[-1],
        "insert": lambda: cat.insert("start", {"uid": "u", "time": 1.0}),
    }[operation]
    error = _raised_by(call)
    cat.store.close()
    assert isinstance(error, MongoConnectionError), error
    assert isinstance(error, BrokerError) and isinstance(error, ConnectionError)
    message = str(error)
    assert "s3cr3t-pw" not in message and "s3cr3t-pw" not in repr(error)
    assert f"mongodb://ann:***@127.0.0.1:{closed_port}/mds" in message
    assert "0.3 s" in message and "server_selection_timeout" in message
    assert error.__cause__ is None  # pymongo's error (and its URI) is not chained


def test_asset_database_errors_name_the_asset_uri(closed_port, mongo_server):
    store = MongoStore(
        f"{mongo_server}/somewhere",
        f"mongodb://127.0.0.1:{closed_port}/assets",
        server_selection_timeout=0.3,
    )
    try:
        assert store.count() == 0  # the metadatastore answers
        error = _raised_by(lambda: store.resource("run", "resource"))
    finally:
        store.close()
    assert isinstance(error, MongoConnectionError)
    assert f"127.0.0.1:{closed_port}/assets" in str(error)


def test_bad_arguments_are_refused_when_opening():
    with pytest.raises(MongoConfigurationError, match="names no database"):
        MongoStore("mongodb://127.0.0.1:1")
    with pytest.raises(MongoConfigurationError, match="not a MongoDB URI"):
        MongoStore("http://example.org/db")
    with pytest.raises(MongoConfigurationError, match="either metadatastore_db"):
        MongoNormalizedCatalog()
    with pytest.raises(MongoConfigurationError, match="not both"):
        MongoNormalizedCatalog("mongodb://h/a", uri="mongodb://h/b")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://ann:pw@db:27017/mds", "mongodb://ann:***@db:27017/mds"),
        ("mongodb://ann:p@ss@db/mds", "mongodb://ann:***@db/mds"),
        ("mongodb://ann@db/mds", "mongodb://ann@db/mds"),
        ("mongodb://db1:1,db2:2/mds?replicaSet=rs", "mongodb://db1:1,db2:2/mds?replicaSet=rs"),
        (
            "mongodb+srv://u:pw@c.example.net/db?authMechanismProperties=AWS_SESSION_TOKEN:tok&w=1",
            "mongodb+srv://u:***@c.example.net/db?authMechanismProperties=***&w=1",
        ),
    ],
)
def test_redact(uri, shown):
    assert redact(uri) == shown
