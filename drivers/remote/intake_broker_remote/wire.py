"""The wire format the server and the remote store share: media types, msgpack / JSON with
numpy values, and the binary *columns* envelope that carries event data.

A columns body is ``b"IBC1"``, a little-endian ``uint32`` header length, a msgpack header, then
the raw (possibly compressed) buffers back to back::

    header = {"rows": 3, "codec": "lz4",
              "columns": [{"group": "data", "key": "det", "dtype": "<f8", "shape": [3],
                           "codec": "lz4", "offset": 0, "nbytes": 17, "size": 24}, ...],
              "objects": [{"group": "uid", "key": null, "shape": [3], "values": [...]}]}

``group`` is one of ``index`` (``seq_num``, ``time``), ``uid``, ``data``, ``timestamps``,
``filled`` or ``array``; object columns (strings kept as Python objects, datum ids, JSON values)
travel as msgpack values in the header. Any msgpack reader can decode it; numpy rebuilds each
column with ``frombuffer`` on the (decompressed) bytes, without a per-value loop.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgpack
import numpy as np

JSON = "application/json"
MSGPACK = "application/x-msgpack"
NDJSON = "application/x-ndjson"
COLUMNS = "application/vnd.intake-broker.columns"
MAGIC = b"IBC1"
#: Codecs in the order a client prefers them by default: fast ones first, then none.
DEFAULT_CODECS: tuple[str, ...] = ("lz4", "blosc", "none")
#: Bytes of a large column compressed first, to see whether compressing it pays.
_SAMPLE = 1 << 16


# -- values ---------------------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot encode a {type(obj).__name__}: {str(obj)[:60]!r}")


def packb(obj: Any) -> bytes:
    """msgpack of ``obj``; numpy arrays become lists and numpy scalars Python numbers."""
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """The value of one msgpack object."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def unpacker() -> msgpack.Unpacker:
    """A streaming msgpack reader (for document streams)."""
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 31)


def dumps(obj: Any) -> bytes:
    """JSON of ``obj`` (numpy values as numbers and lists; NaN and infinities as Python's json
    writes them, which JSON.parse rejects: ask for msgpack when values may be NaN)."""
    return json.dumps(obj, default=_default, separators=(",", ":")).encode()


# -- codecs ---------------------------------------------------------------------------------


def _lz4():
    try:
        import lz4.block
    except ImportError:
        return None
    return lz4.block


def _numcodecs(name: str):
    try:
        import numcodecs
    except ImportError:
        return None
    return getattr(numcodecs, name, None)


def available_codecs() -> list[str]:
    """Codecs this process can encode and decode."""
    found = ["none", "zlib"]
    if _lz4() is not None:
        found.append("lz4")
    if _numcodecs("Blosc") is not None:
        found.append("blosc")
    if _numcodecs("Zstd") is not None:
        found.append("zstd")
    return found


def choose_codec(preferences: Iterable[str]) -> str:
    """The first of ``preferences`` available here (``none`` when none is)."""
    available = available_codecs()
    return next((c for c in preferences if c in available), "none")


