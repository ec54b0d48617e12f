"""FilesStore behaviour beyond the conformance suite: a lazy index, refreshing, pickling,
crash safety, S3 visibility, msgpack-numpy files, entry points."""

from __future__ import annotations

import json
import pickle
import threading
import uuid
import warnings
from importlib.metadata import entry_points

import msgpack
import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from intake_broker.errors import CorruptFile, RunNotFound
from intake_broker.testing import assert_same_documents, factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_files import (
    CorruptFileWarning,
    FilesStore,
    JSONLCatalog,
    JSONLFormat,
    JSONLStore,
    MsgpackFormat,
    MsgpackStore,
)
from intake_broker_files.formats import decode_msgpack_numpy


def _stop(docs):
    return {
        "uid": str(uuid.uuid4()),
        "time": docs[-1][1]["time"] + 1,
        "exit_status": "success",
        "run_start": docs[0][1]["uid"],
        "reason": "",
        "num_events": {},
    }


def _runs(store, count, n=3, **kwargs):
    runs = [
        factories.scalar_run(n=n, time=1_600_000_000 + 60 * i, scan_id=i + 1, **kwargs)
        for i in range(count)
    ]
    for docs in runs:
        insert_all(store, docs)
    return runs


# -- the index reads only the ends of files ------------------------------------------------


