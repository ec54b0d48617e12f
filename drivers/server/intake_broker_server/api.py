"""The JSON / msgpack API under ``/api/v1``: one endpoint per method of the store contract, so
that :class:`intake_broker_remote.RemoteStore` can be a store."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi import Query as Param
from fastapi.responses import Response, StreamingResponse

from intake_broker.errors import BadQuery, BrokerError, InvalidDocument
from intake_broker.queries import Query, decode_query, resolve_key
from intake_broker.store import RunRecord
from intake_broker_remote import wire
from intake_broker_remote.errors import InvalidRequest, OversizedRequest, ResourceNotFound

from .responses import respond, wants_msgpack
from .service import Service

router = APIRouter(prefix="/api/v1")
T = TypeVar("T")

GROUPS = ("index", "uid", "data", "timestamps", "filled")
#: The Arrow IPC stream format (``Accept``) of the events endpoint, for clients in any language.
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {
            wire.JSON: {
                "schema": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            }
        },
    }
    for status, text in (
        (400, "bad parameters, query or oversized request"),
        (401, "no valid credentials (when the service needs them)"),
        (403, "the credential's scopes do not allow this request"),
        (404, "no such run, descriptor or resource"),
    )
}


def service_for(request: Request, scope: str) -> Service:
    """The service for this request: with authentication configured, the request's principal
    is resolved (401/403 when it cannot be, or lacks ``scope``) and the request is answered
    from that principal's guarded view, where the core applies the access policy."""
    service: Service = request.app.state.service
    auth = getattr(request.app.state, "auth", None)
    if auth is None:
        if scope != "read" and getattr(request.app.state, "read_only", False):
            from .auth.errors import Forbidden

            raise Forbidden(
                "this server is read-only: it listens beyond this machine without "
                "authentication (its operator may start it with --auth-config FILE, or "
                "--allow-writes)"
            )
        return service
    identity = auth.identify(request.headers.get("authorization"))
    request.state.identity = identity  # for the log of a refusal
    request.state.principal = identity.principal
    auth.require(identity, scope)
    return service.guarded(auth.config.policy, identity.principal)


def get_service(request: Request) -> Service:
    """The service, for a request that reads."""
    return service_for(request, "read")


def get_writer(request: Request) -> Service:
    """The service, for a request that writes (the credential needs the ``write`` scope)."""
    return service_for(request, "write")


ServiceDep = Annotated[Service, Depends(get_service)]
WriterDep = Annotated[Service, Depends(get_writer)]
Skip = Annotated[int, Param(ge=0, le=2**62, description="items to skip")]
Limit = Annotated[
    int | None,
    Param(
        ge=1,
        le=2**62,
        description="at most this many items "
        "(the server's page limit when left out; more is a 400)",
    ),
]
QueryText = Annotated[
    str | None,
    Param(
        description="a query as Query.encode() JSON, e.g. "
        '{"type": "eq", "key": "plan_name", "value": "scan"}'
    ),
]


# -- parameters -----------------------------------------------------------------------------


def parse_query(text: str | None) -> Query | None:
    """An encoded query (JSON) or None."""
    if text is None or text == "":
        return None
    try:
        return decode_query(text)
    except BadQuery:
        raise
    except (TypeError, ValueError, RecursionError) as err:
        raise BadQuery(f"the query cannot be decoded: {type(err).__name__}: {err}") from None


def parse_sort(text: str) -> list[tuple[str, int]]:
    """``"-time,uid"`` as ``[("time", -1), ("uid", 1)]``."""
    out = []
    for part in text.split(","):
        part = part.strip()
        direction = -1 if part.startswith("-") else 1
        key = part.lstrip("+-")
        resolve_key(key)  # BadQuery for an empty or malformed key
        out.append((key, direction))
    return out


