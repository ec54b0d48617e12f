"""Issue 14, documents: every store takes or refuses a document the same way, and refusing it
changes nothing.

The repros of the issue (events after a run's stop, values that do not fit their data key, NaN
times, empty uids, uids that climb out of the files store's folder, non-JSON values) on the
memory, files (jsonl), native (SQLite) and MongoDB (SecantusDB) stores, and the files store
over HTTP.
"""

from __future__ import annotations

import math
import pickle
import uuid

import numpy as np
import pytest

from intake_broker import BrokerCatalog
from intake_broker.errors import BrokerError, DocumentConflict, InvalidDocument
from intake_broker.store.abilities import flush
from intake_broker.store.validation import MAX_DEPTH, MAX_UID_BYTES
from intake_broker.testing import factories
from intake_broker.testing.suite import assert_same_documents, insert_all

STORES = ["memory", "files", "native", "mongo"]


@pytest.fixture(params=STORES)
def kind(request):
    return request.param


@pytest.fixture
def store(kind, tmp_path, open_store):
    opened = open_store(kind, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def stored(store):
    """A store holding one complete scalar run; its documents."""
    docs = factories.scalar_run(n=3)
    insert_all(store, docs)
    return docs


def held(store, docs) -> list:
    """The documents the store holds for the run of ``docs`` (after flushing buffers)."""
    flush(store)
    return list(store.documents(docs[0][1]["uid"]))


def refused(store, docs, name, doc, *words) -> InvalidDocument:
    """Insert ``doc``: it must be refused with InvalidDocument holding ``words``, and the run
    of ``docs`` must be exactly as it was."""
    before = held(store, docs)
    count = store.count()
    with pytest.raises(InvalidDocument) as info:
        store.insert(name, doc)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert store.count() == count
    assert_same_documents(held(store, docs), before)
    return info.value


def first(docs, name, stream=None):
    return next(
        d for n, d in docs if n == name and (stream is None or d.get("name", stream) == stream)
    )


def primary_event(docs):
    primary = first(docs, "descriptor", "primary")["uid"]
    return next(d for n, d in docs if n == "event" and d["descriptor"] == primary)


# -- events after the run's stop --------------------------------------------------------------


def test_new_event_after_stop_is_refused(store, stored):
    event = primary_event(stored)
    late = {**event, "uid": str(uuid.uuid4()), "seq_num": 4, "time": event["time"] + 10}
    err = refused(store, stored, "event", late, "has stopped", "descriptor", late["uid"])
    assert isinstance(err, BrokerError)
    page = {
        "descriptor": event["descriptor"],
        "uid": [str(uuid.uuid4()), str(uuid.uuid4())],
        "seq_num": [5, 6],
        "time": [event["time"] + 11, event["time"] + 12],
        "data": {k: [v, v] for k, v in event["data"].items()},
        "timestamps": {k: [v, v] for k, v in event["timestamps"].items()},
    }
    refused(store, stored, "event_page", page, "has stopped")
    store.insert("event", event)  # re-inserting a stored event stays a no-op
    with pytest.raises(DocumentConflict):
        store.insert("event", {**event, "time": event["time"] + 1})


def test_event_after_stop_is_refused_by_a_store_opened_later(
    kind, store, stored, tmp_path, open_store
):
    """The stop was written through another store object: the first event asks the store."""
    if kind == "memory":
        pytest.skip("a memory store is one object")
    # a second object over the same data (for MongoDB: the same databases)
    again = pickle.loads(pickle.dumps(store)) if kind == "mongo" else open_store(kind, tmp_path)
    try:
        event = primary_event(stored)
        late = {**event, "uid": str(uuid.uuid4()), "seq_num": 9}
        again.insert("start", stored[0][1])  # an identical start again: it reopens nothing
        again.insert("descriptor", first(stored, "descriptor", "primary"))
        refused(again, stored, "event", late, "has stopped")
    finally:
        if again is not store:
            again.close()


def test_stopped_run_still_reads_and_its_summary_is_right(store, stored):
    event = primary_event(stored)
    with pytest.raises(InvalidDocument):
        store.insert(
            "event",
            {**event, "uid": "late-one", "seq_num": 99, "data": {**event["data"], "motor": 1e9}},
        )
    run = BrokerCatalog(store)[stored[0][1]["uid"]]
    assert run.primary.read()["motor"].shape == (3,)
    assert store.summary(stored[0][1]["uid"])["primary"]["motor"]["max"] < 1e9


# -- values against their data keys -----------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("motor", "high", ["'motor'", "declared <f8", "'high'"]),
        ("count", 1.5, ["'count'", "declared <i8", "1.5"]),
        ("count", 2**70, ["'count'"]),
        ("motor", [1.0, 2.0], ["'motor'", "shape [2]"]),
        ("motor", {"a": 1}, ["'motor'"]),
        ("motor", None, ["'motor'"]),
    ],
)
def test_value_that_does_not_fit_its_data_key_is_refused(store, key, value, words):
    docs = factories.scalar_run(n=2, stop=False)
    insert_all(store, docs)
    event = primary_event(docs)
    bad = {**event, "uid": str(uuid.uuid4()), "seq_num": 3, "data": {**event["data"], key: value}}
    refused(store, docs, "event", bad, *words)
    uid = docs[0][1]["uid"]
    store.insert(
        "stop", {"uid": str(uuid.uuid4()), "run_start": uid, "time": 2e9, "exit_status": "success"}
    )
    counts = [d["data"]["count"] for n, d in docs if n == "event" and "count" in d["data"]]
    assert BrokerCatalog(store)[uid].primary.read()["count"].values.tolist() == counts


