"""The file layouts on their own: tolerated variations of JSONL, long lines, msgpack ends."""

from __future__ import annotations

import io
import json

import fsspec
import msgpack
import pytest

from intake_broker.errors import CorruptFile
from intake_broker.testing import factories
from intake_broker_files.formats import JSONLFormat, MsgpackFormat, get_format

FS = fsspec.filesystem("file")


def _jsonl(docs, newline=b"\n"):
    return b"".join(json.dumps([n, d]).encode() + newline for n, d in docs)


def _ends(fmt, path):
    size = FS.info(str(path))["size"]
    return fmt.first(FS, str(path), size), fmt.last(FS, str(path), size)[0]


def test_jsonl_blank_lines_crlf_and_no_final_newline(tmp_path):
    docs = factories.scalar_run(n=2)
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"\n\n" + _jsonl(docs, b"\r\n")[:-2] + b"")  # CRLF, no final newline
    fmt = JSONLFormat()
    first, last = _ends(fmt, path)
    assert (first.name, first.where, last.name) == ("start", "line 3", "stop")
    parsed = list(fmt.parse(path.read_bytes(), str(path)))
    assert [p.name for p in parsed] == [n for n, _ in docs]
    path.write_bytes(_jsonl(docs) + b"\n\n  \n")
    assert _ends(fmt, path)[1].name == "stop"


def test_jsonl_lines_longer_than_a_read_block(tmp_path):
    docs = factories.scalar_run(n=1)
    docs[0][1]["notes"] = "x" * 200_000
    docs[-1][1]["reason"] = "y" * 300_000
    path = tmp_path / "run.jsonl"
    path.write_bytes(_jsonl(docs))
    first, last = _ends(JSONLFormat(), path)
    assert first.doc["notes"] == docs[0][1]["notes"] and last.doc == docs[-1][1]


def test_msgpack_single_object_and_growing_file(tmp_path):
    fmt = MsgpackFormat()
    docs = factories.scalar_run(n=3)
    path = tmp_path / "run.msgpack"
    path.write_bytes(fmt.encode(*docs[0]))
    first, last = _ends(fmt, path)
    assert first.name == last.name == "start"
    size = path.stat().st_size
    _, resume = fmt.last(FS, str(path), size)
    assert resume == (0, 0)
    path.write_bytes(b"".join(fmt.encode(n, d) for n, d in docs))
    last, resume = fmt.last(FS, str(path), path.stat().st_size, resume)
    assert last.name == "stop" and resume[1] == len(docs) - 1
    assert last.where == f"object {len(docs) - 1} (byte offset {resume[0]})"


def test_what_we_write_plain_msgpack_reads(tmp_path):
    docs = factories.image_run(n=1)
    data = b"".join(MsgpackFormat().encode(n, d) for n, d in docs)
    pairs = list(msgpack.Unpacker(io.BytesIO(data)))  # default settings
    assert pairs[2][1]["data"]["image"] == docs[2][1]["data"]["image"].tolist()


def test_unknown_format_names_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown file format 'csv'; expected one of jsonl, msgpack"
    ):
        get_format("csv")


def test_jsonl_empty_and_whitespace_files(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"\n \n")
    with pytest.raises(CorruptFile, match="the file is empty"):
        _ends(JSONLFormat(), path)
    with pytest.raises(CorruptFile, match="the file is empty"):
        list(JSONLFormat().parse(path.read_bytes(), str(path)))


def _line_by_line(data: bytes) -> list:
    """What ``JSONLFormat.parse`` gives when every line goes through ``json.loads``."""
    lines = data.split(b"\n")
    return [
        JSONLFormat._loads(line, "run.jsonl", f"line {n}", cut=n == len(lines))
        for n, line in enumerate(lines, 1)
        if line.strip()
    ]