@pytest.fixture(scope="module")
def big_runs():
    return [
        factories.scalar_run(n=5000, page=True, time=1_600_000_000 + 60 * i, scan_id=i + 1)
        for i in range(3)
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_listing_reads_only_the_ends_of_files(tmp_path, monkeypatch, fmt, big_runs):
    writer = FilesStore(str(tmp_path / f"*.{fmt}"), format=fmt, validate=False)
    runs = big_runs
    for docs in runs:
        insert_all(writer, docs)
    writer.close()
    total = sum(p.stat().st_size for p in tmp_path.glob(f"*.{fmt}"))
    parsed: list[str] = []
    cls = JSONLFormat if fmt == "jsonl" else MsgpackFormat
    original = cls.parse_file
    monkeypatch.setattr(
        cls, "parse_file", lambda self, fs, path: (parsed.append(path), original(self, fs, path))[1]
    )
    read = []
    original_cat = LocalFileSystem.cat_file
    monkeypatch.setattr(
        LocalFileSystem,
        "cat_file",
        lambda self, path, start=None, end=None, **kw: (lambda b: (read.append(len(b)), b)[1])(
            original_cat(self, path, start=start, end=end, **kw)
        ),
    )

    catalog = BrokerCatalog(FilesStore(str(tmp_path / f"*.{fmt}"), format=fmt))
    assert len(catalog) == 3 and list(catalog)[0] == runs[-1][0][1]["uid"]
    assert catalog[2].metadata["stop"]["run_start"] == runs[1][0][1]["uid"]
    assert len(catalog.search({"scan_id": {"$gt": 1}})) == 2
    assert parsed == []  # no file was parsed in full
    if fmt == "jsonl":
        assert sum(read) < total / 2
    catalog[-1].primary.read()
    catalog[-1].primary.read()
    list(catalog[-1].documents())
    assert len(parsed) == 1  # one file, parsed once (then cached)


def test_summary_searches_read_each_finished_file_once(tmp_path, monkeypatch):
    from intake_broker.queries import Comparison

    runs = _runs(FilesStore(str(tmp_path)), 4, n=3)
    acquiring = factories.scalar_run(n=2, stop=False, time=1_900_000_000)
    insert_all(FilesStore(str(tmp_path)), acquiring)
    reader = FilesStore(str(tmp_path), refresh_interval=0, cache_size=1)
    parsed: list[str] = []
    original = JSONLFormat.parse_file

    def parse(self, fs, path):
        parsed.append(path)
        return original(self, fs, path)

    monkeypatch.setattr(JSONLFormat, "parse_file", parse)
    query = Comparison("gt", "summary.primary.motor.count", 0)
    first = [r.uid for r in reader.runs(query)]
    assert len(first) == 5 and len(parsed) == 5
    assert [r.uid for r in reader.runs(query)] == first
    assert len(parsed) == 5  # the same question of an unchanged folder: the answer was kept
    assert [r.uid for r in reader.runs(Comparison("ge", "summary.primary.motor.count", 1))] == first
    # the finished runs' summaries were kept; the acquiring run's may be read again
    assert set(parsed[5:]) <= {str(tmp_path / f"{acquiring[0][1]['uid']}.jsonl")}
    changed = reader.summary(runs[0][0][1]["uid"])
    changed["primary"]["motor"]["count"] = -1  # a copy: what is kept is not changed
    assert reader.summary(runs[0][0][1]["uid"])["primary"]["motor"]["count"] == 3
    # a file rewritten (another version of the run) is summarized again
    path = tmp_path / f"{runs[0][0][1]['uid']}.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if '"event' not in line) + "\n")
    assert runs[0][0][1]["uid"] not in [r.uid for r in reader.runs(query)]


def test_grown_and_new_files_are_seen_after_the_refresh_interval(tmp_path):
    writer = FilesStore(str(tmp_path / "*.msgpack"), format="msgpack")
    first = factories.scalar_run(n=2, stop=False)
    insert_all(writer, first)
    reader = FilesStore(str(tmp_path / "*.msgpack"), format="msgpack", refresh_interval=3600)
    assert [r.complete for r in reader.runs()] == [False]
    second = factories.scalar_run(n=2, time=1_800_000_000)
    insert_all(writer, second)
    writer.insert("stop", _stop(first))
    assert reader.count() == 1  # within the refresh interval nothing is re-globbed
    assert reader.run(second[0][1]["uid"]).complete  # but a run is found by its file name
    reader.refresh_interval = reader._index.refresh_interval = 0
    assert reader.count() == 2
    assert all(r.complete for r in reader.runs())
    (tmp_path / f"{first[0][1]['uid']}.msgpack").unlink()
    assert [r.uid for r in reader.runs()] == [second[0][1]["uid"]]
    with pytest.raises(RunNotFound):
        reader.run(first[0][1]["uid"])


def test_a_file_removed_after_listing(tmp_path):
    docs = _runs(FilesStore(str(tmp_path)), 1)[0]
    reader = FilesStore(str(tmp_path), refresh_interval=3600)
    assert reader.count() == 1
    (tmp_path / f"{docs[0][1]['uid']}.jsonl").unlink()
    with pytest.raises(RunNotFound, match="which is gone"):
        reader.descriptors(docs[0][1]["uid"])
    with pytest.raises(RunNotFound):
        reader.run(docs[0][1]["uid"])


def test_growing_msgpack_file_is_skipped_from_where_it_was(tmp_path):
    writer = FilesStore(str(tmp_path / "*.msgpack"), format="msgpack")
    docs = factories.scalar_run(n=50)
    insert_all(writer, docs[:-1])
    reader = FilesStore(str(tmp_path / "*.msgpack"), format="msgpack", refresh_interval=0)
    assert reader.count() == 1
    (entry,) = reader._index.entries.values()
    assert entry.resume is not None and entry.resume[1] == len(docs) - 2
    writer.insert(*docs[-1])
    assert reader.runs()[0].complete
    (entry,) = reader._index.entries.values()
    assert entry.resume[1] == len(docs) - 1


def test_run_by_uid_needs_no_glob(tmp_path, monkeypatch):
    writer = FilesStore(str(tmp_path / "*.jsonl"))
    docs = _runs(writer, 2)[1]
    reader = FilesStore(str(tmp_path / "*.jsonl"))

    def no_glob(*args, **kwargs):
        raise AssertionError("globbed")

    monkeypatch.setattr(LocalFileSystem, "glob", no_glob)
    assert reader.run(docs[0][1]["uid"]).stop == docs[-1][1]
    assert_same_documents(list(reader.documents(docs[0][1]["uid"])), docs)


def test_paths_may_be_a_directory_or_a_file(tmp_path):
    writer = FilesStore(str(tmp_path))  # a directory: every *.jsonl in it, written there
    runs = _runs(writer, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{d[0][1]['uid']}.jsonl" for d in runs
    )
    assert FilesStore(str(tmp_path)).count() == 2
    one = FilesStore(str(tmp_path / f"{runs[0][0][1]['uid']}.jsonl"))
    assert [r.uid for r in one.runs()] == [runs[0][0][1]["uid"]]


def test_directory_argument_is_written_and_read(tmp_path):
    (tmp_path / "old").mkdir()
    old = factories.scalar_run(n=1)
    insert_all(FilesStore(str(tmp_path / "old")), old)
    store = FilesStore([str(tmp_path / "old" / "*.jsonl")], directory=str(tmp_path / "new"))
    new = factories.scalar_run(n=1, time=1_800_000_000)
    insert_all(store, new)
    assert (tmp_path / "new" / f"{new[0][1]['uid']}.jsonl").exists()
    again = FilesStore([str(tmp_path / "old" / "*.jsonl")], directory=str(tmp_path / "new"))
    assert {r.uid for r in again.runs()} == {old[0][1]["uid"], new[0][1]["uid"]}


# -- writing -------------------------------------------------------------------------------


def test_a_crashed_local_writer_leaves_a_readable_partial_run(tmp_path):
    store = FilesStore(str(tmp_path / "*.jsonl"))
    docs = factories.scalar_run(n=5)
    path = tmp_path / f"{docs[0][1]['uid']}.jsonl"
    for i, (name, doc) in enumerate(docs[:-1]):
        store.insert(name, doc)
        # every document is on disk as soon as insert returns
        assert len(path.read_bytes().splitlines()) == i + 1
    reader = FilesStore(str(tmp_path / "*.jsonl"))
    (record,) = reader.runs()
    assert not record.complete
    assert BrokerCatalog(reader)[-1].primary.read()["det"].shape == (5,)


def test_numpy_values_are_written_as_plain_lists(tmp_path):
    store = FilesStore(str(tmp_path / "*.jsonl"))
    docs = factories.image_run(n=2)
    insert_all(store, docs)
    lines = (tmp_path / f"{docs[0][1]['uid']}.jsonl").read_text().splitlines()
    name, page = json.loads(lines[2])
    assert name == "event_page"
    np.testing.assert_array_equal(page["data"]["image"][0], docs[2][1]["data"]["image"])


def test_a_document_after_the_stop_keeps_the_stop_last(tmp_path):
    store = FilesStore(str(tmp_path / "*.jsonl"))
    docs = factories.scalar_run(n=2)
    insert_all(store, docs)
    extra = factories.scalar_run(n=1)[2][1] | {
        "run_start": docs[0][1]["uid"],
        "uid": str(uuid.uuid4()),
    }
    store.insert("descriptor", extra)
    lines = (tmp_path / f"{docs[0][1]['uid']}.jsonl").read_text().splitlines()
    assert [json.loads(x)[0] for x in lines[-2:]] == ["descriptor", "stop"]
    assert FilesStore(str(tmp_path / "*.jsonl")).runs()[0].complete
    assert not list(tmp_path.glob("*.tmp"))


def test_concurrent_reads_of_one_store(tmp_path):
    store = FilesStore(str(tmp_path / "*.jsonl"))
    runs = _runs(store, 4, n=50)
    catalog = BrokerCatalog(FilesStore(str(tmp_path / "*.jsonl"), cache_size=2))
    errors = []

    def read(docs):
        try:
            ds = catalog[docs[0][1]["uid"]].primary.read()
            assert ds.sizes["time"] == 50
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=read, args=(docs,)) for docs in runs * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_memory_filesystem(tmp_path):
    root = f"memory://intake-broker-files-{uuid.uuid4().hex}"
    store = FilesStore(f"{root}/*.msgpack", format="msgpack")
    docs = factories.scalar_run(n=3)
    insert_all(store, docs)
    reader = FilesStore(f"{root}/*.msgpack", format="msgpack")
    assert_same_documents(list(reader.documents(docs[0][1]["uid"])), docs)


