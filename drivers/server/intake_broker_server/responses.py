"""Responses: JSON or msgpack by the ``Accept`` header, error bodies, and the status of each
error class."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from intake_broker import errors
from intake_broker.assets import AssetNotFound, AssetOutsideRoots, AssetReadError, UnknownAssetSpec
from intake_broker_remote import wire
from intake_broker_remote.errors import (
    DescriptorNotFound,
    InvalidRequest,
    OversizedRequest,
    ResourceNotFound,
    error_body,
)

log = logging.getLogger("intake_broker_server")

#: HTTP status of each error class (the first match along the class's MRO wins). Errors the
#: client caused are 4xx; a broken file or asset on the server is a 5xx with the same body.
STATUS: dict[type[BaseException], int] = {
    errors.RunNotFound: 404,
    errors.StreamNotFound: 404,
    DescriptorNotFound: 404,
    ResourceNotFound: 404,
    AssetNotFound: 404,
    errors.AmbiguousUID: 409,
    errors.DocumentConflict: 409,
    errors.InvalidDocument: 422,
    errors.BadQuery: 400,
    InvalidRequest: 400,
    OversizedRequest: 400,
    errors.ReadOnlyStore: 405,
    errors.WriteDenied: 403,
    AssetOutsideRoots: 403,
    UnknownAssetSpec: 501,
    AssetReadError: 500,
    errors.CorruptFile: 500,
    errors.UnknownDriver: 500,
    errors.BrokerError: 400,
}

_HTTP_NAMES = {
    400: "InvalidRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "OversizedRequest",
    415: "UnsupportedMediaType",
}


def wants_msgpack(request: Request) -> bool:
    """Whether the client asked for msgpack (``Accept: application/x-msgpack``)."""
    return wire.MSGPACK in request.headers.get("accept", "")


def respond(request: Request, payload: Any, status: int = 200) -> Response:
    """``payload`` as msgpack when the client accepts it, else as JSON."""
    if wants_msgpack(request):
        return Response(wire.packb(payload), status_code=status, media_type=wire.MSGPACK)
    return Response(wire.dumps(payload), status_code=status, media_type=wire.JSON)


def status_of(err: BaseException) -> int:
    explicit = getattr(err, "status", None)
    if isinstance(explicit, int):
        return explicit
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    request: Request,
    err: BaseException,
    status: int | None = None,
    name: str | None = None,
    cause: BaseException | None = None,
) -> Response:
    """The error body of ``err``; a 5xx is logged (with ``cause``'s traceback if given)."""
    status = status or status_of(err)
    body = error_body(err, name)
    if status >= 500:
        log.error(
            "%s %s failed: %s: %s",
            request.method,
            request.url.path,
            body["error"],
            body["message"],
            exc_info=cause,
        )
    return respond(request, body, status)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        where = " ".join(str(p) for p in problem.get("loc", ()))
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes a JSON (or msgpack) body ``{"error": name, "message": text}``."""

    @app.exception_handler(errors.BrokerError)
    async def broker_error(request: Request, err: errors.BrokerError) -> Response:
        return error_response(request, err)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        return error_response(request, InvalidRequest(_validation_message(err)), 400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        name = _HTTP_NAMES.get(err.status_code, "HTTPError")
        message = err.detail if isinstance(err.detail, str) else str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = (
                f"no such path {request.url.path!r}; the API is described at "
                "/openapi.json and /docs"
            )
        response = error_response(request, InvalidRequest(message), err.status_code, name)
        for key, value in (err.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        wrapped = RuntimeError(f"{type(err).__name__}: {err}")
        return error_response(request, wrapped, 500, "InternalServerError", cause=err)
