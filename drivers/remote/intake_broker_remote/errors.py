"""Errors on the wire: the JSON error body, and the exception class each error name maps to.

The server answers every failure with ``{"error": <name>, "message": <text>}`` (plus details
such as ``candidates``); the remote store raises the class of that name, so ``cat["nope"]``
raises :class:`~intake_broker.errors.RunNotFound` whether the catalog is local or remote.
"""

from __future__ import annotations

from typing import Any

from intake_broker import errors as core
from intake_broker.errors import BrokerError, DescriptorNotFound, ResourceNotFound


class RemoteError(BrokerError):
    """An error reported by an intake-broker server that has no more specific class here."""

    def __init__(self, message: str, *, status: int | None = None, name: str | None = None):
        super().__init__(message)
        self.status = status
        self.name = name


class InvalidRequest(RemoteError, ValueError):
    """A request the server cannot understand: a bad parameter, path or body."""


class OversizedRequest(RemoteError, ValueError):
    """A request for more than the server answers at once (too many runs, rows or bytes)."""


class Unauthorized(RemoteError, PermissionError):
    """The server needs credentials, or refused the ones sent (401): pass ``api_key=`` or an
    ``Authorization`` header the server accepts. The message says why they were refused."""


class Forbidden(RemoteError, PermissionError):
    """The credentials are valid but do not allow this request (403): e.g. writing with a key
    that may only read."""


class ServiceUnavailable(RemoteError, ConnectionError):
    """The server cannot be reached, or answered 502/503/504 after every retry."""


class ServerError(RemoteError):
    """The server failed (a 5xx): the server's log has the details."""


def _classes() -> dict[str, type[BaseException]]:
    from intake_broker import assets

    found: dict[str, type[BaseException]] = {}
    for module in (core, assets):
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BrokerError):
                found[name] = obj
    for cls in (
        InvalidRequest,
        OversizedRequest,
        DescriptorNotFound,
        ResourceNotFound,
        Unauthorized,
        Forbidden,
        ServiceUnavailable,
        ServerError,
        RemoteError,
    ):
        found[cls.__name__] = cls
    return found


def error_body(err: BaseException, name: str | None = None) -> dict[str, Any]:
    """The JSON body that describes ``err``."""
    body: dict[str, Any] = {"error": name or type(err).__name__, "message": str(err)}
    if isinstance(err, core.AmbiguousUID):
        body["candidates"] = err.candidates
        body["prefix"] = err.prefix
    if isinstance(err, core.AnnotationConflict):
        body["current"] = err.current  # visible to the writer: the guard checked it
    return body


#: The class of an error whose body names none we know (a proxy's 401, say).
_BY_STATUS: dict[int, type[RemoteError]] = {401: Unauthorized, 403: Forbidden}


def raise_for_body(status: int, body: Any, fallback: str) -> None:
    """Raise the exception a server error body names (``fallback`` text when it has none)."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        name, message = str(body.get("error", "")), body["message"]
    else:
        name, message = "", fallback
    cls = _classes().get(name)
    if cls is core.AmbiguousUID:
        raise core.AmbiguousUID(body.get("prefix", ""), list(body.get("candidates", [])))
    if cls is core.AnnotationConflict:
        current = body.get("current")
        raise core.AnnotationConflict(message, current if isinstance(current, dict) else None)
    if cls is None or not issubclass(cls, BrokerError):
        cls = ServerError if status >= 500 else _BY_STATUS.get(status, InvalidRequest)
    if issubclass(cls, RemoteError):
        raise cls(f"{message} (HTTP {status})", status=status, name=name or None)
    raise cls(message)
