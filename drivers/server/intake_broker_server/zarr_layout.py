"""Streams in the zarr v3 layout over HTTP, so that ``xarray.open_zarr(url)`` reads them with
no library of ours.

``/zarr/v3/runs/{uid}/{stream}`` is a group (``zarr.json``, with the members' metadata inline
as consolidated metadata, and an HTML listing for clients that list); each data key is an array
with ``dimension_names`` (``time`` first), beside the ``time`` and ``seq_num`` coordinate
arrays. Chunks follow the stream's stored chunks along ``time`` (zarr wants a regular grid: the
length of the stream's first chunk, fewer rows for large frames); the last chunk is padded.
Values are read on request, through the same store reads and asset readers as a local stream.
"""

from __future__ import annotations

import gzip
import html
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from intake_broker.errors import BrokerError
from intake_broker.store import Chunk
from intake_broker.views.datakeys import asset_kind, field_dims, field_dtype, field_shape
from intake_broker.views.stream import StreamLayout
from intake_broker_remote import wire

from .api import _ERRORS, get_service
from .service import Service

router = APIRouter(prefix="/zarr/v3/runs/{uid}/{stream}", tags=["zarr"])
ServiceDep = Annotated[Service, Depends(get_service)]
#: A chunk of a large-frame array holds about this many bytes (at least one frame).
CHUNK_BYTES = 16 << 20
INDEX = ("time", "seq_num")


class ChunkNotFound(BrokerError, KeyError):
    """No such array in the group, or a chunk key outside the array's chunk grid (a 404, as
    zarr expects of a missing key)."""

    status = 404


@dataclass
class ArraySpec:
    """One array of the group: what zarr.json says and how to read its rows."""

    name: str
    group: str  # "index" or "data"
    dtype: np.dtype  # numpy dtype of the values (object for strings)
    shape: tuple[int, ...]  # per-event shape
    dims: tuple[str, ...]
    chunk_rows: int
    attrs: dict[str, Any]
    asset: str | None = None

    @property
    def data_type(self) -> str:
        return "string" if self.dtype.kind == "O" else self.dtype.name


def _zarr_dtype(layout: StreamLayout, key: str) -> np.dtype | None:
    dtype = field_dtype(layout.data_keys[key])
    if any(key not in keys for keys in layout.fields_of.values()) and dtype.kind in "iub":
        dtype = np.dtype("float64")  # rows of a descriptor without the key are NaN
    if dtype.kind in "biufc" or (
        dtype.kind == "O"
        and layout.data_keys[key].get("dtype") == "string"
        and not field_shape(layout.data_keys[key])
    ):
        return dtype
    return None  # structured, JSON-valued or multi-dimensional strings: not in this layout


def array_specs(layout: StreamLayout) -> tuple[dict[str, ArraySpec], list[str]]:
    """The arrays of a stream's group, and the data keys left out (with a reason each)."""
    base = max([c.rows for c in layout.chunks] or [1])
    specs = {
        "time": ArraySpec("time", "index", np.dtype("float64"), (), ("time",), base, {}),
        "seq_num": ArraySpec("seq_num", "index", np.dtype("int64"), (), ("time",), base, {}),
    }
    omitted = []
    for key, dk in layout.data_keys.items():
        dtype = _zarr_dtype(layout, key)
        if dtype is None or key in INDEX:
            omitted.append(key)
            continue
        shape = field_shape(dk)
        frame = max(1, int(np.prod(shape, dtype=np.int64)) * max(dtype.itemsize, 1))
        rows = max(1, min(base, CHUNK_BYTES // frame))
        attrs = {
            k: dk[k] for k in ("source", "units", "object_name", "precision", "external") if k in dk
        }
        attrs["coordinates"] = "seq_num"
        specs[key] = ArraySpec(
            key, "data", dtype, shape, field_dims(key, dk), rows, attrs, asset_kind(dk)
        )
    return specs, omitted


def _fill(dtype: np.dtype) -> Any:
    if dtype.kind == "O":
        return ""
    if dtype.kind == "f":
        return "NaN"
    if dtype.kind == "c":
        return ["NaN", "NaN"]
    return False if dtype.kind == "b" else 0


def array_metadata(spec: ArraySpec, length: int) -> dict[str, Any]:
    compressor = (
        {"name": "zstd", "configuration": {"level": 1, "checksum": False}}
        if "zstd" in wire.available_codecs()
        else {"name": "gzip", "configuration": {"level": 1}}
    )
    first = (
        {"name": "vlen-utf8", "configuration": {}}
        if spec.dtype.kind == "O"
        else {"name": "bytes", "configuration": {"endian": "little"}}
    )
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [length, *spec.shape],
        "data_type": spec.data_type,
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": [spec.chunk_rows, *spec.shape]},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _fill(spec.dtype),
        "codecs": [first, compressor],
        "attributes": spec.attrs,
        "dimension_names": list(spec.dims),
    }


def group_metadata(layout: StreamLayout, uid: str, stream: str) -> dict[str, Any]:
    specs, omitted = array_specs(layout)
    attrs: dict[str, Any] = {"stream_name": stream, "run_uid": uid}
    if omitted:
        attrs["intake_broker_omitted_keys"] = omitted
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": attrs,
        "consolidated_metadata": {
            "kind": "inline",
            "must_understand": False,
            "metadata": {name: array_metadata(s, len(layout)) for name, s in specs.items()},
        },
    }