@pytest.mark.parametrize(
    "body",
    [
        b'["event", {}] ["event", {}]\n',  # two values on one line
        b'["event",\n {}]\n',  # one value over two lines
        b'\x0b["event", {}]\n',  # not JSON whitespace
        b'["event", {"x": "\xff"}]\n',  # not UTF-8
        b'["event", {}]\n["stop", {"a": NaN',  # cut short
    ],
)
def test_jsonl_fast_parse_keeps_the_line_by_line_errors(body):
    """A file is decoded once and scanned line by line with json's scanner; anything unusual
    goes through ``json.loads`` per line, so the errors stay the same."""
    data = _jsonl(factories.scalar_run(n=1)[:1]) + body
    with pytest.raises(CorruptFile) as slow:
        _line_by_line(data)
    with pytest.raises(CorruptFile) as fast:
        list(JSONLFormat().parse(data, "run.jsonl"))
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize(
    "body",
    [
        b'["event", {}] ["event", {}]\n',
        b'["event",\n {}]\n',
        b'\x0b["event", {}]\n',
        b'["event", {"x": "\xff"}]\n',
        b'["event", {}]\n["stop", {"a": NaN',
        b'["event", {}]\n\n  \n["stop", {}',
    ],
)
def test_jsonl_parse_file_keeps_the_line_by_line_errors(body, tmp_path):
    """Reading a file line by line (what a store does) reports what ``json.loads`` would."""
    data = _jsonl(factories.scalar_run(n=1)[:1]) + body
    path = tmp_path / "run.jsonl"
    path.write_bytes(data)
    with pytest.raises(CorruptFile) as slow:
        _line_by_line(data)
    with pytest.raises(CorruptFile) as streamed:
        list(JSONLFormat().parse_file(FS, str(path)))
    assert str(streamed.value) == str(slow.value).replace("run.jsonl", str(path))


def test_jsonl_parse_file_equals_parse(tmp_path):
    data = (
        b"\n"
        + _jsonl(factories.scalar_run(n=3), b"\r\n")
        + b'  ["stop", {"x": NaN, "y": "\xc3\xa9", "z": [1e400]}]\t\r\n\n'
    )
    path = tmp_path / "run.jsonl"
    path.write_bytes(data)
    assert repr(list(JSONLFormat().parse_file(FS, str(path)))) == repr(
        list(JSONLFormat().parse(data, str(path)))
    )
    path.write_bytes(b"\n \n")
    with pytest.raises(CorruptFile, match="the file is empty"):
        list(JSONLFormat().parse_file(FS, str(path)))


def test_jsonl_fast_parse_equals_json_loads_per_line():
    data = (
        b"\n"
        + _jsonl(factories.scalar_run(n=3), b"\r\n")
        + b'  ["stop", {"x": NaN, "y": "\xc3\xa9", "z": [1e400]}]\t\r\n\n'
    )
    fast = list(JSONLFormat().parse(data, "run.jsonl"))
    assert repr(fast) == repr(_line_by_line(data))
    assert fast[-1].doc["y"] == "\u00e9" and fast[0].where == "line 2"


@pytest.mark.parametrize("damage", ["none", "cut", "garbage", "pickled"])
def test_msgpack_parse_file_equals_parse(tmp_path, damage):
    fmt = MsgpackFormat()
    data = b"".join(fmt.encode(n, d) for n, d in factories.scalar_run(n=3))
    if damage == "cut":
        data = data[:-5]
    elif damage == "garbage":
        data = data + b"\xc1\xc1"
    elif damage == "pickled":
        data = data + msgpack.packb(
            [
                "event",
                {"x": {b"nd": True, b"kind": b"O", b"type": "|O", b"shape": [1], b"data": b""}},
            ]
        )
    path = tmp_path / "run.msgpack"
    path.write_bytes(data)

    def outcome(items):
        try:
            return repr(list(items))
        except CorruptFile as err:
            return f"CorruptFile: {err}"

    streamed = outcome(fmt.parse_file(FS, str(path)))
    assert streamed == outcome(fmt.parse(data, str(path)))
    assert streamed.startswith("CorruptFile") == (damage != "none")
