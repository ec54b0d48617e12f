"""The conformance suite against a real MongoDB-wire server, in both forms of the layout:
separate metadatastore and asset-registry databases (databroker's arguments), and one database
(the single-URI form)."""

from __future__ import annotations

import uuid

import pymongo
import pytest

from intake_broker.testing import DocumentStoreTests, QueryTests
from intake_broker.testing.annotations import AnnotationTests
from intake_broker.testing.suite import insert_all
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


class TestMongoAnnotations(AnnotationTests):
    """The annotations ability on MongoDB (two collections of ours), queries answered with the
    annotation collection narrowing the runs, compared with the memory store."""

    @pytest.fixture(autouse=True)
    def _server(self, mongo_server):
        type(self)._server_uri = mongo_server

    def open_store(self, runs, tmp_path):
        name = f"test-annotations-{uuid.uuid4().hex[:12]}"
        store = MongoStore(f"{self._server_uri}/{name}", validate=False)
        for docs in runs:
            insert_all(store, docs)
        return store

    def reopen(self, store):
        return MongoStore(store._targets[0], validate=False)

    @pytest.fixture(scope="class")
    @classmethod
    def query_stores(cls, query_runs, mongo_server):
        from intake_broker.store.memory import MemoryStore
        from intake_broker.testing.annotations import annotate_runs

        reference = MemoryStore()
        for docs in query_runs:
            insert_all(reference, docs)
        annotate_runs(reference, query_runs)
        name = f"test-annotation-queries-{uuid.uuid4().hex[:12]}"
        store = MongoStore(f"{mongo_server}/{name}", validate=False)
        for docs in query_runs:
            insert_all(store, docs)
        annotate_runs(store, query_runs)
        yield reference, store
        store.close()
        pymongo.MongoClient(mongo_server).drop_database(name)
