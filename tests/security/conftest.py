"""Fixtures of the security tests: a new store of each kind."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from intake_broker.store.memory import MemoryStore


@pytest.fixture
def open_store(request):
    """``open_store(kind, folder)``: a new, empty store of ``kind`` (memory, files, native,
    mongo); a second call with the same folder reopens a files or native store."""

    def open_(kind: str, folder: Path):
        if kind == "memory":
            return MemoryStore()
        if kind == "files":
            from intake_broker_files import JSONLStore

            return JSONLStore.in_folder(folder / "runs")
        if kind == "native":
            from intake_broker_native import NativeStore

            return NativeStore.in_folder(folder / "native")
        from intake_broker_mongo import MongoStore

        server = request.getfixturevalue("mongo_server")
        name = f"sec-{uuid.uuid4().hex[:12]}"
        store = MongoStore(f"{server.uri}/{name}", f"{server.uri}/{name}-assets")
        request.addfinalizer(lambda: server.drop(name, f"{name}-assets"))
        return store

    return open_