def _bytes_of(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array (of any non-object dtype) without a copy."""
    # numpy's stubs give ndarray its __buffer__ only for Python 3.12+
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def compress(codec: str, array: np.ndarray) -> bytes | memoryview:
    """The bytes of a C-contiguous array compressed with ``codec``."""
    view = _bytes_of(array)
    if codec == "none":
        return view
    if codec == "zlib":
        return zlib.compress(view, 1)
    if codec == "lz4":
        return _lz4().compress(view, store_size=False)
    if codec == "blosc":
        blosc = _numcodecs("Blosc")
        typesize = max(1, min(array.dtype.itemsize, 255))
        return blosc(
            cname="lz4", clevel=5, shuffle=blosc.SHUFFLE, typesize=typesize, blocksize=0
        ).encode(view)
    if codec == "zstd":
        return _numcodecs("Zstd")(level=1).encode(view)
    raise ValueError(f"unknown codec {codec!r}; known: {', '.join(available_codecs())}")


def decompress(codec: str, data: memoryview, size: int) -> bytearray | memoryview:
    """``size`` bytes decoded from ``data``, in a writable buffer where the codec allows."""
    if codec == "none":
        return data
    if codec == "zlib":
        return bytearray(zlib.decompress(data))
    if codec == "lz4":
        return _lz4().decompress(data, uncompressed_size=size, return_bytearray=True)
    if codec in ("blosc", "zstd"):
        out = bytearray(size)
        _numcodecs("Blosc" if codec == "blosc" else "Zstd")().decode(data, out=out)
        return out
    raise ValueError(
        f"the server sent codec {codec!r}, which this client cannot decode; "
        f"it has {', '.join(available_codecs())}"
    )


# -- the columns envelope --------------------------------------------------------------------


def _dtype_spec(dtype: np.dtype) -> str | list:
    return dtype.descr if dtype.fields is not None else dtype.str


def _dtype_of(spec: str | list) -> np.dtype:
    if isinstance(spec, str):
        return np.dtype(spec)
    return np.dtype([tuple(field) for field in spec])


def encode_columns(
    columns: Sequence[tuple[str, str | None, np.ndarray]],
    *,
    rows: int,
    codec: str = "none",
    min_ratio: float = 0.95,
) -> bytes:
    """One body holding ``(group, key, array)`` columns (see :func:`column_parts`)."""
    return b"".join(column_parts(columns, rows=rows, codec=codec, min_ratio=min_ratio))


def column_parts(
    columns: Sequence[tuple[str, str | None, np.ndarray]],
    *,
    rows: int,
    codec: str = "none",
    min_ratio: float = 0.95,
) -> list[bytes | memoryview]:
    """The pieces of a columns body, in order, without joining them (a server sends them one
    after another; uncompressed columns stay views of the arrays).

    Numeric, fixed-width string and structured arrays are sent as their bytes compressed with
    ``codec`` (or raw when compressing saves less than ``1 - min_ratio``); object arrays as
    msgpack values.
    """
    specs: list[dict] = []
    objects: list[dict] = []
    buffers: list[bytes | memoryview] = []
    offset = 0
    for group, key, array in columns:
        array = np.asarray(array)
        if array.dtype.hasobject:
            objects.append(
                {"group": group, "key": key, "shape": list(array.shape), "values": array.tolist()}
            )
            continue
        array = np.ascontiguousarray(array)
        used = codec if array.nbytes else "none"
        if used != "none" and array.nbytes > 4 * _SAMPLE:
            # A sample first: incompressible data (noise in float mantissas) is sent raw
            # without spending the time to compress all of it.
            sample = array.reshape(-1)[: max(1, _SAMPLE // max(array.dtype.itemsize, 1))]
            if len(compress(used, sample)) > min_ratio * sample.nbytes:
                used = "none"
        data = compress(used, array)
        if used != "none" and len(data) > min_ratio * array.nbytes:
            used, data = "none", _bytes_of(array)
        specs.append(
            {
                "group": group,
                "key": key,
                "dtype": _dtype_spec(array.dtype),
                "shape": list(array.shape),
                "codec": used,
                "offset": offset,
                "nbytes": len(data),
                "size": array.nbytes,
            }
        )
        buffers.append(data)
        offset += len(data)
    header = packb({"rows": rows, "codec": codec, "columns": specs, "objects": objects})
    return [MAGIC + struct.pack("<I", len(header)) + header, *buffers]


def _object_array(values: list, shape: Sequence[int]) -> np.ndarray:
    if len(shape) == 1:
        return np.fromiter(values, dtype=object, count=shape[0])
    out = np.empty(tuple(shape), dtype=object)
    out[...] = values
    return out


def decode_columns(
    body: bytes | bytearray,
) -> tuple[dict, dict[tuple[str, str | None], np.ndarray]]:
    """The header and the ``{(group, key): array}`` columns of a columns body.

    Arrays of uncompressed columns are views into ``body`` (writable when ``body`` is a
    bytearray); compressed ones get buffers of their own.
    """
    view = memoryview(body)
    if bytes(view[:4]) != MAGIC:
        raise ValueError(f"not an intake-broker columns body (starts {bytes(view[:8])!r})")
    (length,) = struct.unpack("<I", view[4:8])
    header = unpackb(view[8 : 8 + length])
    base = 8 + length
    out: dict[tuple[str, str | None], np.ndarray] = {}
    for spec in header["columns"]:
        start = base + spec["offset"]
        raw = decompress(spec["codec"], view[start : start + spec["nbytes"]], spec["size"])
        dtype = _dtype_of(spec["dtype"])
        out[spec["group"], spec["key"]] = np.frombuffer(raw, dtype=dtype).reshape(spec["shape"])
    for spec in header["objects"]:
        out[spec["group"], spec["key"]] = _object_array(spec["values"], spec["shape"])
    return header, out


#: Where a column of a streamed body goes: ``place(spec, dtype, shape)`` returns a writable
#: C-contiguous array of that dtype and shape to fill, or None for a new one.
Place = Callable[[dict, np.dtype, tuple[int, ...]], "np.ndarray | None"]


def _fill(readinto: Callable[[memoryview], None], target: np.ndarray) -> None:
    if target.nbytes:
        # numpy's stubs give ndarray its __buffer__ only for Python 3.12+
        readinto(memoryview(target.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]


def read_columns(
    readinto: Callable[[memoryview], None], size: int, place: Place | None = None
) -> tuple[dict, dict[tuple[str, str | None], np.ndarray]]:
    """What :func:`decode_columns` gives, read from a body as it arrives.

    ``readinto(view)`` fills ``view`` with the next ``len(view)`` of the body's ``size``
    bytes. Uncompressed columns are received straight into their arrays -- those ``place``
    gives (a slice of a larger array, say) or new ones -- and compressed ones are decoded into
    them, so the body is never held whole.
    """
    prefix = bytearray(8)
    readinto(memoryview(prefix))
    if bytes(prefix[:4]) != MAGIC:
        raise ValueError(f"not an intake-broker columns body (starts {bytes(prefix)!r})")
    (length,) = struct.unpack("<I", prefix[4:8])
    raw_header = bytearray(length)
    readinto(memoryview(raw_header))
    header = unpackb(raw_header)
    pos = 8 + length
    out: dict[tuple[str, str | None], np.ndarray] = {}
    for spec in sorted(header["columns"], key=lambda c: c["offset"]):
        if 8 + length + spec["offset"] != pos or pos + spec["nbytes"] > size:
            raise ValueError(
                f"column {spec['key']!r} of a columns body is not where its header says"
            )
        dtype, shape = _dtype_of(spec["dtype"]), tuple(spec["shape"])
        target = None if place is None else place(spec, dtype, shape)
        if spec["codec"] == "none":
            if target is None:
                target = np.empty(shape, dtype)
            _fill(readinto, target)
        else:
            data = bytearray(spec["nbytes"])
            readinto(memoryview(data))
            raw = decompress(spec["codec"], memoryview(data), spec["size"])
            decoded = np.frombuffer(raw, dtype=dtype).reshape(shape)
            if target is None:
                target = decoded
            else:
                target[...] = decoded
        out[spec["group"], spec["key"]] = target
        pos += spec["nbytes"]
    if pos != size:
        raise ValueError(f"a columns body of {size} bytes ends after its columns, at {pos}")
    for spec in header["objects"]:
        out[spec["group"], spec["key"]] = _object_array(spec["values"], spec["shape"])
    return header, out