def test_event_with_keys_its_descriptor_lacks_is_refused(store):
    docs = factories.scalar_run(n=1, stop=False)
    insert_all(store, docs)
    event = primary_event(docs)
    extra = {
        **event,
        "uid": str(uuid.uuid4()),
        "seq_num": 2,
        "data": {**event["data"], "ghost": 1.0},
        "timestamps": {**event["timestamps"], "ghost": 1.0},
    }
    refused(store, docs, "event", extra, "ghost", "data keys")
    missing = {
        **event,
        "uid": str(uuid.uuid4()),
        "seq_num": 2,
        "data": {"motor": 1.0},
        "timestamps": {"motor": 1.0},
    }
    refused(store, docs, "event", missing, "missing", "'det'")


def test_descriptor_declaring_what_cannot_be_read_is_refused(store):
    docs = factories.scalar_run(n=1, stop=False)
    insert_all(store, docs)
    descriptor = first(docs, "descriptor", "primary")
    for data_key, words in (
        ({"dtype": "number", "shape": [None], "source": "x"}, ["'shape'", "null"]),
        ({"dtype": "number", "shape": [-1], "source": "x"}, ["'shape'"]),
        ({"dtype": "number", "shape": [], "source": "x", "dtype_numpy": "<t8"}, ["dtype_numpy"]),
    ):
        bad = {**descriptor, "uid": str(uuid.uuid4()), "name": "odd", "data_keys": {"v": data_key}}
        bad.pop("configuration", None), bad.pop("object_keys", None)
        refused(store, docs, "descriptor", bad, *words)


# -- uids and times: the same answer from every store -----------------------------------------

