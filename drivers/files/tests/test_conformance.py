"""The conformance suite, three times: JSONL and msgpack on a local disk, JSONL on S3."""

from __future__ import annotations

import pytest

from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker_files import FilesStore


def _same_files(store: FilesStore) -> FilesStore:
    store.flush()  # on S3 a run being written becomes visible at stop or flush
    return FilesStore(
        store.paths,
        format=store.file_format.name,
        directory=store.directory,
        storage_options=store.storage_options,
        validate=store.validate,
    )


class TestLocalJSONL(DocumentStoreTests):
    @pytest.fixture
    def store(self, tmp_path):
        return FilesStore([str(tmp_path / "*.jsonl")], format="jsonl")

    def reopen(self, store):
        return _same_files(store)


class TestLocalMsgpack(DocumentStoreTests):
    @pytest.fixture
    def store(self, tmp_path):
        return FilesStore([str(tmp_path / "*.msgpack")], format="msgpack")

    def reopen(self, store):
        return _same_files(store)


class TestS3JSONL(DocumentStoreTests):
    @pytest.fixture
    def store(self, s3_server, s3_prefix):
        return FilesStore(
            [f"{s3_prefix}/*.jsonl"], format="jsonl", storage_options=s3_server["storage_options"]
        )

    def reopen(self, store):
        return _same_files(store)


class TestLocalMsgpackQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, tmp_path_factory):
        folder = tmp_path_factory.mktemp("queries")
        return FilesStore([str(folder / "*.msgpack")], format="msgpack", validate=False)
