"""The conformance suite on SQLite + a local folder, PostgreSQL + a local folder, SQLite + S3."""

from __future__ import annotations

import pytest

from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker_native import NativeStore


def _reopen(store: NativeStore) -> NativeStore:
    store.flush()  # a reader in another process sees flushed chunks only
    return NativeStore(
        store.index, store.data, storage_options=store.storage_options, chunk_rows=store.chunk_rows
    )


class TestSQLiteLocal(DocumentStoreTests):
    @pytest.fixture
    def store(self, tmp_path):
        return NativeStore(
            f"sqlite:///{tmp_path}/index.sqlite", str(tmp_path / "data"), chunk_rows=1000
        )

    def reopen(self, store):
        return _reopen(store)


class TestPostgresLocal(DocumentStoreTests):
    @pytest.fixture
    def store(self, postgres_url, tmp_path):
        return NativeStore(postgres_url, str(tmp_path / "data"), chunk_rows=1000)

    def reopen(self, store):
        return _reopen(store)


class TestSQLiteS3(DocumentStoreTests):
    @pytest.fixture
    def store(self, tmp_path, s3_server, s3_data):
        return NativeStore(
            f"sqlite:///{tmp_path}/index.sqlite",
            s3_data,
            storage_options=s3_server["storage_options"],
            chunk_rows=1000,
        )

    def reopen(self, store):
        return _reopen(store)


class TestSQLiteQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, tmp_path_factory):
        folder = tmp_path_factory.mktemp("queries")
        return NativeStore(f"sqlite:///{folder}/index.sqlite", str(folder / "data"), validate=False)


class TestPostgresQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, postgres_server, tmp_path_factory):
        from .conftest import new_postgres_index

        folder = tmp_path_factory.mktemp("queries")
        return NativeStore(
            new_postgres_index(postgres_server), str(folder / "data"), validate=False
        )
