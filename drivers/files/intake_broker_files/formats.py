"""The two file layouts of a run: suitcase-jsonl and suitcase-msgpack.

Both keep one run per file as a sequence of ``[name, document]`` pairs, start first:

``jsonl``
    One JSON array per line (``<start uid>.jsonl``), as ``suitcase.jsonl`` writes it; numpy
    values are written as lists and numbers (event-model's ``NumpyEncoder``).
``msgpack``
    A stream of msgpack arrays (``<start uid>.msgpack``), as ``suitcase.msgpack`` writes it.
    Files from suitcase may hold numpy arrays in msgpack-numpy's encoding (a map with ``b"nd"``,
    ``b"type"``, ``b"shape"``, ``b"data"``); they are decoded here without msgpack-numpy. We
    write plain msgpack (numpy values as lists and numbers), so any ``msgpack.Unpacker`` reads
    our files.

A format parses a whole file (:meth:`FileFormat.parse`) and, for the run index, reads only its
first and last document (:meth:`FileFormat.first`, :meth:`FileFormat.last`). Structural
problems raise :class:`~intake_broker.errors.CorruptFile` naming the file and the place.
"""

from __future__ import annotations

import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, NamedTuple

import msgpack
import numpy as np
from event_model import NumpyEncoder
from fsspec.implementations.local import LocalFileSystem

from intake_broker.errors import CorruptFile
from intake_broker.store.documents import DOCUMENT_NAMES

#: Bytes read at a time when looking for the first or last line of a file.
_BLOCK = 1 << 16
_PAIR = 'a [name, document] pair such as ["start", {"uid": ...}]'


class Located(NamedTuple):
    """One ``[name, doc]`` pair of a file and where it was found (for error messages)."""

    name: str
    doc: dict
    where: str


def corrupt(path: str, where: str, problem: str, expected: str) -> CorruptFile:
    """A :class:`CorruptFile` saying which file, where in it, what was found and expected."""
    err = CorruptFile(f"{path}: {where}: {problem}; expected {expected}")
    err.path, err.where = path, where  # type: ignore[attr-defined]
    return err


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        return f"an object/map with keys [{keys}{', ...' if len(obj) > 5 else ''}]"
    if isinstance(obj, list | tuple):
        return f"an array of {len(obj)} items"
    return f"{type(obj).__name__} {str(obj)[:60]!r}"


def as_pair(obj: Any, path: str, where: str) -> Located:
    """Check that a decoded value is a ``[name, document]`` pair with a known name."""
    if not (
        isinstance(obj, list | tuple)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], dict)
    ):
        if isinstance(obj, list | tuple) and len(obj) == 2 and isinstance(obj[0], str):
            raise corrupt(
                path,
                where,
                f"the {obj[0]!r} document is {_describe(obj[1])}",
                "a document that is a JSON object / msgpack map",
            )
        raise corrupt(path, where, f"found {_describe(obj)}", _PAIR)
    if obj[0] not in DOCUMENT_NAMES:
        raise corrupt(
            path, where, f"unknown document name {obj[0]!r}", f"one of {', '.join(DOCUMENT_NAMES)}"
        )
    return Located(obj[0], obj[1], where)


class FileFormat(ABC):
    """How run files of one layout are named, encoded and decoded."""

    #: Short name (``format=`` argument of the store).
    name: str
    #: File name extension, with the dot.
    extension: str

    @abstractmethod
    def encode(self, name: str, doc: dict) -> bytes:
        """One ``[name, doc]`` pair as the bytes to append to a run file.

        Raises ``TypeError`` / ``ValueError`` for values the format cannot hold.
        """

    @abstractmethod
    def parse(self, data: bytes, path: str) -> Iterator[Located]:
        """Every pair of a file's bytes, in file order; raises :class:`CorruptFile`."""

    def parse_file(self, fs: Any, path: str) -> Iterator[Located]:
        """Every pair of a file, in file order, read from ``fs`` (formats that can, read it a
        block at a time, so that memory holds one document, not the whole file)."""
        yield from self.parse(fs.cat_file(path), path)

    @abstractmethod
    def first(self, fs: Any, path: str, size: int) -> Located:
        """The first pair of a file, reading as little of it as possible."""

    @abstractmethod
    def last(
        self, fs: Any, path: str, size: int, resume: tuple[int, int] | None = None
    ) -> tuple[Located, tuple[int, int] | None]:
        """The last pair of a file and a hint to find it faster once the file has grown.

        ``resume`` is a hint returned by an earlier call on a shorter version of the file.
        """