# -- reading rows ---------------------------------------------------------------------------


def _pieces(layout: StreamLayout, lo: int, hi: int) -> Iterator[tuple[Chunk, int, int]]:
    """``(chunk, first, stop)``: rows ``first:stop`` of each stored chunk overlapping rows
    ``lo:hi`` of the stream."""
    offset = 0
    for chunk in layout.chunks:
        first, stop = max(lo, offset) - offset, min(hi, offset + chunk.rows) - offset
        if first < stop:
            yield chunk, first, stop
        offset += chunk.rows
        if offset >= hi:
            return


def _read_piece(
    service: Service, layout: StreamLayout, spec: ArraySpec, chunk: Chunk, first: int, stop: int
) -> np.ndarray:
    linear = chunk.seq_stop - chunk.seq_start == chunk.rows
    lo, hi = (
        (chunk.seq_start + first, chunk.seq_start + stop)
        if linear
        else (chunk.seq_start, chunk.seq_stop)
    )
    cut = slice(None) if linear else slice(first, stop)
    rows = stop - first if linear else chunk.rows
    if spec.asset == "stream":
        assert layout.reader is not None
        return layout.reader.read_stream(
            spec.name, chunk.descriptor, (lo, hi), spec.dtype, spec.shape
        )[cut]
    fields = [] if spec.group == "index" else [spec.name]
    cols = service.read_events(chunk.descriptor, fields=fields, seq_range=(lo, hi), uids=False)
    if spec.group == "index":
        return np.asarray(cols.time if spec.name == "time" else cols.seq_num)[cut]
    values = cols.data.get(spec.name)
    if values is None:  # this descriptor lacks the key
        return np.full(
            (rows, *spec.shape), np.nan if spec.dtype.kind in "fc" else "", dtype=spec.dtype
        )[cut]
    if spec.asset == "datum":
        assert layout.reader is not None
        values = layout.reader.read_datums(spec.name, list(values), spec.dtype, spec.shape)
    return np.asarray(values)[cut]


