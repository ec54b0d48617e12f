"""Public test helpers: the conformance suite every store subclasses, and document factories.

Shipped in the wheel so that a store in another package can run ``DocumentStoreTests``. The
factories (``factories``, ``insert_all``) need no test packages; the suites (pytest) are
imported when first used, so a plain install (README command 1) can make example runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from intake_broker.testing import factories
from intake_broker.testing.factories import insert_all

if TYPE_CHECKING:
    from intake_broker.testing.queries import QueryTests
    from intake_broker.testing.suite import DocumentStoreTests, assert_same_documents

__all__ = ["DocumentStoreTests", "QueryTests", "assert_same_documents", "factories", "insert_all"]

_LAZY = {
    "DocumentStoreTests": "suite",
    "assert_same_documents": "suite",
    "QueryTests": "queries",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"intake_broker.testing.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'intake_broker.testing' has no attribute {name!r}")
