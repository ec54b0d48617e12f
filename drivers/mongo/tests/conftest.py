"""Shared fixtures: a real MongoDB-wire server (SecantusDB) for the session, a fresh database
per test, and documents from a real RunEngine written by suitcase-mongo."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pymongo = pytest.importorskip("pymongo")
pytest.importorskip("intake_broker_mongo", reason="pip install -e 'drivers/mongo[test]'")

_START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _secantusd() -> str | None:
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else shutil.which("secantusd-py")


@pytest.fixture(scope="session")
def mongo_server():
    """``mongodb://127.0.0.1:<port>`` of a SecantusDB server (in memory) for this session."""
    exe = _secantusd()
    if exe is None:
        pytest.skip("SecantusDB is not installed (pip install -e 'drivers/mongo[test]')")
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="secantusd-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
         "--standalone", "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {proc.returncode}: "
                                   f"{Path(log.name).read_text()[-2000:]}")
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SecantusDB did not answer on port {port} within "
                                       f"{_START_TIMEOUT:g} s") from None
                time.sleep(0.1)
        yield uri
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


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