# -- pickling ------------------------------------------------------------------------------


def test_store_pickles_by_its_arguments(tmp_path):
    store = FilesStore(str(tmp_path / "*.jsonl"), refresh_interval=5, chunk_rows=7)
    docs = _runs(store, 2, n=20)[0]
    run = BrokerCatalog(store)[docs[0][1]["uid"]]
    expected = run.primary.read()
    data = pickle.dumps(store)
    assert len(data) < 2000
    clone = pickle.loads(data)
    assert type(clone) is FilesStore and clone.chunk_rows == 7 and clone.refresh_interval == 5
    assert clone._cache == {} and clone._open == {}
    descriptor = next(d for d in store.descriptors(docs[0][1]["uid"]) if d["name"] == "primary")
    # where recently read descriptors live travels along, so a worker opens one file only
    assert clone._owner[descriptor["uid"]] == docs[0][1]["uid"]
    assert [c.rows for c in clone.event_chunks(descriptor["uid"])] == [7, 7, 6]
    assert pickle.loads(pickle.dumps(run)).primary.read().identical(expected)
    for cls in (JSONLStore, MsgpackStore):
        typed = cls(str(tmp_path))
        assert type(pickle.loads(pickle.dumps(typed))) is cls


def test_catalog_pickles(tmp_path):
    catalog = JSONLCatalog(str(tmp_path / "*.jsonl"))
    docs = _runs(catalog.store, 2)[1]
    clone = pickle.loads(pickle.dumps(catalog))
    assert list(clone) == list(catalog)
    assert clone[-1].metadata["start"] == docs[0][1]


