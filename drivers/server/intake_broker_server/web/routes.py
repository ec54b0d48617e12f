"""The JSON (and PNG) endpoints of the web page, under ``/api/v1/web``: a table of runs for a
query written in the query language, a run's progress (for live pages), a decimated plot of
scalar fields and one frame of an image field.

Each reads through :data:`~intake_broker_server.api.ServiceDep` (with authentication: the
principal's guarded store), and each input is bounded: the query's length, the page, the
number of fields and points, and the bytes read for a plot or a frame.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi import Query as Param
from fastapi.responses import Response

from intake_broker.errors import BadQuery, StreamNotFound
from intake_broker.queries import resolve_key
from intake_broker.queries.expression import parse_query
from intake_broker.store import RunRecord
from intake_broker.store.abilities import Annotations
from intake_broker.views.datakeys import asset_kind, field_dtype, field_shape
from intake_broker_remote.errors import InvalidRequest, OversizedRequest

from ..api import _ERRORS, ServiceDep, evaluating, parse_list, parse_sort
from ..responses import respond
from ..service import Service

router = APIRouter(prefix="/api/v1/web", tags=["web page"])

#: Longest query text the page may send (a written query is a line or a few; the store API's
#: JSON queries may be longer). At 4,000 characters even a query of 4-byte characters stays,
#: percent-encoded, under the 64 KiB URL that HTTP servers and clients accept.
MAX_QUERY_TEXT = 4000
#: Most runs in one page of the table.
MAX_ROWS = 500
#: Most fields overlaid in one plot.
MAX_FIELDS = 8
#: Most buckets (about one per pixel of the plot's width) of a decimated plot.
MAX_POINTS = 8_192
#: Longest side of an image frame.
MAX_SIDE = 16_384
#: Most extra columns (start-document keys) of the table, and characters of one's value.
MAX_COLUMNS = 16
MAX_CELL_CHARS = 200

_COLUMN = re.compile(r"at column (\d+):")


def parse_text(text: str | None) -> Any:
    """The query language (what ``intake-broker search`` reads) as a Query, or None."""
    if text is None or not text.strip():
        return None
    try:
        return parse_query(text, timezone="UTC")
    except BadQuery as err:  # the body also names the (1-based) column of a syntax error
        found = _COLUMN.search(str(err))
        err.details = {"column": int(found.group(1))} if found else {}  # type: ignore[attr-defined]
        raise


def _sample(start: dict) -> Any:
    sample = start.get("sample")
    if isinstance(sample, dict):
        return sample.get("name", sample.get("id"))
    return sample


def _tags(service: Service, record: RunRecord) -> list:
    tags: list = []
    start_tags = record.start.get("tags")
    if isinstance(start_tags, list):
        tags += [t for t in start_tags if isinstance(t, str)]
    if service.store.supports(Annotations):
        for annotation in service.store.annotations(record.uid):  # type: ignore[attr-defined]
            tags += [t for t in annotation.get("tags", []) if t not in tags]
    return tags[:50]


def parse_columns(text: str | None) -> list[str]:
    """The extra columns asked for: comma-separated keys of the start document (dotted for
    nested ones, ``sample.name``) or of the stop document (``stop.exit_status``)."""
    keys = list(dict.fromkeys(k.strip() for k in (parse_list(text, "columns") or []) if k.strip()))
    if len(keys) > MAX_COLUMNS:
        raise InvalidRequest(f"{len(keys)} columns asked for; at most {MAX_COLUMNS}")
    for key in keys:
        resolve_key(key)  # BadQuery for a malformed key
    return keys


def column_value(record: RunRecord, key: str) -> Any:
    """The value of ``key`` in the run's start document (``stop.<key>``: its stop document),
    None when absent; a value whose JSON is longer than :data:`MAX_CELL_CHARS` becomes that
    JSON cut short (a cell is for reading at a glance)."""
    doc: Any = record.start
    parts = key.split(".")
    if parts[0] == "stop":
        doc, parts = record.stop, parts[1:]
    elif parts[0] == "start":
        parts = parts[1:]
    for part in parts:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    if isinstance(doc, (dict, list)) or (isinstance(doc, str) and len(doc) > MAX_CELL_CHARS):
        text = doc if isinstance(doc, str) else json.dumps(doc, default=str)
        if len(text) > MAX_CELL_CHARS:
            return text[: MAX_CELL_CHARS - 1] + "\u2026"
    return doc


def run_row(service: Service, record: RunRecord, columns: Sequence[str] = ()) -> dict[str, Any]:
    """One row of the table: the columns the page shows (values as stored; the page shows
    them as text), and under ``columns`` the value of each extra key asked for."""
    start, stop = record.start, record.stop
    num_events = (stop or {}).get("num_events")
    events = (
        sum(v for v in num_events.values() if isinstance(v, int))
        if isinstance(num_events, dict)
        else None
    )
    row = {
        "uid": record.uid,
        "scan_id": start.get("scan_id"),
        "plan_name": start.get("plan_name"),
        "sample": _sample(start),
        "time": start.get("time"),
        "events": events,
        "status": None if stop is None else stop.get("exit_status"),
        "tags": _tags(service, record),
    }
    if columns:
        row["columns"] = {key: column_value(record, key) for key in columns}
    return row


@router.get("/runs", summary="A page of the runs table (query language)", responses=_ERRORS)
def table(
    request: Request,
    service: ServiceDep,
    q: Annotated[
        str | None,
        Param(
            max_length=MAX_QUERY_TEXT,
            description='the query language, e.g. plan_name == "scan" and scan_id > 4',
        ),
    ] = None,
    sort: Annotated[str, Param(max_length=200, description="keys, '-' for descending")] = "-time",
    skip: Annotated[int, Param(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Param(ge=1, le=MAX_ROWS)] = 50,
    columns: Annotated[
        str | None,
        Param(
            max_length=2000,
            description="extra columns: comma-separated start-document keys "
            "(sample.name, num_points; stop.<key> for the stop document)",
        ),
    ] = None,
) -> Response:
    """``{"data": [row, ...], "count": n, "skip", "limit"}``: rows of uid, scan_id, plan_name,
    sample, time, events, status, tags (and ``columns``: ``{key: value}`` of the extra keys
    asked for). A query that does not parse is a 400 ``BadQuery`` whose body also has the
    (1-based) ``column`` of the problem."""
    extra = parse_columns(columns)
    query = parse_text(q)
    order = parse_sort(sort)
    narrowed = service.narrowed(query)
    found = evaluating(lambda: service.store.runs(narrowed, sort=order, skip=skip, limit=limit))
    count = evaluating(lambda: service.store.count(narrowed))
    rows = [run_row(service, r, extra) for r in found]
    return respond(request, {"data": rows, "count": count, "skip": skip, "limit": limit})


def progress_of(service: Service, uid: str) -> dict[str, Any]:
    """``{"uid", "stopped", "exit_status", "streams": {name: events}}`` (chunk metadata only,
    no event values)."""
    record = service.run(uid)
    streams: dict[str, int] = {}
    for descriptor in service.descriptors(uid):
        name = descriptor.get("name", "primary")
        rows = sum(c.rows for c in service.chunks(descriptor["uid"]))
        streams[name] = streams.get(name, 0) + rows
    stop = record.stop
    return {
        "uid": record.uid,
        "stopped": stop is not None,
        "exit_status": None if stop is None else stop.get("exit_status"),
        "streams": streams,
    }


@router.get("/runs/{uid}/progress", summary="A run's event counts and stop", responses=_ERRORS)
def progress(request: Request, service: ServiceDep, uid: str) -> Response:
    """``{"uid", "stopped", "exit_status", "streams": {name: events}}``: what a page showing
    a run still acquiring asks again and again when it cannot hold a live stream (cheap:
    chunk metadata, no event values)."""
    return respond(request, progress_of(service, uid))


def _numeric_scalar(data_keys: dict, key: str) -> None:
    if key not in data_keys:
        raise StreamNotFound(f"the stream has no field {key!r}; it has {sorted(data_keys)[:50]}")
    dk = data_keys[key]
    if asset_kind(dk) is not None or field_shape(dk) != () or field_dtype(dk).kind not in "biuf":
        raise InvalidRequest(
            f"{key!r} is not a scalar number (dtype {dk.get('dtype')}, shape "
            f"{dk.get('shape')}); plot scalar fields, and view images with .../frame"
        )


def decimate(n: int, values: np.ndarray, buckets: int) -> np.ndarray:
    """Row indices keeping, for each of ``buckets`` runs of consecutive rows, the rows of the
    smallest and largest value (in their order): a line through them looks, at one bucket a
    pixel, like the line through every row. All rows when they are few."""
    if n <= 2 * buckets:
        return np.arange(n)
    size = -(-n // buckets)
    count = -(-n // size)
    padded = np.full(count * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(count, size)
    empty = np.isnan(grid).all(axis=1)
    low = np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    high = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    base = np.arange(count) * size
    pairs = np.sort(np.stack([low, high], axis=1), axis=1) + base[:, None]
    pairs = pairs[~empty]
    out = np.unique(pairs.ravel())
    return out[out < n]


def _json_floats(values: np.ndarray) -> list:
    return [v if math.isfinite(v) else None for v in values.astype(float).tolist()]


@router.get("/runs/{uid}/plot", summary="Scalar fields for a quick-look plot", responses=_ERRORS)
def plot(
    request: Request,
    service: ServiceDep,
    uid: str,
    y: Annotated[str, Param(max_length=2000, description="comma-separated scalar fields")],
    stream: Annotated[str, Param(max_length=512)] = "primary",
    x: Annotated[
        str, Param(max_length=512, description="'time', 'seq_num' or a scalar field")
    ] = "time",
    points: Annotated[int, Param(ge=16, le=MAX_POINTS, description="buckets")] = 1000,
    x_min: float | None = None,
    x_max: float | None = None,
) -> Response:
    """``{"x": name, "rows": n, "decimated": bool, "series": {field: {"x": [...], "y":
    [...]}}}``: each field against ``x`` (rows with ``x_min <= x <= x_max`` when given: a
    zoom, exact when few rows remain), reduced on the server to the smallest and largest
    value of each of ``points`` buckets of consecutive rows when the stream is longer."""
    fields = parse_list(y, "fields") or []
    if not fields or len(fields) > MAX_FIELDS:
        raise InvalidRequest(f"give 1 to {MAX_FIELDS} fields to plot in y, not {len(fields)}")
    layout = service.layout(uid, stream)
    for key in fields + ([] if x in ("time", "seq_num") else [x]):
        _numeric_scalar(layout.data_keys, key)
    rows = len(layout)
    wanted = list(dict.fromkeys(fields + ([] if x in ("time", "seq_num") else [x])))
    service.check_size(rows * 8 * (len(wanted) + 2), f"a plot of {rows} rows")
    index: list[tuple[np.ndarray, np.ndarray]] = []
    arrays = layout.arrays(wanted, index=index) if rows else {k: np.empty(0) for k in wanted}
    if not index:
        time, seq = layout.index() if rows else (np.empty(0), np.empty(0))
    else:
        ((time, seq),) = index
    xs = {"time": time, "seq_num": seq}.get(x)
    xs = np.asarray(arrays[x] if xs is None else xs, dtype=float)
    keep = np.ones(len(xs), dtype=bool)
    if x_min is not None:
        keep &= xs >= x_min
    if x_max is not None:
        keep &= xs <= x_max
    series, decimated = {}, False
    for key in fields:
        ys = np.asarray(arrays[key], dtype=float)[keep]
        xk = xs[keep]
        chosen = decimate(len(ys), ys, points)
        decimated = decimated or len(chosen) < len(ys)
        series[key] = {"x": _json_floats(xk[chosen]), "y": _json_floats(ys[chosen])}
    return respond(
        request,
        {"x": x, "rows": int(keep.sum()), "decimated": decimated, "series": series},
    )


def png_gray(frame: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a 2-D uint8 array (zlib and the PNG chunk layout; no
    imaging library)."""
    height, width = frame.shape
    raw = np.zeros((height, width + 1), dtype=np.uint8)
    raw[:, 1:] = frame

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