def _empty(path: str) -> CorruptFile:
    return corrupt(
        path, "byte 0", "the file is empty", "a run file that starts with its start document"
    )


# -- JSONL ---------------------------------------------------------------------------------


#: What ``bytes.strip()`` strips (``str.strip()`` would strip more, e.g. U+0085).
_BLANK = " \t\n\r\x0b\x0c"


def _fast_lines(data: bytes) -> list[tuple[int, Any]] | None:
    """``(line number, value)`` of every non-blank line, decoding the file once and scanning
    each line with json's C scanner (about twice as fast as ``json.loads`` per line); None if
    anything is unusual (not UTF-8, a line that is not exactly one JSON value), so that the
    line-by-line path reports it."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, untyped
    out = []
    try:
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip(_BLANK):
                continue
            value = line.strip(" \t\r")  # JSON whitespace (a line has no "\n")
            obj, end = scan(value, 0)
            if end != len(value):
                return None
            out.append((number, obj))
    except (ValueError, StopIteration):
        return None
    return out


class JSONLFormat(FileFormat):
    """``<uid>.jsonl``: one JSON ``[name, doc]`` array per line (suitcase-jsonl)."""

    name = "jsonl"
    extension = ".jsonl"

    def encode(self, name: str, doc: dict) -> bytes:
        return (json.dumps([name, doc], cls=NumpyEncoder) + "\n").encode()

    @staticmethod
    def _loads(line: bytes, path: str, where: str, cut: bool) -> Located:
        try:
            obj = json.loads(line)
        except ValueError as err:
            if cut:
                raise corrupt(
                    path,
                    where,
                    "the file ends in the middle of this line (it was cut "
                    "short, e.g. by a writer that crashed)",
                    f"a complete line holding {_PAIR}",
                ) from None
            detail = (
                f"{err.msg} at column {err.colno}"
                if isinstance(err, json.JSONDecodeError)
                else str(err)
            )
            raise corrupt(
                path, where, f"the line is not JSON ({detail})", f"one JSON array per line, {_PAIR}"
            ) from None
        return as_pair(obj, path, where)

    def parse_file(self, fs: Any, path: str) -> Iterator[Located]:
        """Line by line from the open file: json's C scanner on each line, and the checking
        decoder (which says what is wrong) for any line it does not take."""
        scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__
        seen = False
        with open(path, "rb") if isinstance(fs, LocalFileSystem) else fs.open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                seen = True
                try:
                    value = line.decode().strip(" \t\r\n")
                    obj, end = scan(value, 0)
                    if end == len(value):
                        yield as_pair(obj, path, f"line {number}")
                        continue
                except (ValueError, StopIteration):
                    pass
                cut = not line.endswith(b"\n")
                yield self._loads(line if cut else line[:-1], path, f"line {number}", cut=cut)
        if not seen:
            raise _empty(path)

    def parse(self, data: bytes, path: str) -> Iterator[Located]:
        if not data.strip():
            raise _empty(path)
        values = _fast_lines(data)
        if values is not None:
            for number, obj in values:
                yield as_pair(obj, path, f"line {number}")
            return
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield self._loads(line, path, f"line {number}", cut=number == len(lines))

    def first(self, fs: Any, path: str, size: int) -> Located:
        buf = b""
        block = _BLOCK
        while True:
            chunk = fs.cat_file(path, start=len(buf), end=min(size, len(buf) + block))
            buf += chunk
            at_end = len(buf) >= size or not chunk
            number, offset = 1, 0
            while True:  # the first non-blank line of what we have
                newline = buf.find(b"\n", offset)
                if newline < 0:
                    break
                if buf[offset:newline].strip():
                    return self._loads(buf[offset:newline], path, f"line {number}", cut=False)
                number, offset = number + 1, newline + 1
            if at_end:
                if not buf[offset:].strip():
                    raise _empty(path)
                return self._loads(buf[offset:], path, f"line {number}", cut=True)
            block *= 2

    def last(
        self, fs: Any, path: str, size: int, resume: tuple[int, int] | None = None
    ) -> tuple[Located, None]:
        block = _BLOCK
        while True:
            start = max(0, size - block)
            buf = fs.cat_file(path, start=start, end=size)
            body = buf.rstrip()
            newline = body.rfind(b"\n")
            if newline >= 0 or start == 0:
                break
            block *= 4
        line = body[newline + 1 :]
        if not line.strip():
            raise _empty(path)
        where = f"the last line (at byte offset {start + newline + 1})"
        return self._loads(line, path, where, cut=not buf.endswith(b"\n")), None


# -- msgpack -------------------------------------------------------------------------------


class _PickledArray(ValueError):
    pass


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _numpy_dtype(descr: Any) -> np.dtype:
    if isinstance(descr, list | tuple):  # structured: [(name, type, *shape), ...]
        return np.dtype([(_text(f[0]), _numpy_dtype(f[1]), *f[2:]) for f in descr])
    return np.dtype(_text(descr))


def decode_msgpack_numpy(obj: dict) -> Any:
    """``object_hook`` turning msgpack-numpy's maps back into numpy arrays and scalars.

    Maps of ordinary documents (``str`` keys) pass through untouched.
    """
    if b"nd" not in obj:
        if b"complex" in obj and b"data" in obj:
            return complex(_text(obj[b"data"]))
        return obj
    try:
        kind, data = obj.get(b"kind", b""), obj[b"data"]
        if kind == b"O":
            raise _PickledArray("a numpy object array that msgpack-numpy stored as a pickle")
        dtype = _numpy_dtype(obj[b"type"])
        if obj[b"nd"] is True:
            return np.frombuffer(data, dtype=dtype).reshape(obj[b"shape"])
        return np.frombuffer(data, dtype=dtype)[0]
    except KeyError:
        return obj


_UNPACK = {"raw": False, "strict_map_key": False, "object_hook": decode_msgpack_numpy}


def _plain(obj: Any) -> Any:
    """``default`` for msgpack: numpy (and array-like) values as plain lists and numbers."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"cannot store a {type(obj).__name__} in msgpack: {str(obj)[:60]!r}")


