"""What the events endpoint asks of the store: no data keys for the index alone, and nothing at
all for a request over several chunks that is too large for one response."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all
from intake_broker_remote import wire
from intake_broker_server import Limits, Service
from intake_broker_server.testing import assert_error


class Recording(MemoryStore):
    """A memory store that notes the ``fields`` of every ``read_events``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reads: list = []

    def read_events(self, descriptor_uid, *, fields=None, seq_range=None, uids=False):
        self.reads.append(None if fields is None else list(fields))
        return super().read_events(descriptor_uid, fields=fields, seq_range=seq_range, uids=uids)


@pytest.fixture
def recorded(live_server):
    store = Recording(chunk_rows=10)
    docs = factories.image_run(n=45)
    insert_all(store, docs)
    descriptor = next(d for name, d in docs if name == "descriptor")["uid"]
    url = live_server.mount(Service(store, limits=Limits(response_bytes=30 * 4 * 5 * 2)))
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http, store, descriptor
    live_server.unmount(url)


def test_the_index_alone_reads_no_data_key(recorded):
    http, store, descriptor = recorded
    response = http.get(f"/api/v1/descriptors/{descriptor}/events", params={"groups": "index,uid"})
    assert response.status_code == 200 and store.reads == [[]]
    _, columns = wire.decode_columns(bytearray(response.content))
    np.testing.assert_array_equal(columns["index", "seq_num"], np.arange(1, 46))
    assert len(columns["uid", None]) == 45 and ("data", "image") not in columns


def test_too_much_over_several_chunks_is_refused_before_reading(recorded):
    http, store, descriptor = recorded
    path = f"/api/v1/descriptors/{descriptor}/events"
    # 45 images of 4 x 5 uint16 over 5 chunks: 1,800 bytes of data > 1,200
    body = assert_error(http.get(path, params={"groups": "data"}), 400, "OversizedRequest", "MB")
    assert store.reads == [] and "smaller seq_num range" in body["message"]
    # a range cutting its chunks counts only the chunks it covers whole; the read decides
    assert (
        http.get(path, params={"groups": "data", "seq_start": 5, "seq_stop": 30}).status_code == 200
    )
    assert (
        http.get(path, params={"groups": "data", "seq_start": 1, "seq_stop": 31}).status_code == 200
    )
    assert len(store.reads) == 2
    # one chunk is read, and checked after the read
    assert (
        http.get(path, params={"groups": "data", "seq_start": 1, "seq_stop": 11}).status_code == 200
    )