def parse_list(text: str | None, what: str) -> list[str] | None:
    """A comma-separated list (None when absent, ``[]`` when empty)."""
    if text is None:
        return None
    items = [item for item in text.split(",") if item]
    if len(items) > 10_000:
        raise OversizedRequest(f"{len(items)} {what} in one request; ask for at most 10000")
    return items


def parse_groups(text: str) -> list[str]:
    groups = parse_list(text, "groups") or []
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise InvalidRequest(f"unknown column groups {unknown}; choose from {list(GROUPS)}")
    return groups


def seq_range(start: int | None, stop: int | None) -> tuple[int, int] | None:
    if start is None and stop is None:
        return None
    lo = 0 if start is None else start
    hi = 2**62 if stop is None else stop
    if hi < lo:
        raise InvalidRequest(
            f"seq_stop={hi} is before seq_start={lo}; the range is seq_start <= seq_num < seq_stop"
        )
    return lo, hi


#: Words of a database's refusal of a query too large or too deep for it (SQLite, PostgreSQL).
_TOO_LARGE = ("too large", "stack overflow", "too many", "too deep", "too complex", "too long")


def evaluating(call: Callable[[], T]) -> T:
    """Run a store query; a well-formed query the store cannot evaluate is the query's fault
    (e.g. comparing numbers with strings, or nested deeper than the store parses), so it is a
    400, not a 500. A store's own data that cannot be read (a JSON document that does not
    decode) stays a 500."""
    try:
        return call()
    except BrokerError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except RecursionError:
        raise BadQuery(
            "the query is nested too deeply to evaluate; flatten it (an 'and' or 'or' of many "
            "terms rather than terms inside terms)"
        ) from None
    except (TypeError, ValueError) as err:
        raise BadQuery(
            f"the store cannot evaluate this query: {type(err).__name__}: {err}"
        ) from None
    except Exception as err:
        reason = str(getattr(err, "orig", "") or "").lower()
        if type(err).__module__.startswith("sqlalchemy") and any(w in reason for w in _TOO_LARGE):
            raise BadQuery(
                "the query is too large or too deeply nested for the store's database; "
                "use fewer terms or less nesting"
            ) from None
        raise


def run_json(record: RunRecord) -> dict[str, Any]:
    return {
        "uid": record.uid,
        "start": record.start,
        "stop": record.stop,
        "origin": list(record.origin),
    }


def paged(request: Request, items: list, skip: int, limit: int, more: bool) -> dict[str, Any]:
    following = str(request.url.include_query_params(skip=skip + limit)) if more else None
    return {"data": items, "skip": skip, "limit": limit, "next": following}


def _list_runs(
    request: Request, service: Service, query: Query | None, sort: str, skip: int, limit: int | None
) -> Response:
    limit = service.check_page(limit)
    order = parse_sort(sort)
    found = evaluating(
        lambda: service.store.runs(  # one more than asked: is there a next?
            service.narrowed(query), sort=order, skip=skip, limit=limit + 1
        )
    )
    answer = paged(request, [run_json(r) for r in found[:limit]], skip, limit, len(found) > limit)
    if not found and skip == 0:
        hidden = evaluating(lambda: service.hidden(query))
        if hidden:
            answer["hidden"] = hidden
    return respond(request, answer)


# -- runs -----------------------------------------------------------------------------------


@router.get("/runs", summary="List runs", responses=_ERRORS)
def list_runs(
    request: Request,
    service: ServiceDep,
    query: QueryText = None,
    sort: Annotated[str, Param(description="keys, '-' for descending")] = "-time",
    skip: Skip = 0,
    limit: Limit = None,
) -> Response:
    """Runs matching ``query`` (all when absent), ordered by ``sort``, one page at a time
    (``next`` is the URL of the next page, null on the last)."""
    return _list_runs(request, service, parse_query(query), sort, skip, limit)


