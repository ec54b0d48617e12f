"""The conformance suite on the remote store, against a live server on a loopback port: once
over a memory store and once over a folder of msgpack files."""

from __future__ import annotations

import pytest

from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker_remote import RemoteStore


class TestRemoteOverMemory(DocumentStoreTests):
    @pytest.fixture
    def store(self, served):
        url, _ = served
        remote = RemoteStore(url)
        yield remote
        remote.close()

    def reopen(self, store):
        return RemoteStore(store.url)  # a new client, same server: nothing kept client-side


class TestRemoteOverFiles(DocumentStoreTests):
    @pytest.fixture
    def store(self, live_server, tmp_path):
        files = pytest.importorskip("intake_broker_files")
        url = live_server.mount(
            files.FilesStore([str(tmp_path / "*.msgpack")], format="msgpack"),
            asset_roots=["/data"],  # where the suite's asset_run names its files
        )
        remote = RemoteStore(url)
        yield remote
        remote.close()
        live_server.unmount(url)

    def reopen(self, store):
        return RemoteStore(store.url)


class TestRemoteQueries(QueryTests):
    """The search suite through HTTP: queries travel as JSON and are answered by the server's
    store (here a folder of msgpack files)."""

    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, live_server, tmp_path_factory):
        files = pytest.importorskip("intake_broker_files")
        folder = tmp_path_factory.mktemp("remote-queries")
        url = live_server.mount(
            files.FilesStore([str(folder / "*.msgpack")], format="msgpack", validate=False)
        )
        remote = RemoteStore(url)
        yield remote
        remote.close()
        live_server.unmount(url)
