"""The conformance suite on the built-in memory store."""

from __future__ import annotations

import pytest

from intake_broker.memory import MemoryStore
from intake_broker.testing import DocumentStoreTests, QueryTests


class TestMemoryStore(DocumentStoreTests):
    @pytest.fixture
    def store(self):
        return MemoryStore(chunk_rows=1000)


class TestMemoryStoreQueries(QueryTests):
    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls):
        return MemoryStore(validate=False)
