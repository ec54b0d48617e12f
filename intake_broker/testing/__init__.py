"""Public test helpers: the conformance suite every store subclasses, and document factories.

Shipped in the wheel so that a store in another package can run ``DocumentStoreTests``.
"""

from __future__ import annotations

from intake_broker.testing import factories
from intake_broker.testing.queries import QueryTests
from intake_broker.testing.suite import DocumentStoreTests, assert_same_documents, insert_all

__all__ = ["DocumentStoreTests", "QueryTests", "assert_same_documents", "factories", "insert_all"]