def read_chunk(service: Service, layout: StreamLayout, spec: ArraySpec, index: int) -> bytes:
    """Chunk ``index`` of an array along ``time``, encoded as its zarr.json says."""
    length = len(layout)
    count = -(-length // spec.chunk_rows)
    if not 0 <= index < count:
        raise ChunkNotFound(
            f"chunk {index} of {spec.name!r} is outside the chunk grid: the "
            f"array has {count} chunks of {spec.chunk_rows} rows ({length} rows)"
        )
    lo, hi = index * spec.chunk_rows, min(length, (index + 1) * spec.chunk_rows)
    service.check_size(
        (hi - lo) * max(spec.dtype.itemsize, 1) * int(np.prod(spec.shape, dtype=np.int64)),
        "the chunk",
    )
    parts = [_read_piece(service, layout, spec, *piece) for piece in _pieces(layout, lo, hi)]
    rows = np.concatenate(parts) if len(parts) != 1 else parts[0]
    if spec.dtype.kind == "O":
        values = [str(v) for v in rows] + [""] * (spec.chunk_rows - len(rows))
        encoded = [v.encode() for v in values]
        raw = struct.pack("<I", len(encoded)) + b"".join(
            struct.pack("<I", len(v)) + v for v in encoded
        )
    else:
        out = np.full(
            (spec.chunk_rows, *spec.shape),
            np.nan if spec.dtype.kind in "fc" else 0,
            dtype=spec.dtype.newbyteorder("<"),
        )
        out[: len(rows)] = rows
        raw = out.tobytes()
    if "zstd" in wire.available_codecs():
        return bytes(wire.compress("zstd", np.frombuffer(raw, np.uint8)))
    return gzip.compress(raw, compresslevel=1)


# -- routes ---------------------------------------------------------------------------------


def _json(payload: Any) -> Response:
    return Response(wire.dumps(payload), media_type=wire.JSON)


@router.get("/zarr.json", summary="A stream as a zarr v3 group", responses=_ERRORS)
def group_json(service: ServiceDep, uid: str, stream: str) -> Response:
    return _json(group_metadata(service.layout(uid, stream), uid, stream))


@router.get(
    "/", summary="The members of the group (HTML)", response_class=HTMLResponse, responses=_ERRORS
)
def listing(request: Request, service: ServiceDep, uid: str, stream: str) -> Response:
    specs, _ = array_specs(service.layout(uid, stream))
    links = "".join(
        f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in ["zarr.json", *specs]
    )
    return HTMLResponse(f"<html><body><ul>{links}</ul></body></html>")


@router.get("/{array}/zarr.json", summary="Array metadata", responses=_ERRORS)
def array_json(service: ServiceDep, uid: str, stream: str, array: str) -> Response:
    layout = service.layout(uid, stream)
    return _json(array_metadata(_spec(layout, array), len(layout)))


@router.get(
    "/{array}/",
    summary="The members of an array (HTML)",
    response_class=HTMLResponse,
    responses=_ERRORS,
)
def array_listing(service: ServiceDep, uid: str, stream: str, array: str) -> Response:
    _spec(service.layout(uid, stream), array)
    return HTMLResponse('<html><body><a href="zarr.json">zarr.json</a></body></html>')


@router.get(
    "/{array}/c/{key:path}", summary="One chunk", response_class=Response, responses=_ERRORS
)
def chunk(service: ServiceDep, uid: str, stream: str, array: str, key: str) -> Response:
    layout = service.layout(uid, stream)
    spec = _spec(layout, array)
    parts = key.split("/")
    if len(parts) != 1 + len(spec.shape) or not all(p.isdigit() and len(p) < 19 for p in parts):
        raise ChunkNotFound(
            f"chunk key c/{key} does not name a chunk of {array!r}: give "
            f"{1 + len(spec.shape)} indices, e.g. c/0{'/0' * len(spec.shape)}"
        )
    index, *rest = (int(p) for p in parts)
    if any(rest):
        raise ChunkNotFound(
            f"chunk c/{key} of {array!r} is outside the chunk grid: each "
            "chunk holds whole frames, so every index but the first is 0"
        )
    return Response(read_chunk(service, layout, spec, index), media_type="application/octet-stream")


def _spec(layout: StreamLayout, array: str) -> ArraySpec:
    specs, omitted = array_specs(layout)
    if array not in specs:
        extra = f" ({array!r} has values zarr cannot type)" if array in omitted else ""
        raise ChunkNotFound(f"the stream has no array {array!r}{extra}; it has {', '.join(specs)}")
    return specs[array]


# HEAD answers as GET does (fsspec asks for sizes with HEAD), out of the OpenAPI document.
for _route in list(router.routes):
    if isinstance(_route, APIRoute):  # every route here (typed as starlette's BaseRoute)
        router.add_api_route(
            _route.path.removeprefix(router.prefix),
            _route.endpoint,
            methods=["HEAD"],
            include_in_schema=False,
            response_class=_route.response_class,
        )