@router.post(
    "/runs/search",
    summary="List runs (query in the body)",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                wire.JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "object"},
                            "sort": {"type": "string"},
                            "skip": {"type": "integer", "minimum": 0},
                            "limit": {"type": "integer", "minimum": 1},
                        },
                    }
                }
            },
        }
    },
)
async def search_runs(request: Request, service: ServiceDep) -> Response:
    """The same as ``GET /runs`` for queries too long for a URL: ``{"query": {...},
    "sort": "-time", "skip": 0, "limit": 100}``."""
    body = await read_json(request, service)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object with query, sort, skip, limit")
    query = body.get("query")
    skip, limit, sort = body.get("skip", 0), body.get("limit"), body.get("sort", "-time")
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise InvalidRequest(f"skip must be an integer >= 0, not {skip!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidRequest(f"limit must be an integer >= 1, not {limit!r}")
    if not isinstance(sort, str):
        raise InvalidRequest(f"sort must be a string such as '-time', not {sort!r}")
    decoded = None if query is None else parse_query(json.dumps(query))
    return await _in_thread(_list_runs, request, service, decoded, sort, skip, limit)


@router.get("/runs/count", summary="Count runs", responses=_ERRORS)
def count_runs(request: Request, service: ServiceDep, query: QueryText = None) -> Response:
    query_ = parse_query(query)
    count = evaluating(lambda: service.count(query_))
    answer: dict[str, Any] = {"count": count}
    if not count:
        hidden = evaluating(lambda: service.hidden(query_))
        if hidden:
            answer["hidden"] = hidden
    return respond(request, answer)


@router.get("/runs/{uid}", summary="One run: start and stop documents", responses=_ERRORS)
def get_run(request: Request, service: ServiceDep, uid: str) -> Response:
    return respond(request, run_json(service.run(uid)))


@router.get("/runs/{uid}/descriptors", summary="The descriptors of a run", responses=_ERRORS)
def get_descriptors(
    request: Request, service: ServiceDep, uid: str, skip: Skip = 0, limit: Limit = None
) -> Response:
    limit = service.check_page(limit, "descriptors")
    found = service.descriptors(uid)
    return respond(
        request, paged(request, found[skip : skip + limit], skip, limit, len(found) > skip + limit)
    )


@router.get(
    "/runs/{uid}/annotations",
    summary="The annotations of a run the caller may see",
    responses=_ERRORS,
)
def get_annotations(request: Request, service: ServiceDep, uid: str) -> Response:
    """``{"data": [annotation, ...]}``: tags, fields, note, author, visibility, version."""
    return respond(request, {"data": service.annotations(uid)})


@router.get(
    "/runs/{uid}/annotations/history",
    summary="Every change of the annotations of a run the caller may see",
    responses=_ERRORS,
)
def get_annotation_history(request: Request, service: ServiceDep, uid: str) -> Response:
    """``{"data": [{annotation, version, who, time, before, after}, ...]}``, oldest first."""
    return respond(request, {"data": service.annotation_history(uid)})


@router.post(
    "/runs/{uid}/annotations",
    summary="Change an annotation of a run",
    responses={
        **_ERRORS,
        409: {"description": "if_version is stale; the body holds the current annotation"},
        422: {"description": "the change is malformed (tags, values, note, visibility)"},
    },
)
async def change_annotation(request: Request, service: WriterDep, uid: str) -> Response:
    """Apply one change (what ``intake_broker.store.annotations.annotation_change`` builds)
    as the credential's user; answers the annotation after it."""
    body = await read_json(request, service)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be an annotation change (a JSON object)")
    return respond(request, await _in_thread(service.change_annotation, uid, body))


def _document_stream(
    request: Request, items: Iterator[Any], skip: int, limit: int | None
) -> Response:
    stop = None if limit is None else skip + limit
    items = itertools.islice(items, skip, stop)
    first = next(items, None)  # a missing or corrupt run fails here, with a status code
    msgpack = wants_msgpack(request)
    encode = wire.packb if msgpack else (lambda item: wire.dumps(item) + b"\n")

    def chunks() -> Iterator[bytes]:
        buffer: list[bytes] = []
        size = 0
        for item in itertools.chain([] if first is None else [first], items):
            data = encode(item)
            buffer.append(data)
            size += len(data)
            if size > 1 << 16:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)

    return StreamingResponse(chunks(), media_type=wire.MSGPACK if msgpack else wire.NDJSON)


