"""Responses: JSON or msgpack by the ``Accept`` header, error bodies, and the status of each
error class."""

from __future__ import annotations

import logging
import re
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

from .auth.errors import AuthError
from .liveness import ERROR_HEADER, request_id

log = logging.getLogger("intake_broker_server")


#: Errors whose message names what is on the server (a file's path, a database's host, an
#: asset's location) rather than what the client sent: the message is logged under the request
#: id and the client is told only the error's name and that id. So is the message of any error
#: that is not a BrokerError, and of any 5xx but those in :data:`PUBLIC_5XX`.
HIDDEN: tuple[type[BaseException], ...] = (
    AssetNotFound,
    AssetReadError,
    errors.CorruptFile,
    errors.UnknownDriver,
)
#: 5xx errors whose message is for the client: what it may do about it.
PUBLIC_5XX: tuple[type[BaseException], ...] = (errors.DeadlineExceeded, AuthError, UnknownAssetSpec)

#: HTTP status of each error class (the first match along the class's MRO wins; a class may
#: also carry its own ``status``). Errors the client caused are 4xx; a request stopped at its
#: deadline, or a store that cannot be reached, is a 503; a broken file or asset on the server
#: is a 500. A BrokerError of no class named here is a 400 when it derives from ValueError,
#: KeyError or LookupError (a refusal of what was sent) and a 500 otherwise.
STATUS: dict[type[BaseException], int] = {
    errors.RunNotFound: 404,
    errors.StreamNotFound: 404,
    DescriptorNotFound: 404,
    ResourceNotFound: 404,
    AssetNotFound: 404,
    errors.AmbiguousUID: 409,
    errors.DocumentConflict: 409,
    errors.AnnotationConflict: 409,
    errors.BadAnnotation: 422,
    errors.InvalidDocument: 422,
    errors.BadQuery: 400,
    InvalidRequest: 400,
    OversizedRequest: 400,
    errors.ReadOnlyStore: 405,
    errors.NotSupported: 501,
    errors.WriteDenied: 403,
    AssetOutsideRoots: 403,
    errors.DeadlineExceeded: 503,
    UnknownAssetSpec: 501,
    AssetReadError: 500,
    errors.CorruptFile: 500,
    errors.UnknownDriver: 500,
    ConnectionError: 503,
    ValueError: 400,
    LookupError: 400,
    errors.BrokerError: 500,
}

#: Text that must never reach a client (SQL from a database driver, a Python traceback).
_LEAKS = re.compile(
    r"\[SQL:|\[parameters:|sqlalche\.me|Traceback \(most recent call last\)|"
    r"File \"[^\"]+\", line \d+|\b(SELECT|INSERT|UPDATE|DELETE)\b.+\b(FROM|INTO|SET|WHERE)\b",
    re.DOTALL,
)

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
    """The HTTP status of an error (its own ``status``, else :data:`STATUS` along its MRO)."""
    explicit = getattr(err, "status", None)
    if isinstance(explicit, int):
        return explicit
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def is_public(err: BaseException) -> bool:
    """Whether the client may read ``err``'s message (see :data:`HIDDEN`); a message that holds
    SQL or a traceback never is."""
    if not isinstance(err, errors.BrokerError) or isinstance(err, HIDDEN):
        return False
    if status_of(err) >= 500 and not isinstance(err, PUBLIC_5XX):
        return False
    return _LEAKS.search(str(err)) is None


def _who(request: Request) -> str:
    """Who made a request, for the log: principal, credential kind and the key's public id
    (never a secret)."""
    identity = getattr(request.state, "identity", None)
    if identity is not None:
        key = f" {identity.key_id}" if identity.key_id else ""
        return f"{identity.principal.name} ({identity.method}{key})"
    header = request.headers.get("authorization", "").strip()
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "apikey":
        public, dot, _ = credential.strip().partition(".")
        if not dot or not public:  # not <id>.<secret>: nothing of it is known to be public
            return "a malformed apikey"
        return f"apikey {re.sub(r'[^A-Za-z0-9_-]', '?', public[:40])}"
    return f"{scheme.lower()} credential" if scheme else "anonymous"


def log_refusal(request: Request, status: int, err: BaseException) -> None:
    """Log a refusal at INFO: who, what, the status and the reason (the README's promise)."""
    log.info(
        "refused %s %s [request %s] for %s: %d %s: %s",
        request.method,
        request.url.path,
        request_id(request),
        _who(request),
        status,
        type(err).__name__,
        err,
    )


def _hidden(request: Request) -> bool:
    """Whether the run or descriptor a 404 was about exists, unseen by the request's principal
    (the body does not say so: it reads like a missing one; the log does)."""
    uid = request.path_params.get("uid")
    service = getattr(request.app.state, "service", None)
    if not isinstance(uid, str) or service is None:
        return False
    try:
        if "/api/v1/descriptors/" in request.url.path:
            service.store.descriptor_run(uid)
        else:
            service.store.run(uid)
    except Exception:
        return False
    return True


def error_response(
    request: Request,
    err: BaseException,
    status: int | None = None,
    name: str | None = None,
    cause: BaseException | None = None,
) -> Response:
    """The error body of ``err``: its name, its message when the client may read it (else
    where the log has it), and the request id; a 5xx or a hidden message is logged."""
    status = status or status_of(err)
    rid = request_id(request)
    shown: BaseException = err
    if not is_public(err):
        shown = RuntimeError(
            f"the server could not answer this request ({name or type(err).__name__}); its "
            f"log has the details under request id {rid}"
        )
    body = error_body(shown, name or type(err).__name__)
    details = getattr(err, "details", None)
    if shown is err and isinstance(details, dict):  # e.g. the column of a query's syntax error
        body.update({k: v for k, v in details.items() if k not in body})
    body["request_id"] = rid
    if status >= 500 or shown is not err:
        log.error(
            "%s %s [request %s] failed: %d %s: %s",
            request.method,
            request.url.path,
            rid,
            status,
            name or type(err).__name__,
            err,
            exc_info=cause,
        )
    elif status in (401, 403) or isinstance(err, errors.WriteDenied):
        log_refusal(request, status, err)
    response = respond(request, body, status)
    response.headers[ERROR_HEADER] = body["error"]
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


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
        response = error_response(request, err)
        if response.status_code == 404 and getattr(request.state, "identity", None) is not None:
            from starlette.concurrency import run_in_threadpool

            if await run_in_threadpool(_hidden, request):
                log_refusal(request, 404, err)  # a run that is there, but not for them
        return response

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
        # (RequestGuard answers these first, so that the connection stays open; this is the
        # answer of an application mounted without it)
        return error_response(request, err, 500, "InternalServerError", cause=err)