# -- msgpack-numpy files -------------------------------------------------------------------


def test_msgpack_numpy_values_decode_without_msgpack_numpy():
    msgpack_numpy = pytest.importorskip("msgpack_numpy")
    values = {
        "f8": np.linspace(0, 1, 6).reshape(2, 3),
        "u2": np.arange(12, dtype="<u2").reshape(3, 4),
        ">i4": np.arange(5, dtype=">i4"),
        "bool": np.array([True, False]),
        "structured": np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "scalar": np.int64(7),
        "float32": np.float32(1.5),
        "complex": 1 + 2j,
        "zero-d": np.array(3.0),
    }
    data = msgpack.packb(["event", values], default=msgpack_numpy.encode, use_bin_type=True)
    name, got = msgpack.unpackb(
        data, raw=False, strict_map_key=False, object_hook=decode_msgpack_numpy
    )
    for key, value in values.items():
        assert np.asarray(got[key]).dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(got[key], value)


def test_pickled_object_arrays_are_refused(tmp_path):
    msgpack_numpy = pytest.importorskip("msgpack_numpy")
    docs = factories.scalar_run(n=1)
    docs[0][1]["weird"] = np.array([{"a": 1}], dtype=object)
    path = tmp_path / f"{docs[0][1]['uid']}.msgpack"
    path.write_bytes(
        b"".join(
            msgpack.packb([n, d], default=msgpack_numpy.encode, use_bin_type=True) for n, d in docs
        )
    )
    store = FilesStore(str(tmp_path / "*.msgpack"), format="msgpack")
    with pytest.warns(CorruptFileWarning):
        assert store.count() == 0
    with pytest.raises(CorruptFile, match="object 0 .*pickle.*does not unpickle"):
        store.run(docs[0][1]["uid"])


# -- S3 --------------------------------------------------------------------------------------


def test_s3_run_is_visible_to_other_readers_at_stop_or_flush(s3_server, s3_prefix):
    options = s3_server["storage_options"]
    writer = FilesStore(f"{s3_prefix}/*.jsonl", storage_options=options)
    reader = FilesStore(f"{s3_prefix}/*.jsonl", storage_options=options, refresh_interval=0)
    docs = factories.scalar_run(n=3)
    insert_all(writer, docs[:-1])
    assert writer.count() == 1 and reader.count() == 0
    writer.flush()
    assert [r.complete for r in reader.runs()] == [False]
    writer.insert(*docs[-1])
    assert [r.complete for r in reader.runs()] == [True]
    assert_same_documents(list(reader.documents(docs[0][1]["uid"])), docs)


def test_s3_endpoint_url_as_a_top_level_storage_option(s3_server, s3_prefix):
    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_server["endpoint_url"]}
    store = FilesStore(f"{s3_prefix}/*.msgpack", format="msgpack", storage_options=options)
    docs = factories.image_run()
    insert_all(store, docs)
    reader = FilesStore(f"{s3_prefix}/*.msgpack", format="msgpack", storage_options=options)
    ds = BrokerCatalog(reader)[-1].primary.read()
    np.testing.assert_array_equal(ds["image"][1].values, docs[3][1]["data"]["image"])