@router.get("/runs/{uid}/documents", summary="Replay a run's documents", responses=_ERRORS)
def get_documents(
    request: Request, service: ServiceDep, uid: str, skip: Skip = 0, limit: Limit = None
) -> Response:
    """Every document of the run as ``[name, doc]``, in order (events as pages): NDJSON, or a
    stream of msgpack objects with ``Accept: application/x-msgpack``."""
    return _document_stream(request, (list(item) for item in service.documents(uid)), skip, limit)


@router.get("/runs/{uid}/datum_pages", summary="The datum pages of a run", responses=_ERRORS)
def get_datum_pages(
    request: Request, service: ServiceDep, uid: str, skip: Skip = 0, limit: Limit = None
) -> Response:
    return _document_stream(request, service.datum_pages(uid), skip, limit)


@router.get(
    "/runs/{uid}/assets", summary="The asset documents of a run, indexed", responses=_ERRORS
)
def get_assets(request: Request, service: ServiceDep, uid: str) -> Response:
    service.run(uid)
    assets = service.store.run_assets(uid)
    return respond(
        request,
        {
            "resources": assets.resources,
            "datums": {k: list(v) for k, v in assets.datums.items()},
            "stream_resources": assets.stream_resources,
            "stream_datums": assets.stream_datums,
        },
    )


@router.get(
    "/runs/{uid}/resources/{resource_uid}", summary="One resource document", responses=_ERRORS
)
def get_resource(request: Request, service: ServiceDep, uid: str, resource_uid: str) -> Response:
    service.run(uid)
    try:
        return respond(request, service.store.resource(uid, resource_uid))
    except BrokerError:
        raise
    except KeyError:
        raise ResourceNotFound(f"run {uid!r} has no resource {resource_uid!r}") from None


@router.post(
    "/runs/{uid}/assets/datums",
    summary="Frames of datums, read on the server",
    responses=_ERRORS,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                wire.JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["key", "datum_ids"],
                        "properties": {
                            "key": {"type": "string"},
                            "datum_ids": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            },
        }
    },
)
async def read_datums(
    request: Request, service: ServiceDep, uid: str, codec: Annotated[str, Param()] = "none"
) -> Response:
    """Values of a resource/datum-backed data key for ``datum_ids``, as a columns body."""
    body = await read_json(request, service)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("key"), str)
        or not (
            isinstance(body.get("datum_ids"), list)
            and all(isinstance(d, str) for d in body["datum_ids"])
        )
    ):
        raise InvalidRequest('the body must be {"key": data key, "datum_ids": [str, ...]}')
    array = await _in_thread(service.read_datums, uid, body["key"], body["datum_ids"])
    return _columns([("array", body["key"], array)], len(array), codec)


@router.get(
    "/runs/{uid}/assets/stream",
    summary="Rows of stream_resource data",
    responses=_ERRORS,
    response_class=Response,
)
def read_stream_asset(
    service: ServiceDep,
    uid: str,
    key: str,
    descriptor: str,
    seq_start: Annotated[int, Param(ge=0, le=2**62)],
    seq_stop: Annotated[int, Param(ge=0, le=2**62)],
    codec: str = "none",
) -> Response:
    """Values of a stream_resource-backed data key (ophyd-async) for seq_start <= seq_num <
    seq_stop, read on the server, as a columns body."""
    lo, hi = seq_range(seq_start, seq_stop)  # type: ignore[misc]
    array = service.read_stream_asset(uid, key, descriptor, (lo, hi))
    return _columns([("array", key, array)], len(array), codec)


# -- descriptors ----------------------------------------------------------------------------