BAD_UIDS = [
    ("", "is empty"),
    (".", "starts with '.'"),
    ("..", "starts with '.'"),
    ("../../escaped", "starts with '.'"),
    ("a/../../escaped", "path separator"),
    ("a\\b", "path separator"),
    ("nul\x00uid", "NUL"),
    ("tab\tuid", "control character"),
    ("lone\ud800surrogate", "surrogate"),
    ("x" * (MAX_UID_BYTES + 1), "bytes long"),
    ("é" * (MAX_UID_BYTES // 2 + 1), "bytes long"),
    (17, "string"),
]


@pytest.mark.parametrize("uid, words", BAD_UIDS, ids=[repr(u)[:20] for u, _ in BAD_UIDS])
def test_bad_start_uid_is_refused_by_every_store(store, uid, words):
    docs = factories.scalar_run(n=1)
    insert_all(store, docs)
    start = {**docs[0][1], "uid": uid}
    refused(store, docs, "start", start, "uid", words)


@pytest.mark.parametrize("name", ["descriptor", "stop", "event"])
def test_bad_uids_in_other_documents_are_refused(store, name):
    docs = factories.scalar_run(n=1, stop=False)
    insert_all(store, docs)
    doc = first(docs, name) if name != "stop" else factories.scalar_run()[-1][1]
    for field_ in ("uid", "run_start", "descriptor"):
        if field_ not in doc and not (name == "stop" and field_ == "run_start"):
            continue
        for bad in ("", "../../x", "a\x00"):
            changed = {**doc, field_: bad}
            if name == "stop" and field_ == "uid":
                changed["run_start"] = docs[0][1]["uid"]
            refused(store, docs, name, changed, f"field {field_!r}")


@pytest.mark.parametrize("time", [math.nan, math.inf, -math.inf, "now", True, None])
def test_times_must_be_finite_numbers_everywhere(store, time):
    docs = factories.scalar_run(n=1, stop=False)
    insert_all(store, docs)
    start = {**factories.scalar_run()[0][1], "time": time}
    refused(store, docs, "start", start, "time")
    event = primary_event(docs)
    late = {**event, "uid": str(uuid.uuid4()), "seq_num": 2, "time": time}
    refused(store, docs, "event", late, "field 'time'")
    stamp = {
        **event,
        "uid": str(uuid.uuid4()),
        "seq_num": 2,
        "timestamps": {**event["timestamps"], "det": time},
    }
    refused(store, docs, "event", stamp, "timestamps")


# -- only JSON values ------------------------------------------------------------------------


def _deep(levels: int):
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "extra, words",
    [
        ({1: "int key"}, ["key 1", "int"]),
        ({"deep": _deep(MAX_DEPTH + 5)}, ["'deep", f"deeper than {MAX_DEPTH}"]),
        ({"deep": _deep(5000)}, ["deeper than"]),
        ({"big": 2**70}, ["'big'", "64-bit"]),
        ({"small": -(2**63) - 1}, ["'small'", "64-bit"]),
        ({"text": "lone \udc80"}, ["'text'", "surrogate"]),
        ({"nul\x00key": 1}, ["NUL"]),
        ({"text": "a\x00b"}, ["'text'", "NUL"]),
        ({"blob": b"bytes"}, ["'blob'", "bytes"]),
        ({"set": {1, 2}}, ["'set'", "set"]),
        ({"z": 1j}, ["'z'", "complex"]),
        ({"arr": np.array([2**64 - 1], dtype=np.uint64)}, ["'arr'", "64-bit"]),
        ({"nested": {"a": [1, {"b": object()}]}}, ["'nested.a.1.b'", "object"]),
    ],
)
def test_only_json_values_are_stored(store, extra, words):
    docs = factories.scalar_run(n=1)
    insert_all(store, docs)
    start = {**factories.scalar_run()[0][1], **extra}
    refused(store, docs, "start", start, "start document", *words)


def test_json_values_at_the_limits_are_stored_and_read_back(store):
    docs = factories.scalar_run(
        n=1,
        big=2**63 - 1,
        small=-(2**63),
        deep=_deep(MAX_DEPTH - 2),
        nan=math.nan,
        unicode="é ü 漢字 \U0001f600",
        arr=np.arange(3),
    )
    insert_all(store, docs)
    assert_same_documents(held(store, docs), docs)


# -- the files store's folder -----------------------------------------------------------------


def test_files_store_never_writes_outside_its_folder(tmp_path):
    from intake_broker_files import JSONLStore

    store = JSONLStore.in_folder(tmp_path / "a" / "b" / "runs")
    start = factories.scalar_run()[0][1]
    for uid in ("../../escaped", "../escaped", "/tmp/escaped", "sub/escaped", ".hidden"):
        with pytest.raises(InvalidDocument, match="'uid'"):
            store.insert("start", {**start, "uid": uid})
        with pytest.raises(InvalidDocument):  # put straight away (copy_runs does): refused too
            store.put("start", {**start, "uid": uid})
    assert not list(tmp_path.rglob("*escaped*")) and not list(tmp_path.rglob(".hidden*"))
    # a run file planted as a symbolic link to a file outside is never appended to
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    (tmp_path / "a" / "b" / "runs").mkdir(parents=True, exist_ok=True)
    link_uid = str(uuid.uuid4())
    (tmp_path / "a" / "b" / "runs" / f"{link_uid}.jsonl").symlink_to(outside)
    with pytest.raises(InvalidDocument, match="outside the store's folder"):
        store.put("start", {**start, "uid": link_uid})
    assert outside.read_text() == ""


def test_files_store_lookups_never_read_outside_its_folder(tmp_path):
    from intake_broker_files import JSONLStore

    docs = factories.scalar_run(n=1)
    insert_all(JSONLStore.in_folder(tmp_path / "elsewhere"), docs)
    (tmp_path / "elsewhere" / f"{docs[0][1]['uid']}.jsonl").rename(tmp_path / "victim.jsonl")
    store = JSONLStore.in_folder(tmp_path / "x" / "runs")
    with pytest.raises(KeyError):
        store.run("../../victim")
    stop = {
        "uid": str(uuid.uuid4()),
        "run_start": "../../victim",
        "time": 2e9,
        "exit_status": "success",
    }
    size = (tmp_path / "victim.jsonl").stat().st_size
    with pytest.raises(InvalidDocument):
        store.insert("stop", stop)
    with pytest.raises(InvalidDocument):
        store.put("stop", stop)
    assert (tmp_path / "victim.jsonl").stat().st_size == size


def test_files_store_refuses_a_traversal_over_http(tmp_path):
    httpx = pytest.importorskip("httpx")
    from intake_broker_files import JSONLStore
    from intake_broker_server.testing import LiveServer

    store = JSONLStore.in_folder(tmp_path / "a" / "runs")
    start = factories.scalar_run()[0][1]
    with LiveServer() as server:
        url = server.mount(store)
        with httpx.Client(base_url=url, timeout=30) as http:
            response = http.post(
                "/api/v1/documents", json=["start", {**start, "uid": "../../escaped"}]
            )
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["error"] == "InvalidDocument"
            assert "'uid'" in response.json()["message"]
            ok = http.post("/api/v1/documents", json=["start", start])
            assert ok.status_code == 200, ok.text
    assert not list(tmp_path.rglob("escaped*"))
    assert store.count() == 1


def test_native_store_names_folders_only_after_safe_uids(tmp_path):
    """The native store names zarr groups after uids only when they are [A-Za-z0-9_-]; other
    uids (now refused anyway) become hashes: nothing outside its data folder."""
    from intake_broker_native.ingest import node_name

    for uid in ("../../x", "a/b", "..", "ok-uid_1"):
        name = node_name(uid)
        assert "/" not in name and not name.startswith(".")