@router.get(
    "/runs/{uid}/frame",
    summary="One frame of an image field, as a PNG",
    responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "the frame"}},
    response_class=Response,
)
def frame(
    service: ServiceDep,
    uid: str,
    field: Annotated[str, Param(max_length=512)],
    stream: Annotated[str, Param(max_length=512)] = "primary",
    index: Annotated[int, Param(ge=0, le=2**62, description="the frame's row in the stream")] = 0,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Response:
    """Row ``index`` of a 2-D (or more: the first plane) field, scaled from ``vmin`` to
    ``vmax`` (the frame's own range by default) onto 0-255 grey; the headers
    ``X-Frame-Min``, ``X-Frame-Max`` and ``X-Frame-Count`` give its range and the frames the
    stream has. One frame is read, never the stream."""
    layout = service.layout(uid, stream)
    if field not in layout.data_keys:
        raise StreamNotFound(f"the stream has no field {field!r}")
    dk = layout.data_keys[field]
    shape = field_shape(dk)
    if len(shape) < 2 or field_dtype(dk).kind not in "biuf":
        raise InvalidRequest(
            f"{field!r} is not an image (shape {list(shape)}, dtype {dk.get('dtype')}); "
            "plot scalar fields with .../plot"
        )
    if max(shape[-2:]) > MAX_SIDE:
        raise OversizedRequest(f"frames of {list(shape)} are too large to show (side > {MAX_SIDE})")
    service.check_size(int(np.prod(shape)) * field_dtype(dk).itemsize, "one frame")
    count = len(layout)
    if index >= count:
        raise InvalidRequest(f"index={index}: the stream has {count} frames (0 to {count - 1})")
    _, seqs = layout.index()
    seq = int(seqs[index])
    chunk = next(c for c in layout.chunks if c.seq_start <= seq < c.seq_stop)
    layout.chunks = [type(chunk)(chunk.descriptor, seq, seq + 1, 1)]
    layout.descriptors = [d for d in layout.descriptors if d["uid"] == chunk.descriptor]
    values = np.asarray(layout.arrays([field])[field][0], dtype=float)
    while values.ndim > 2:
        values = values[0]
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    lo = low if vmin is None else vmin
    hi = high if vmax is None else vmax
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    grey = np.clip((np.nan_to_num(values, nan=lo) - lo) * scale, 0, 255).astype(np.uint8)
    return Response(
        png_gray(grey),
        media_type="image/png",
        headers={
            "X-Frame-Min": repr(low),
            "X-Frame-Max": repr(high),
            "X-Frame-Count": str(count),
            "Cache-Control": "no-store",
        },
    )