class _Capped(io.RawIOBase):
    """A read-only view of the first ``size`` bytes of a file (ignores bytes appended later)."""

    def __init__(self, file: Any, size: int):
        self._file, self._left = file, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._file.read(n) if n else b""
        self._left -= len(data)
        return data


def _where(index: int | None, offset: int) -> str:
    if index is None:
        return f"the object at byte offset {offset}"
    return f"object {index} (byte offset {offset})"


class MsgpackFormat(FileFormat):
    """``<uid>.msgpack``: a stream of msgpack ``[name, doc]`` arrays (suitcase-msgpack)."""

    name = "msgpack"
    extension = ".msgpack"

    def encode(self, name: str, doc: dict) -> bytes:
        return msgpack.packb([name, doc], default=_plain, use_bin_type=True)

    @staticmethod
    def _fail(path: str, where: str, err: Exception) -> CorruptFile:
        if isinstance(err, _PickledArray):
            return corrupt(
                path,
                where,
                f"it holds {err} (intake-broker does not unpickle data "
                "files: that could run arbitrary code)",
                "numeric numpy arrays or plain msgpack values",
            )
        return corrupt(
            path,
            where,
            f"the bytes are not msgpack ({type(err).__name__}: {err})",
            f"a stream of msgpack arrays, each {_PAIR}",
        )

    @staticmethod
    def _cut(path: str, where: str) -> CorruptFile:
        return corrupt(
            path,
            where,
            "the file ends in the middle of this object (it was cut "
            "short, e.g. by a writer that crashed)",
            f"a complete msgpack {_PAIR}",
        )

    def parse_file(self, fs: Any, path: str) -> Iterator[Located]:
        """Object by object from the open file (read 1 MiB at a time)."""
        local = isinstance(fs, LocalFileSystem)
        with open(path, "rb") if local else fs.open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size if local else int(fs.size(path) or 0)
            if size == 0:
                raise _empty(path)
            unpacker = msgpack.Unpacker(
                file, read_size=1 << 20, max_buffer_size=max(size, 1 << 20), **_UNPACK
            )
            index = offset = 0
            while True:
                where = _where(index, offset)
                try:
                    obj = unpacker.unpack()
                except msgpack.OutOfData:
                    if offset < size:
                        raise self._cut(path, where) from None
                    return
                except Exception as err:  # msgpack raises several types for garbage bytes
                    raise self._fail(path, where, err) from None
                yield as_pair(obj, path, where)
                index, offset = index + 1, unpacker.tell()

    def parse(self, data: bytes, path: str) -> Iterator[Located]:
        if not data:
            raise _empty(path)
        unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1 << 20), **_UNPACK)
        unpacker.feed(data)
        index = offset = 0
        while True:
            where = _where(index, offset)
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                if offset < len(data):
                    raise self._cut(path, where) from None
                return
            except Exception as err:  # msgpack raises several types for garbage bytes
                raise self._fail(path, where, err) from None
            yield as_pair(obj, path, where)
            index, offset = index + 1, unpacker.tell()

    def first(self, fs: Any, path: str, size: int) -> Located:
        if size == 0:
            raise _empty(path)
        with fs.open(path, "rb") as file:
            unpacker = msgpack.Unpacker(
                _Capped(file, size), read_size=_BLOCK, max_buffer_size=max(size, 1 << 20), **_UNPACK
            )
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                raise self._cut(path, _where(0, 0)) from None
            except Exception as err:
                raise self._fail(path, _where(0, 0), err) from None
        return as_pair(obj, path, _where(0, 0))

    def last(
        self, fs: Any, path: str, size: int, resume: tuple[int, int] | None = None
    ) -> tuple[Located, tuple[int, int]]:
        """Skip over every object without building it (``Unpacker.skip``), then decode the
        last one; ``resume`` (byte offset and index of the last object seen before) lets a
        grown file be skipped from there."""
        if size == 0:
            raise _empty(path)
        base, index = resume if resume and resume[0] < size else (0, 0)
        last = (base, index)
        with fs.open(path, "rb") as file:
            if base:
                file.seek(base)
            capped = _Capped(file, size - base)
            unpacker = msgpack.Unpacker(
                capped, read_size=1 << 20, max_buffer_size=max(size, 1 << 20), **_UNPACK
            )
            while True:
                offset = base + unpacker.tell()
                try:
                    unpacker.skip()
                except msgpack.OutOfData:
                    if offset < size:
                        raise self._cut(path, _where(index, offset)) from None
                    break
                except Exception as err:
                    raise self._fail(path, _where(index, offset), err) from None
                last = (offset, index)
                index += 1
        offset, index = last
        where = _where(index, offset)
        try:
            obj = msgpack.unpackb(fs.cat_file(path, start=offset, end=size), **_UNPACK)
        except Exception as err:
            raise self._fail(path, where, err) from None
        return as_pair(obj, path, where), last


FORMATS: dict[str, FileFormat] = {f.name: f for f in (JSONLFormat(), MsgpackFormat())}


def get_format(name: str) -> FileFormat:
    """The format called ``name`` (``"jsonl"`` or ``"msgpack"``)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown file format {name!r}; expected one of {', '.join(sorted(FORMATS))}"
        ) from None
