"""The conformance suite against a real MongoDB-wire server, in both forms of the layout:
separate metadatastore and asset-registry databases (databroker's arguments), and one database
(the single-URI form)."""

from __future__ import annotations

import uuid

import pymongo
import pytest

from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker_mongo import MongoStore


class _Reopening(DocumentStoreTests):
    """Each ``reopen`` is a new store (new client) over the same databases."""

    @pytest.fixture(autouse=True)
    def _close_stores(self):
        self._opened: list[MongoStore] = []
        yield
        for store in self._opened:
            store.close()

    def _open(self, *uris: str) -> MongoStore:
        store = MongoStore(*uris)
        self._opened.append(store)
        return store

    def reopen(self, store: MongoStore) -> MongoStore:
        return self._open(*self._uris)


class TestSeparateDatabases(_Reopening):
    @pytest.fixture
    def store(self, database_uri):
        self._uris = (database_uri(), database_uri())
        return self._open(*self._uris)


class TestSingleDatabase(_Reopening):
    @pytest.fixture
    def store(self, database_uri):
        self._uris = (database_uri(),)
        return self._open(*self._uris)


class TestMongoQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, mongo_server):
        name = f"test-queries-{uuid.uuid4().hex[:12]}"
        yield MongoStore(f"{mongo_server}/{name}", validate=False)
        pymongo.MongoClient(mongo_server).drop_database(name)
