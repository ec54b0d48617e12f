"""The golden runs (``golden/runs``) in every kind of store, and what databroker 1.2.5 answered
about them (``golden/v1.json`` and the tables and documents beside it; see make_golden.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from intake_broker import BrokerCatalog
from intake_broker.store.memory import MemoryStore

sys.path.insert(0, str(Path(__file__).parent))  # _golden and make_golden, for the tests

from _golden import ASSETS, ROOT, TZ, golden_runs  # noqa: E402


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((Path(__file__).parent / "golden" / "v1.json").read_text())


@pytest.fixture(autouse=True)
def new_york(monkeypatch):
    """The zone databroker recorded in (naive since/until texts are read in it)."""
    monkeypatch.setenv("TZ", TZ)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _fill(store) -> None:
    for docs in golden_runs():
        for name, doc in docs:
            store.insert(name, doc)
    if hasattr(store, "flush"):
        store.flush()


@pytest.fixture(scope="session")
def _secantus():
    servers = pytest.importorskip("intake_broker.testing.servers")
    if servers.secantusd() is None:
        pytest.skip("SecantusDB is not installed (pip install -e 'drivers/mongo[test]')")
    with servers.SecantusServer() as server:
        yield server.uri


@pytest.fixture(scope="module", params=["memory", "jsonl", "native", "remote", "mongo-embedded"])
def catalog(request, tmp_path_factory):
    """The six golden runs in one kind of store, as a catalog relocating the asset root (the
    embedded MongoDB layout, read-only, written by ``intake_broker_mongo.testing``)."""
    kind = request.param
    folder = tmp_path_factory.mktemp(kind)
    if kind == "mongo-embedded":
        mongo = pytest.importorskip("intake_broker_mongo")
        from intake_broker_mongo.testing import write_embedded

        uri = f"{request.getfixturevalue('_secantus')}/golden-{folder.name}"
        catalog = mongo.MongoEmbeddedCatalog(uri, root_map={ROOT: ASSETS})
        write_embedded(catalog.store._db, [doc for docs in golden_runs() for doc in docs])
        yield catalog
        catalog.store._db.client.drop_database(catalog.store._db.name)
        catalog.store.close()
        return
    if kind == "memory":
        store = MemoryStore()
    elif kind == "jsonl":
        files = pytest.importorskip("intake_broker_files")
        store = files.JSONLStore.in_folder(folder)
    elif kind == "native":
        native = pytest.importorskip("intake_broker_native")
        store = native.NativeStore.in_folder(folder)
    else:
        server_testing = pytest.importorskip("intake_broker_server.testing")
        remote = pytest.importorskip("intake_broker_remote")
        store = MemoryStore()
        _fill(store)
        with server_testing.LiveServer() as server:
            url = server.mount(BrokerCatalog(store, root_map={ROOT: ASSETS}))
            yield remote.RemoteCatalog(url)
        return
    _fill(store)
    yield BrokerCatalog(store, root_map={ROOT: ASSETS})


@pytest.fixture(scope="module")
def db(catalog):
    return catalog.v1
