"""Broken files and refused documents: clear errors that name the file and the place, and the
other runs still list and read."""

from __future__ import annotations

import io
import json
import warnings

import msgpack
import pytest

from intake_broker.errors import CorruptFile, DocumentConflict, InvalidDocument
from intake_broker.testing import factories, insert_all
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_files import CorruptFileWarning, FilesStore


def _folder(tmp_path, fmt, n_good=2):
    """``n_good`` good runs and one more run, ``victim``, whose file a test breaks."""
    store = FilesStore(str(tmp_path / f"*.{fmt}"), format=fmt)
    good = [
        factories.scalar_run(n=3, time=1_600_000_000 + 100 * i, scan_id=i + 1)
        for i in range(n_good)
    ]
    victim = factories.scalar_run(n=3, time=1_700_000_000, scan_id=99)
    for docs in [*good, victim]:
        insert_all(store, docs)
    store.close()
    path = tmp_path / f"{victim[0][1]['uid']}.{fmt}"
    return good, victim, path


def _fresh(tmp_path, fmt):
    return FilesStore(str(tmp_path / f"*.{fmt}"), format=fmt)


def _others_still_work(store, good):
    for docs in good:
        uid = docs[0][1]["uid"]
        assert store.run(uid).uid == uid
        assert [n for n, _ in store.documents(uid)][-1] == "stop"
    catalog = BrokerCatalog(store)
    for docs in good:
        run = catalog[docs[0][1]["scan_id"]]
        assert run.primary.read()["det"].shape == (3,)


def _listed_with_warning(store, path):
    with pytest.warns(CorruptFileWarning, match=path.name):
        listed = [r.uid for r in store.runs()]
    return listed


# -- JSONL ---------------------------------------------------------------------------------


