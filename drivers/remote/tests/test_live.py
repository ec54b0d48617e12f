"""A bluesky RunEngine with ophyd.sim devices writing live through the service: the same
``RE.subscribe(cat.insert)`` as for a local catalog, the run readable over HTTP while it runs."""

from __future__ import annotations

import numpy as np
import pytest

from intake_broker.errors import InvalidDocument
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import assert_same_documents
from intake_broker_remote import RemoteCatalog

pytest.importorskip("bluesky")
from bluesky import RunEngine  # noqa: E402
from bluesky.plans import count, scan  # noqa: E402
from ophyd.sim import det, det4, motor  # noqa: E402


@pytest.fixture(params=["memory", "native"])
def served_url(request, live_server, tmp_path):
    """A served store: memory, or native flushing at every chance (by default it makes a
    live run's events readable every few seconds, in whole or growing chunks)."""
    if request.param == "memory":
        store = MemoryStore()
    else:
        native = pytest.importorskip("intake_broker_native")
        store = native.NativeStore.in_folder(tmp_path / "native", flush_interval=0)
    url = live_server.mount(store)
    yield url
    live_server.unmount(url)


def test_a_run_engine_writes_live_through_the_service(served_url):
    cat = RemoteCatalog(served_url)
    RE = RunEngine()
    RE.subscribe(cat.insert)
    documents: list = []
    RE.subscribe(lambda name, doc: documents.append((name, doc)))
    during: list = []

    def look(name, doc):  # another client, while the run is still going
        if name == "event" and doc["seq_num"] == 3:
            run = RemoteCatalog(served_url)[-1]
            during.append((run.metadata["stop"], run.primary.read()["motor"].values.tolist()))

    RE.subscribe(look)
    (uid,) = RE(scan([det], motor, -1, 1, 5))
    assert during == [(None, [-1.0, -0.5, 0.0])]
    run = cat[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    np.testing.assert_allclose(run.primary.read()["motor"].values, np.linspace(-1, 1, 5))
    np.testing.assert_allclose(
        run.primary.read()["det"].values, [d["data"]["det"] for n, d in documents if n == "event"]
    )
    assert_same_documents(list(run.documents()), documents)


def test_a_bad_document_from_a_run_is_refused_and_the_run_goes_on(served_url):
    cat = RemoteCatalog(served_url)
    RE = RunEngine()
    RE.subscribe(cat.insert)
    (uid,) = RE(count([det4], 3))
    with pytest.raises(InvalidDocument):
        cat.insert(
            "event",
            {
                "descriptor": "no-such-descriptor",
                "seq_num": 4,
                "data": {},
                "timestamps": {},
                "time": 0.0,
                "uid": "x",
            },
        )
    assert len(cat[uid].primary.read()["det4"]) == 3
