"""Property-based requests from the OpenAPI document (schemathesis): no 5xx, and every error a
4xx with a JSON body saying what is wrong. Bounded: a few examples per operation."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from intake_broker.store.memory import MemoryStore  # noqa: E402
from intake_broker.testing import factories, insert_all  # noqa: E402
from intake_broker_server.testing import LiveServer  # noqa: E402

_server = LiveServer()


def _url() -> str:
    if not _server._thread.is_alive():
        _server.start()
        store = MemoryStore(chunk_rows=3)
        for docs in (factories.scalar_run(n=7), factories.image_run(n=2), factories.asset_run()):
            insert_all(store, docs)
        _server.base = _server.mount(store)
    return _server.base


schema = schemathesis.openapi.from_url(f"{_url()}/openapi.json")


def teardown_module() -> None:
    _server.stop()


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_never_fails_with_a_5xx(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "message"} and body["message"], body
