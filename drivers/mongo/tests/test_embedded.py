"""``bluesky-mongo-embedded-catalog``: runs in databroker's embedded MongoDB layout on
SecantusDB, read back as a catalog.

The layout is the one databroker 1.2.5 reads in ``databroker/_drivers/mongo_embedded.py``,
written by suitcase-mongo's ``mongo_embedded.Serializer`` as databroker's own test of that driver
did (``databroker/tests/test_v2/test_mongo_embedded.py``), and by our small synchronous writer
(``intake_broker_mongo.testing.EmbeddedWriter``) for the query suite's 200 runs; the first test
here checks that both writers store the same documents.
"""

from __future__ import annotations

import pickle
import textwrap
import tomllib
import uuid
from pathlib import Path

import event_model
import intake
import numpy as np
import pymongo
import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.errors import ReadOnlyStore, RunNotFound
from intake_broker.store.documents import same_document
from intake_broker.testing import QueryTests, assert_same_documents, factories
from intake_broker.testing.suite import unpacked
from intake_broker_mongo import EmbeddedMongoStore, MongoEmbeddedCatalog
from intake_broker_mongo.testing import EmbeddedWriter, write_embedded

mongo_embedded = pytest.importorskip("suitcase.mongo_embedded")


class _Serializer(mongo_embedded.Serializer):
    def _create_indexes(self):  # SecantusDB has no text index; reading needs no index
        pass


def _suitcase(db, docs) -> None:
    serializer = _Serializer(db)
    for name, doc in docs:
        serializer(name, doc)


def _factory_runs():
    """Scalars, 2-D arrays, a reconfigured detector and external assets (resource, datum,
    datum_page; without the stream_resource / stream_datum the embedded layout predates)."""
    assets = [
        (n, d) for n, d in factories.asset_run() if n not in ("stream_resource", "stream_datum")
    ]
    return {
        "factory_scalar": factories.scalar_run(n=7, page=True),
        "factory_image": factories.image_run(),
        "factory_reconfigured": factories.reconfigured_run(),
        "factory_assets": assets,
    }


@pytest.fixture
def runs(bluesky_runs):
    return {**bluesky_runs, **_factory_runs()}


@pytest.fixture
def embedded(database_uri, runs):
    """A database in the embedded layout written by suitcase-mongo, and the runs."""
    uri = database_uri()
    client = pymongo.MongoClient(uri)
    for docs in runs.values():
        _suitcase(client.get_database(), docs)
    client.close()
    return uri, runs


def _in_order(docs) -> list:
    """Documents with each run of consecutive datums sorted by datum_id: suitcase-mongo may
    store a run's datums out of order (see ``_stored``); nothing reads their order."""
    out = unpacked(docs)
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and out[j][0] == "datum":
            j += 1
        out[i:j] = sorted(out[i:j], key=lambda item: item[1]["datum_id"])
        i = max(j, i + 1)
    return out


def _reference(runs) -> BrokerCatalog:
    memory = MemoryStore()
    for docs in runs.values():
        for name, doc in docs:
            memory.insert(name, doc)
    return BrokerCatalog(memory)


def _stored(db):
    """Everything in the three collections, without what differs between writers by design:
    ``_id``, a page's byte ``size`` and the header's ``count_<uid>`` progress counters (which
    suitcase's count thread may or may not have written when a run stops)."""
    header = {
        h["run_id"]: {k: v for k, v in h.items() if k != "_id" and not k.startswith("count_")}
        for h in db.header.find()
    }
    events = sorted(
        ({k: v for k, v in p.items() if k not in ("_id", "size")} for p in db.event.find()),
        key=lambda p: (p["descriptor"], p["first_index"]),
    )
    # datums as rows: suitcase writes a datum_page at once but queues single datums for its
    # writer thread, so the order of datums within its pages depends on timing
    datums = sorted(
        (p["resource"], datum)
        for p in db.datum.find()
        for datum in event_model.unpack_datum_page(p)
        for datum in [(datum["datum_id"], sorted(datum["datum_kwargs"].items()))]
    )
    return header, {"event": events, "datum": datums}


def test_our_writer_stores_what_suitcase_mongo_stores(database_uri, runs):
    client = pymongo.MongoClient(database_uri().rsplit("/", 1)[0])
    theirs, ours = client[f"t-{uuid.uuid4().hex[:12]}"], client[f"o-{uuid.uuid4().hex[:12]}"]
    try:
        for docs in runs.values():
            _suitcase(theirs, docs)
        write_embedded(ours, [doc for docs in runs.values() for doc in docs])
        (their_headers, their_pages), (our_headers, our_pages) = _stored(theirs), _stored(ours)
        assert their_headers.keys() == our_headers.keys() and len(our_headers) == len(runs)
        for uid, header in their_headers.items():
            assert same_document(our_headers[uid], header), uid
        assert len(our_pages["datum"]) >= 1 and len(our_pages["event"]) >= len(runs)
        assert same_document(our_pages, their_pages)
        for header in our_headers.values():  # the layout databroker reads
            assert {"run_id", "start", "stop", "descriptors", "event_count"} <= header.keys()
            assert header["start"][0]["uid"] == header["run_id"]
    finally:
        client.drop_database(theirs.name)
        client.drop_database(ours.name)
        client.close()


