"""What the run page does beyond reading: who the caller is (so that it shows the annotation
controls only to a credential that may write), a run exported to a file download, and a live
run's progress pushed as server-sent events.

Every endpoint reads through :data:`~intake_broker_server.api.ServiceDep` (with
authentication: the principal's guarded store, exactly as the rest of the API). Annotations
are written through the store API's ``POST /api/v1/runs/{uid}/annotations`` (the ``write``
scope), not here.

An export is written by :func:`intake_broker.export.export_runs` into a temporary folder the
server makes (the client names only the run and a format, never a path), refused before it
starts when the run holds more than a response may carry, and again when the files written do;
at most :data:`MAX_EXPORTS` run at once. The live stream sends the run's progress when it
changes (the service is not told of new events, so it reads them every
:data:`LIVE_INTERVAL` seconds, as cheaply as ``.../progress``, resolving the credential again
each time), for at most :data:`LIVE_SECONDS`; a principal (without authentication: a client
address) holds at most :data:`LIVE_PER_USER` streams and the server :data:`LIVE_TOTAL`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Query as Param
from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from intake_broker.errors import BrokerError, ExportError
from intake_broker.store.abilities import Annotations
from intake_broker.store.annotations import MAX_NOTE_CHARS, MAX_TAG_CHARS, default_author
from intake_broker.views.datakeys import field_dtype, field_shape
from intake_broker_remote.errors import InvalidRequest, OversizedRequest, error_body

from ..api import _ERRORS, ServiceDep, service_for
from ..auth.errors import ProviderUnavailable
from ..responses import is_public, respond
from ..service import Service
from .routes import progress_of, router

#: Export formats and the module each needs (None: always there).
EXPORT_FORMATS: dict[str, str | None] = {
    "csv": None,
    "tsv": None,
    "jsonl": None,
    "msgpack": "msgpack",
    "parquet": "pyarrow",
    "nexus": "h5py",
    "zarr": "zarr",
}
#: Exports written at once by this process (more are a 429: try again).
MAX_EXPORTS = 2
#: Where exports are written (a new folder each, removed once sent); None: the system's
#: temporary folder.
EXPORT_FOLDER: str | None = None
#: Seconds between two reads of a live run's progress, the most one stream lasts (the page
#: then opens another), and streams per principal and per process.
LIVE_INTERVAL = 0.5
LIVE_SECONDS = 300.0
LIVE_PER_USER = 4
LIVE_TOTAL = 64
#: Seconds of silence after which a live stream sends a comment (so proxies keep it open).
LIVE_HEARTBEAT = 15.0

_exports = threading.BoundedSemaphore(MAX_EXPORTS)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_live_lock = threading.Lock()
_live: dict[str, int] = {}


class TooManyRequests(OversizedRequest):
    """More at once than the server takes (exports, live streams): a 429; try again later."""

    def __init__(self, message: str):
        super().__init__(message, status=429)


def export_formats() -> list[str]:
    """The export formats this server can write (their libraries are installed)."""
    return [
        name
        for name, module in EXPORT_FORMATS.items()
        if module is None or importlib.util.find_spec(module) is not None
    ]


@router.get("/me", summary="Who the caller is and what the credential allows", responses=_ERRORS)
def me(request: Request, service: ServiceDep) -> Response:
    """``{"user", "scopes", "auth", "annotations", "export_formats", "limits"}``: the page
    shows the annotation controls only when ``"write"`` is in ``scopes`` and the store keeps
    annotations (the server refuses a write without the scope anyway)."""
    identity = getattr(request.state, "identity", None)
    if identity is None:  # no authentication: whoever can connect (loopback, or --allow-writes)
        user = default_author(service.store)
        scopes = ["read"] if getattr(request.app.state, "read_only", False) else ["read", "write"]
    else:
        user, scopes = identity.principal.name, list(identity.scopes)
    return respond(
        request,
        {
            "user": user,
            "scopes": scopes,
            "auth": identity is not None,
            "annotations": service.store.supports(Annotations),
            "export_formats": export_formats(),
            "limits": {"note_chars": MAX_NOTE_CHARS, "tag_chars": MAX_TAG_CHARS},
        },
    )


@router.get("/login-options", summary="How the page may log in (public, no credentials)")
def login_options(request: Request) -> Response:
    """``{"auth", "api_key", "bearer", "oidc"}``: whether this server asks for credentials,
    takes API keys and bearer tokens, and, when its auth file has an ``oidc:`` block, where the
    page logs in (``{"issuer", "label", "authorization_endpoint", "token_endpoint",
    "client_id", "scope", "token"}``, a public client with PKCE: nothing secret). Answered
    without credentials: the page asks it before anyone has logged in."""
    auth = getattr(request.app.state, "auth", None)
    config = None if auth is None else auth.config
    oidc = None if config is None or config.oidc is None else config.oidc.public()
    return respond(
        request,
        {
            "auth": config is not None,
            "api_key": config is not None and config.api_keys is not None,
            "bearer": config is not None and config.jwt is not None,
            "oidc": oidc,
        },
    )


# -- export ----------------------------------------------------------------------------------


def estimated_bytes(service: Service, uid: str) -> int:
    """The bytes of a run's event data (rows times the size of a row of every field, images
    included): what an export of it holds at least."""
    total = 0
    for descriptor in service.descriptors(uid):
        rows = sum(c.rows for c in service.chunks(descriptor["uid"]))
        width = 16  # time and seq_num
        for dk in descriptor.get("data_keys", {}).values():
            try:
                size = max(field_dtype(dk).itemsize, 8) * int(np.prod(field_shape(dk)))
            except (TypeError, ValueError, BrokerError):
                size = 8
            width += size
        total += rows * width
    return total


def _zip(folder: Path, files: list[str], target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(folder / name, name)


@router.get(
    "/runs/{uid}/export",
    summary="A run exported to a file download",
    responses={
        **_ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        429: {"description": "too many exports at once; try again"},
    },
    response_class=Response,
)
def export(
    service: ServiceDep,
    uid: str,
    format: Annotated[str, Param(max_length=16, description="csv, jsonl, nexus, parquet, ...")],
) -> Response:
    """The run as ``intake_broker.export`` writes it in ``format``: the one file a format
    writes per run (jsonl, msgpack, nexus), else a zip of its files and ``manifest.json``
    (csv, tsv and parquet: a table per stream; zarr: a folder). Refused (400) when the run's
    data is larger than one response carries."""
    formats = export_formats()
    if format not in formats:
        raise InvalidRequest(f"format={format!r:.20} is not one of {', '.join(formats)}")
    record = service.run(uid)  # RunNotFound for a run the caller may not see
    service.check_size(estimated_bytes(service, record.uid), f"run {record.uid}")
    if not _exports.acquire(blocking=False):
        raise TooManyRequests(f"{MAX_EXPORTS} exports are being written; try again in a moment")
    folder = Path(tempfile.mkdtemp(prefix="intake-broker-export-", dir=EXPORT_FOLDER))
    try:
        from intake_broker.export import MANIFEST, export_runs
        from intake_broker.views.catalog import Run

        run = Run(service.store, record, assets=service.assets)
        try:
            manifest = export_runs([run], format, str(folder), progress=False, total=1)
        except ExportError as err:
            # the server's own folder failed (full, say): a 500 whose details only the log has
            raise RuntimeError(str(err)) from err
        files = [f.path for f in manifest.runs[record.uid].files]
        written = sum(f.bytes for f in manifest.runs[record.uid].files)
        if written > service.limits.response_bytes:
            raise OversizedRequest(
                f"the {format} export of run {record.uid} is {written / 1e6:.1f} MB, more than "
                f"one response carries ({service.limits.response_bytes / 1e6:.0f} MB); export "
                "it with intake-broker export where the data is"
            )
        inside = [f for f in files if (folder / f).resolve().is_relative_to(folder.resolve())]
        if inside != files:  # (an exporter writes under its destination; checked anyway)
            raise RuntimeError(f"the {format} exporter wrote outside its folder: {files[:5]}")
        if len(files) == 1 and "/" not in files[0]:
            path, name, kind = folder / files[0], files[0], "application/octet-stream"
        else:
            name = f"{_SAFE.sub('_', record.uid)[:100]}-{format}.zip"
            path = folder / name
            _zip(folder, [*files, MANIFEST], path)
            kind = "application/zip"
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        _exports.release()
    return FileResponse(
        path,
        media_type=kind,
        filename=name,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


# -- live ------------------------------------------------------------------------------------


def _again(request: Request, uid: str) -> dict[str, Any]:
    return progress_of(service_for(request, "read"), uid)


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


def _holder(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return f"user:{principal.name}"
    return f"host:{request.client.host if request.client else '?'}"


def _take_slot(holder: str) -> None:
    with _live_lock:
        if sum(_live.values()) >= LIVE_TOTAL:
            raise TooManyRequests(
                f"the server sends {LIVE_TOTAL} live streams already; the page polls instead"
            )
        if _live.get(holder, 0) >= LIVE_PER_USER:
            raise TooManyRequests(
                f"you have {LIVE_PER_USER} live streams open already (close a page); the "
                "page polls instead"
            )
        _live[holder] = _live.get(holder, 0) + 1


def _free_slot(holder: str) -> None:
    with _live_lock:
        left = _live.get(holder, 0) - 1
        if left > 0:
            _live[holder] = left
        else:
            _live.pop(holder, None)


@router.get(
    "/runs/{uid}/live",
    summary="A live run's progress as server-sent events",
    responses={
        **_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "the events"},
        429: {"description": "too many live streams; poll .../progress instead"},
    },
    response_class=StreamingResponse,
)
async def live(request: Request, service: ServiceDep, uid: str) -> Response:
    """``text/event-stream``: a ``progress`` event (what ``.../progress`` answers) now and
    whenever it changes; then ``end`` when the run stops, ``gone`` (with the error) when the
    run is removed or no longer visible, or ``timeout`` after :data:`LIVE_SECONDS` (ask
    again)."""
    first = await run_in_threadpool(progress_of, service, uid)  # a 404 before any stream
    holder = _holder(request)
    _take_slot(holder)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            current: dict[str, Any] = first
            sent: dict[str, Any] | None = None
            began = last = time.monotonic()
            while True:
                if current != sent:
                    yield _event("progress", current)
                    sent, last = current, time.monotonic()
                if current["stopped"]:
                    yield _event("end", {"uid": current["uid"]})
                    return
                now = time.monotonic()
                if now - began > LIVE_SECONDS:
                    yield _event("timeout", {"seconds": LIVE_SECONDS})
                    return
                if now - last > LIVE_HEARTBEAT:
                    yield ": still here\n\n"
                    last = now
                if await request.is_disconnected():
                    return
                await asyncio.sleep(LIVE_INTERVAL)
                try:  # the credential and the principal again: a revoked key or a lost
                    # proposal ends the stream at once, not when it times out
                    current = await run_in_threadpool(_again, request, uid)
                except ProviderUnavailable:
                    continue  # the identity provider is down for now: ask again later
                except BrokerError as err:  # removed, or no longer visible to this principal
                    shown = error_body(err) if is_public(err) else {"error": "BrokerError"}
                    yield _event("gone", shown)
                    return
        finally:
            _free_slot(holder)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
