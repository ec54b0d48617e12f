"""The raw-BSON column decoder against ``bson.decode_all``: the same values, typed alike."""

from __future__ import annotations

import datetime
import random
import uuid

import bson
import numpy as np
import pytest

from intake_broker.store.documents import same_document
from intake_broker_mongo.bsoncolumns import decode_columns, split_documents

PATHS = [
    ("seq_num",),
    ("time",),
    ("uid",),
    ("_id",),
    ("data", "a"),
    ("data", "b"),
    ("data", "c"),
    ("timestamps", "a"),
    ("missing",),
    ("data", "a", "deeper"),
]


def _lookup(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def assert_decodes_like_bson(docs, paths=PATHS):
    raw = b"".join(bson.encode(d) for d in docs)
    n, columns = decode_columns([raw[: len(raw) // 3], raw[len(raw) // 3 :]], paths)
    decoded = bson.decode_all(raw)
    assert n == len(docs)
    for path in paths:
        column = columns[path]
        assert len(column) == n
        for got, want in zip(column, (_lookup(d, path) for d in decoded), strict=True):
            if isinstance(want, bson.ObjectId):
                got = got if isinstance(got, bson.ObjectId) else bson.ObjectId(bytes(got))
            assert same_document(got, want), (path, got, want)
            if isinstance(want, bool):
                assert isinstance(got, bool | np.bool_)
    return columns


def _event(i, value, uid=None):
    return {
        "_id": bson.ObjectId(),
        "uid": uid or str(uuid.uuid4()),
        "seq_num": i + 1,
        "time": 1.7e9 + i,
        "data": {"a": value, "b": float(i), "c": "x" * (i % 3)},
        "timestamps": {"a": 1.7e9 + i, "b": 1.7e9, "c": 1.7e9},
    }


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_decode_like_bson(seed):
    rng = random.Random(seed)
    kind = rng.choice(["floats", "mixed", "arrays", "odd"])
    values = {
        "floats": lambda: rng.random(),
        "mixed": lambda: rng.choice(
            [1.5, 2, True, False, None, "s" * rng.randint(0, 3), 2**40, float("nan"), -0.0]
        ),
        "arrays": lambda: [[rng.random() for _ in range(3)] for _ in range(rng.choice([2, 11]))],
        "odd": lambda: rng.choice(
            [
                {"deeper": 1},
                [1, "a"],
                [[1], [2, 3]],
                [],
                [True, 1],
                bson.Int64(5),
                datetime.datetime(2026, 1, 1),
                b"bytes",
            ]
        ),
    }[kind]
    docs = [
        _event(i, values(), uid=rng.choice([None, f"u-{i}"])) for i in range(rng.randint(0, 60))
    ]
    for doc in docs:
        if rng.random() < 0.1:
            del doc["data"]["a"]
    assert_decodes_like_bson(docs)


def test_uniform_documents_take_the_fast_path_and_keep_types():
    docs = [_event(i, float(i) / 3, uid=str(uuid.UUID(int=i))) for i in range(1000)]
    columns = assert_decodes_like_bson(docs)
    assert columns[("seq_num",)].dtype == np.int64
    assert columns[("data", "a")].dtype == np.float64
    assert columns[("uid",)].dtype == object and columns[("uid",)][3] == str(uuid.UUID(int=3))
    assert columns[("_id",)].dtype.kind == "V"
    assert columns[("missing",)].tolist() == [None] * 1000


def test_arrays_come_back_stacked():
    frames = [np.arange(12, dtype=float).reshape(3, 4) + i for i in range(5)]
    docs = [{"data": {"img": f.tolist(), "flags": [True, False]}} for f in frames]
    raw = b"".join(bson.encode(d) for d in docs)
    _, columns = decode_columns(raw, [("data", "img"), ("data", "flags")])
    np.testing.assert_array_equal(columns[("data", "img")], np.stack(frames))
    assert columns[("data", "img")].shape == (5, 3, 4)
    assert columns[("data", "flags")].dtype == bool


def test_ints_and_floats_of_one_column_become_floats():
    docs = [{"v": 1}, {"v": 2.5}, {"v": 2**40}]
    _, columns = decode_columns(b"".join(bson.encode(d) for d in docs), [("v",)])
    assert columns[("v",)].dtype == np.float64
    assert columns[("v",)].tolist() == [1.0, 2.5, float(2**40)]


def test_strings_with_nul_bytes_and_unicode_survive():
    docs = [{"s": "a\x00b"}, {"s": "äöü"}, {"s": "日本"}]
    assert_decodes_like_bson(docs, [("s",)])


def test_empty_input_and_malformed_input():
    n, columns = decode_columns([], [("x",)])
    assert n == 0 and len(columns[("x",)]) == 0
    with pytest.raises(ValueError, match="malformed BSON"):
        split_documents(bson.encode({"a": 1})[:-3])