def test_s3_through_a_yaml_catalog(s3_server, s3_prefix, tmp_path):
    import intake

    options = s3_server["storage_options"]
    docs = factories.scalar_run(n=3)
    insert_all(FilesStore(f"{s3_prefix}/*.jsonl", storage_options=options), docs)
    yaml = tmp_path / "s3.yml"
    yaml.write_text(
        "sources:\n  bucket:\n    driver: bluesky-jsonl-catalog\n    args:\n"
        f"      paths: ['{s3_prefix}/*.jsonl']\n"
        f"      storage_options: {json.dumps(options)}\n"
    )
    catalog = intake.open_catalog(str(yaml))["bucket"]
    assert catalog[-1].primary.read()["det"].values.tolist() == [
        d["data"]["det"] for n, d in docs if n == "event" and d["descriptor"] == docs[2][1]["uid"]
    ]


# -- registration --------------------------------------------------------------------------


def test_entry_points():
    drivers = {ep.name: ep for ep in entry_points(group="intake.drivers")}
    assert drivers["bluesky-jsonl-catalog"].load() is JSONLCatalog
    stores = {
        ep.name: ep.load()
        for ep in entry_points(group="intake_broker.stores")
        if ep.name in ("jsonl", "msgpack")
    }
    assert stores == {"jsonl": JSONLStore, "msgpack": MsgpackStore}
    # as the core's registry calls them
    assert MsgpackStore(paths=["/tmp/x/*.msgpack"], format="msgpack").file_format.name == "msgpack"
    with pytest.raises(ValueError, match="reads 'jsonl' files, not 'msgpack'"):
        JSONLStore("/tmp/x", format="msgpack")


def test_duplicate_run_files_are_listed_once(tmp_path):
    docs = factories.scalar_run(n=1)
    insert_all(FilesStore(str(tmp_path)), docs)
    original = tmp_path / f"{docs[0][1]['uid']}.jsonl"
    (tmp_path / "copy.jsonl").write_bytes(original.read_bytes())
    store = FilesStore(str(tmp_path))
    with pytest.warns(CorruptFileWarning, match="copy.jsonl holds run"):
        assert store.count() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.count() == 1  # warned once


# -- events read from a file are packed into pages as they are read -----------------------


def _event_file(tmp_path, docs, fmt):
    encode = FilesStore(str(tmp_path), format=fmt).file_format.encode
    path = tmp_path / f"{docs[0][1]['uid']}.{fmt}"
    path.write_bytes(b"".join(encode(n, d) for n, d in docs))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_one_event_per_line_reads_as_written(tmp_path, fmt):
    """suitcase files hold one ``event`` per line: 2,500 primary events (more than a page)
    interleaved with baseline events, one event written twice (a re-insert: kept once)."""
    docs = factories.scalar_run(n=2500, time=1_600_000_000)
    events = [i for i, (n, _) in enumerate(docs) if n == "event"]
    (primary_uid,) = [d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "primary"]
    # a baseline event in the middle of the primary ones, and an event repeated
    baseline = next(i for i in events if docs[i][1]["descriptor"] != primary_uid)
    moved = docs.pop(baseline)
    docs.insert(events[len(events) // 2], moved)
    middle = docs[events[len(events) // 3]]
    written = [*docs[:-1], middle, docs[-1]]
    _event_file(tmp_path, written, fmt)
    run = BrokerCatalog(FilesStore(str(tmp_path), format=fmt))[docs[0][1]["uid"]]
    assert_same_documents(list(run.documents()), docs)
    primary = [d for n, d in docs if n == "event" and d["descriptor"] == primary_uid]
    assert len(primary) == 2500
    data = run.primary.read()
    np.testing.assert_array_equal(data["motor"].values, [e["data"]["motor"] for e in primary])
    np.testing.assert_array_equal(data["time"].values, [e["time"] for e in primary])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e["data"].pop("motor"), "does not match the data keys"),
        (lambda e: e.pop("seq_num"), "lacks the field 'seq_num'"),
        (lambda e: e.update(descriptor="nowhere"), "refers to descriptor 'nowhere'"),
    ],
)
def test_a_bad_event_among_many_is_named_by_its_line(tmp_path, change, problem):
    docs = factories.scalar_run(n=50, time=1_600_000_000)
    at = [i for i, (n, _) in enumerate(docs) if n == "event"][30]
    bad = json.loads(json.dumps(docs[at][1]))
    change(bad)
    docs[at] = ("event", bad)
    path = _event_file(tmp_path, docs, "jsonl")
    store = FilesStore(str(tmp_path))
    with pytest.raises(CorruptFile, match=f"{path.name}: line {at + 1}: .*{problem}"):
        store.descriptors(docs[0][1]["uid"])