@router.get("/descriptors/{uid}/run", summary="The run holding a descriptor", responses=_ERRORS)
def get_descriptor_run(request: Request, service: ServiceDep, uid: str) -> Response:
    """``{"descriptor": uid, "run": run uid}``; a descriptor of a run the credential may not
    see is a 404 like a missing one."""
    return respond(request, {"descriptor": uid, "run": service.descriptor_run(uid)})


@router.get(
    "/descriptors/{uid}/chunks", summary="How a descriptor's events are stored", responses=_ERRORS
)
def get_chunks(
    request: Request, service: ServiceDep, uid: str, skip: Skip = 0, limit: Limit = None
) -> Response:
    limit = service.check_page(limit, "chunks")
    found = service.chunks(uid)
    items = [
        {"seq_start": c.seq_start, "seq_stop": c.seq_stop, "rows": c.rows}
        for c in found[skip : skip + limit]
    ]
    return respond(request, paged(request, items, skip, limit, len(found) > skip + limit))


@router.get(
    "/descriptors/{uid}/events",
    summary="Event columns (binary)",
    responses={
        **_ERRORS,
        200: {
            "description": "a columns body (see intake_broker_remote.wire)",
            "content": {wire.COLUMNS: {}, ARROW_STREAM: {}},
        },
    },
    response_class=Response,
)
def get_events(
    request: Request,
    service: ServiceDep,
    uid: str,
    fields: Annotated[
        str | None, Param(description="comma-separated data keys; all when absent, none when empty")
    ] = None,
    seq_start: Annotated[int | None, Param(ge=0, le=2**62)] = None,
    seq_stop: Annotated[int | None, Param(ge=0, le=2**62)] = None,
    groups: Annotated[str, Param(description=f"of {', '.join(GROUPS)}")] = "index,data,timestamps",
    codec: Annotated[
        str,
        Param(description="codecs the client reads, preferred first: lz4, blosc, zstd, zlib, none"),
    ] = "none",
) -> Response:
    """Events of a descriptor with seq_start <= seq_num < seq_stop as binary columns: a
    msgpack header (dtype, shape, codec of each column) and the column bytes. With
    ``Accept: application/vnd.apache.arrow.stream``: an Arrow IPC stream of one record batch
    (``seq_num``, ``time``, each data key by name, ``timestamps:<key>``, ``filled:<key>``; each
    field's metadata names its group; images as ``fixed_shape_tensor``)."""
    arrow = ARROW_STREAM in request.headers.get("accept", "")
    if arrow:
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:  # pragma: no cover - pyarrow is in the test extras
            raise InvalidRequest(
                "this server cannot write Arrow (pyarrow is not installed); ask for "
                f"{wire.COLUMNS}",
                status=406,
            ) from err
    wanted = parse_groups(groups)
    keys, seqs = parse_list(fields, "fields"), seq_range(seq_start, seq_stop)
    if not {"data", "timestamps", "filled"} & set(wanted):
        keys = []  # the index (or uids) alone: a store need not read any data key
    service.check_events_size(uid, keys, seqs, wanted)
    cols = service.read_events(uid, fields=keys, seq_range=seqs, uids="uid" in wanted)
    columns: list[tuple[str, str | None, np.ndarray]] = []
    if "index" in wanted:
        columns += [("index", "seq_num", cols.seq_num), ("index", "time", cols.time)]
    if "uid" in wanted and cols.uid is not None:
        columns.append(("uid", None, cols.uid))
    for group in ("data", "timestamps", "filled"):
        if group in wanted:
            columns += [(group, key, value) for key, value in getattr(cols, group).items()]
    service.check_size(sum(np.asarray(c[2]).nbytes for c in columns), "the requested events")
    if arrow:
        return _arrow(columns)
    return _columns(columns, len(cols.seq_num), codec)