def test_runs_read_back_as_written(embedded):
    uri, runs = embedded
    cat = MongoEmbeddedCatalog(uri)
    reference = _reference(runs)
    assert len(cat) == len(runs) == 9
    assert list(cat) == list(reference)  # newest first, as every catalog
    for label, docs in runs.items():
        uid = docs[0][1]["uid"]
        run = cat[uid]
        assert same_document(run.start, docs[0][1]) and same_document(run.stop, docs[-1][1])
        assert_same_documents(_in_order(run.documents()), _in_order(reference[uid].documents()))
        assert list(run) == list(reference[uid]), label
        for stream in run if label != "factory_assets" else ():  # (filled in the next test)
            got, expected = run[stream].read(), reference[uid][stream].read()
            assert set(got.variables) == set(expected.variables), label
            for key in expected.variables:
                np.testing.assert_array_equal(got[key].values, expected[key].values)
    assert cat[3].start["scan_id"] == 3 and cat[-1].uid == reference[-1].uid
    with pytest.raises(IndexError):
        cat[-(len(runs) + 1)]
    assert [r.uid for r in cat.search({"plan_name": "count"}).values()] == [
        r.uid for r in reference.search({"plan_name": "count"}).values()
    ]
    stats = cat.stats()
    assert stats["collections"] >= 3 and stats["objects"] > len(runs)
    cat.store.close()


def test_external_assets_are_filled_through_the_handler_registry(database_uri, tmp_path):
    """An NPY_SEQ resource and its datums (stored in the header and the ``datum``
    collection) resolve through ``handler_registry`` and ``root_map``, as databroker did."""
    docs = [
        (n, d) for n, d in factories.asset_run() if n not in ("stream_resource", "stream_datum")
    ]
    frames = np.arange(12.0).reshape(3, 2, 2)
    for i, frame in enumerate(frames):
        np.save(tmp_path / f"frames_{i}.npy", frame)
    uri = database_uri()
    client = pymongo.MongoClient(uri)
    write_embedded(client.get_database(), docs)
    client.close()

    class NpySeq:
        def __init__(self, path, **kwargs):
            self.path = path

        def __call__(self, index):
            return np.load(f"{self.path}_{index}.npy")

    cat = MongoEmbeddedCatalog(
        uri, handler_registry={"NPY_SEQ": NpySeq}, root_map={"/data": str(tmp_path)}
    )
    data = cat[-1].primary.read()
    np.testing.assert_array_equal(data["frame"].values, frames)
    np.testing.assert_array_equal(data["det"].values, [0.0, 1.0, 2.0])
    cat.store.close()


def test_read_only_and_missing_runs(embedded):
    uri, runs = embedded
    store = EmbeddedMongoStore(uri, server_selection_timeout=3, cached_runs=2)
    copy = pickle.loads(pickle.dumps(store))  # as dask / a process pool sends it
    assert (copy.timeout, copy.cached_runs, copy.count()) == (3.0, 2, len(runs))
    copy.close()
    with pytest.raises(TypeError, match="URI"):
        pickle.dumps(EmbeddedMongoStore(store._db))
    with pytest.raises(ReadOnlyStore, match="read-only"):
        store.insert("start", {"uid": "x", "time": 0.0})
    with pytest.raises(RunNotFound, match="not-a-run"):
        store.run("not-a-run")
    with pytest.raises(KeyError):
        MongoEmbeddedCatalog(store._db)["not-a-run"]
    store.close()


def test_transforms_patch_documents_as_they_are_read(embedded):
    uri, runs = embedded

    def start(doc):
        return {**doc, "patched": True}

    cat = MongoEmbeddedCatalog(uri, transforms={"start": start})
    assert all(cat[uid].start["patched"] for uid in cat)
    uid = runs["factory_assets"][0][1]["uid"]
    assert [name for name, _ in cat[uid].documents()][:2] == ["start", "resource"]
    cat.store.close()


def test_yaml_entry_with_databrokers_arguments(embedded, tmp_path):
    uri, runs = embedded
    path = tmp_path / "old.yml"
    path.write_text(
        textwrap.dedent(f"""
        sources:
          old:
            driver: intake_broker_mongo.MongoEmbeddedCatalog
            args:
              datastore_db: {uri}
        """)
    )
    cat = intake.open_catalog(str(path))["old"]
    assert isinstance(cat, MongoEmbeddedCatalog) and len(cat) == len(runs)
    cat.store.close()


def test_the_driver_is_registered_in_the_package_metadata():
    """(intake finds it by name once the package is installed again.)"""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    drivers = pyproject["project"]["entry-points"]["intake.drivers"]
    assert drivers["bluesky-mongo-embedded-catalog"] == "intake_broker_mongo:MongoEmbeddedCatalog"


class _WrittenEmbedded(EmbeddedMongoStore):
    """The read-only store, with ``insert`` going through the embedded writer (test only)."""

    def insert(self, name, doc):
        self._writer(name, doc)


class TestEmbeddedQueries(QueryTests):
    """The query suite on the embedded layout (answered by the generic evaluator over the
    headers' start and stop documents)."""

    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls, mongo_server):
        name = f"test-embedded-queries-{uuid.uuid4().hex[:12]}"
        store = _WrittenEmbedded(f"{mongo_server}/{name}")
        store._writer = EmbeddedWriter(store._db)
        yield store
        store.close()
        pymongo.MongoClient(mongo_server).drop_database(name)


def test_bad_locations_say_what_is_wrong():
    from intake_broker_mongo import MongoConfigurationError, MongoConnectionError

    with pytest.raises(MongoConfigurationError, match="database"):
        MongoEmbeddedCatalog("mongodb://127.0.0.1:1")  # no database name in the URI
    store = EmbeddedMongoStore("mongodb://127.0.0.1:1/embedded", server_selection_timeout=0.3)
    with pytest.raises(MongoConnectionError, match="cannot reach MongoDB"):
        store.count()
    store.close()