def test_truncated_jsonl_file(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    data = path.read_bytes()
    path.write_bytes(data[:-25])  # the writer died in the middle of the stop line
    lines = data[:-25].count(b"\n") + 1
    store = _fresh(tmp_path, "jsonl")
    listed = _listed_with_warning(store, path)
    assert victim[0][1]["uid"] not in listed and len(listed) == len(good)
    assert store.count() == len(good)
    with pytest.raises(CorruptFile, match=rf"{path.name}: line {lines}: .*cut short"):
        store.run(victim[0][1]["uid"])
    with pytest.raises(CorruptFile, match=rf"{path.name}: line {lines}"):
        list(store.documents(victim[0][1]["uid"]))
    _others_still_work(store, good)


def test_jsonl_file_cut_after_a_complete_line_is_an_incomplete_run(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # a crash between two documents: no stop yet
    store = _fresh(tmp_path, "jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptFileWarning)
        assert store.count() == len(good) + 1
    record = store.run(victim[0][1]["uid"])
    assert not record.complete


def test_non_json_line(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b"this is not json\n"
    path.write_bytes(b"".join(lines))
    store = _fresh(tmp_path, "jsonl")
    # the index reads only the first and last lines, so the run is listed ...
    assert victim[0][1]["uid"] in [r.uid for r in store.runs()]
    # ... and reading its contents says exactly what is wrong
    with pytest.raises(
        CorruptFile,
        match=rf"{path.name}: line 4: the line is not JSON "
        r"\(Expecting value at column 1\); expected one JSON",
    ):
        store.descriptors(victim[0][1]["uid"])
    _others_still_work(store, good)


def test_line_that_is_an_object_not_a_pair(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    name, start = json.loads(lines[0])
    lines[0] = (json.dumps({name: start}) + "\n").encode()
    path.write_bytes(b"".join(lines))
    store = _fresh(tmp_path, "jsonl")
    assert len(_listed_with_warning(store, path)) == len(good)
    with pytest.raises(
        CorruptFile,
        match=rf"{path.name}: line 1: found an object/map with "
        r"keys \['start'\]; expected a \[name, document\]",
    ):
        store.run(victim[0][1]["uid"])  # found by its file name, which is its uid
    _others_still_work(store, good)


def test_pair_with_unknown_name_or_non_dict_document(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'["evnet", {}]\n'
    lines[3] = b'["event", [1, 2]]\n'
    path.write_bytes(b"".join(lines))
    store = _fresh(tmp_path, "jsonl")
    with pytest.raises(CorruptFile, match=r"line 3: unknown document name 'evnet'"):
        list(store.documents(victim[0][1]["uid"]))
    lines[2] = json.dumps(["descriptor", factories.scalar_run()[1][1]]).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    store = _fresh(tmp_path, "jsonl")
    with pytest.raises(CorruptFile, match=r"line 3: descriptor document .* belongs to run"):
        list(store.documents(victim[0][1]["uid"]))
    _others_still_work(store, good)


def test_event_of_a_descriptor_missing_from_the_file(tmp_path):
    good, victim, path = _folder(tmp_path, "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[2]  # the first descriptor (baseline); its first event is on line 4 now
    path.write_bytes(b"".join(lines))
    store = _fresh(tmp_path, "jsonl")
    with pytest.raises(
        CorruptFile,
        match=r"line 4: event_page document .* refers to "
        r"descriptor .* insert the descriptor first",
    ):
        store.descriptors(victim[0][1]["uid"])
    _others_still_work(store, good)


def test_empty_file_is_skipped(tmp_path):
    good, _, _ = _folder(tmp_path, "jsonl")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    store = _fresh(tmp_path, "jsonl")
    with pytest.warns(CorruptFileWarning, match=r"empty.jsonl.*the file is empty"):
        assert store.count() == len(good) + 1


# -- msgpack -------------------------------------------------------------------------------


def test_truncated_msgpack_file(tmp_path):
    good, victim, path = _folder(tmp_path, "msgpack")
    data = path.read_bytes()
    objects = list(msgpack.Unpacker(io.BytesIO(data)))
    path.write_bytes(data[:-10])
    store = _fresh(tmp_path, "msgpack")
    assert len(_listed_with_warning(store, path)) == len(good)
    last = len(objects) - 1
    with pytest.raises(
        CorruptFile,
        match=rf"{path.name}: object {last} \(byte offset \d+\): "
        r"the file ends in the middle of this object",
    ):
        store.run(victim[0][1]["uid"])
    _others_still_work(store, good)


def test_msgpack_garbage_and_non_pairs(tmp_path):
    good, victim, path = _folder(tmp_path, "msgpack")
    data = path.read_bytes()
    path.write_bytes(data + msgpack.packb({"not": "a pair"}))
    store = _fresh(tmp_path, "msgpack")
    assert len(_listed_with_warning(store, path)) == len(good)
    with pytest.raises(
        CorruptFile,
        match=rf"object \d+ \(byte offset {len(data)}\): found an "
        r"object/map with keys \['not'\]",
    ):
        store.run(victim[0][1]["uid"])
    path.write_bytes(b"\xc1" + data)  # 0xc1 is never used by msgpack
    store = _fresh(tmp_path, "msgpack")
    assert len(_listed_with_warning(store, path)) == len(good)
    with pytest.raises(
        CorruptFile,
        match=r"object 0 \(byte offset 0\): the bytes are not "
        r"msgpack",
    ):
        store.run(victim[0][1]["uid"])
    _others_still_work(store, good)


# -- refused inserts leave the file unchanged ----------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_refused_inserts_leave_the_file_unchanged(tmp_path, fmt):
    store = FilesStore(str(tmp_path / f"*.{fmt}"), format=fmt)
    docs = factories.scalar_run(n=3, stop=False)
    insert_all(store, docs)
    path = tmp_path / f"{docs[0][1]['uid']}.{fmt}"
    before = path.read_bytes()
    event = next(d for n, d in docs if n == "event")

    stray = dict(event, uid="stray-event", descriptor="no-such-descriptor")
    with pytest.raises(InvalidDocument, match="no-such-descriptor"):
        store.insert("event", stray)
    bad_descriptor = dict(docs[1][1], uid="new-descriptor")
    del bad_descriptor["data_keys"]
    with pytest.raises(InvalidDocument, match="data_keys"):
        store.insert("descriptor", bad_descriptor)
    bad_event = dict(event, uid="another-event", seq_num="one")
    with pytest.raises(InvalidDocument, match="seq_num"):
        store.insert("event", bad_event)
    with pytest.raises(DocumentConflict, match="time"):
        store.insert("event", dict(event, time=event["time"] + 1))
    wrong_keys = dict(event, uid="wrong-keys", data={"nope": 1}, timestamps={"nope": 1})
    with pytest.raises(InvalidDocument, match="data keys"):
        store.insert("event", wrong_keys)
    with pytest.raises(InvalidDocument, match="'hints.x' is of type object, which JSON cannot"):
        store.insert("descriptor", dict(docs[1][1], uid="unencodable", hints={"x": object()}))
    store.insert("event", event)  # identical: nothing appended
    assert path.read_bytes() == before
    store.insert("stop", factories.scalar_run()[-1][1] | {"run_start": docs[0][1]["uid"]})
    assert path.read_bytes() != before
    assert _fresh(tmp_path, fmt).run(docs[0][1]["uid"]).complete