def _arrow(columns: list[tuple[str, str | None, np.ndarray]]) -> Response:
    """The columns as an Arrow IPC stream (one record batch)."""
    import pyarrow as pa

    from intake_broker.views.returns import arrow_array

    arrays, fields = [], []
    for group, key, values in columns:
        name = (
            key
            if group in ("index", "data") and key
            else group
            if key is None
            else f"{group}:{key}"
        )
        try:
            array = arrow_array(np.asarray(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects: each as JSON text
            array = pa.array([json.dumps(v, default=str) for v in np.asarray(values).tolist()])
            group = f"{group}/json"
        arrays.append(array)
        fields.append(pa.field(name, array.type, metadata={"group": group}))
    batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)


#: Bytes handed to the server at a time: its write buffer stays small (on Python 3.11 asyncio
#: sends a large buffer by deleting its front again and again, which costs more than the send).
SEND_BYTES = 1 << 20


def _columns(columns: list[tuple[str, str | None, np.ndarray]], rows: int, codec: str) -> Response:
    chosen = wire.choose_codec(parse_list(codec, "codecs") or ["none"])
    parts = wire.column_parts(columns, rows=rows, codec=chosen)
    size = sum(len(p) for p in parts)
    if size <= SEND_BYTES:
        return Response(b"".join(parts), media_type=wire.COLUMNS)

    async def pieces() -> AsyncIterator[bytes | memoryview]:
        for part in parts:
            view = memoryview(part).cast("B")
            for start in range(0, len(view), SEND_BYTES):
                yield view[start : start + SEND_BYTES]

    return StreamingResponse(
        pieces(), media_type=wire.COLUMNS, headers={"Content-Length": str(size)}
    )


# -- writing --------------------------------------------------------------------------------


async def read_json(request: Request, service: Service) -> Any:
    """The request body as JSON (or msgpack by Content-Type), size-checked."""
    declared = request.headers.get("content-length")
    limit = service.limits.body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OversizedRequest(
            f"the body has {int(declared)} bytes; at most {limit} are accepted", status=413
        )
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise OversizedRequest(f"the body exceeds {limit} bytes", status=413)
    kind = request.headers.get("content-type", wire.JSON)
    try:
        if kind.startswith(wire.MSGPACK):
            return wire.unpackb(bytes(raw))
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as err:
        what = "msgpack" if kind.startswith(wire.MSGPACK) else "JSON"
        raise InvalidRequest(f"the body is not valid {what}: {err}") from None
    except Exception as err:  # msgpack's own errors (ExtraData, FormatError, ...)
        raise InvalidRequest(f"the body is not valid msgpack: {err}") from None


async def _in_thread(func: Callable[..., T], *args: Any) -> T:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


@router.post(
    "/documents",
    summary="Insert one document",
    responses={
        **_ERRORS,
        405: {"description": "the store is read-only"},
        409: {"description": "a different document with this uid is stored"},
        422: {"description": "the document is invalid"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                wire.JSON: {
                    "schema": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "prefixItems": [{"type": "string"}, {"type": "object"}],
                    }
                }
            },
        }
    },
)
async def insert_document(request: Request, service: WriterDep) -> Response:
    """Store ``[name, doc]`` (a RunEngine document); re-inserting an identical document does
    nothing, a different one with a stored uid is a 409."""
    body = await read_json(request, service)
    if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], str)):
        raise InvalidRequest('the body must be [name, document], e.g. ["start", {...}]')
    name, doc = body
    if not isinstance(doc, dict):
        raise InvalidDocument(f"a {name} document must be an object, not {type(doc).__name__}")
    await _in_thread(_insert, service, name, doc)
    return respond(request, {"inserted": name, "uid": doc.get("uid", doc.get("datum_id"))})


def _insert(service: Service, name: str, doc: dict) -> None:
    try:
        service.insert(name, doc)
    except BrokerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        # a document that passed its schema but that the store cannot take apart
        raise InvalidDocument(
            f"the {name} document cannot be stored: {type(err).__name__}: {err}"
        ) from None
