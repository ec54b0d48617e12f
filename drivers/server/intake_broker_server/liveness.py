"""Every request under a deadline, every failure answered on a connection that stays usable,
and a server that stops when told to.

:class:`RequestGuard` is the outermost application middleware. For each HTTP request it

- gives the request an id (``X-Request-ID`` on the answer, and in every error body and log line),
- sets a :class:`~intake_broker.deadline.Deadline` that the request's work (in whatever thread
  it runs) checks through :mod:`intake_broker.deadline`: the generic evaluator's loop, SQLite's
  progress handler and PostgreSQL's ``statement_timeout`` stop there,
- answers ``503 DeadlineExceeded`` itself if no answer has started by the deadline (work that
  does not check, such as a stuck C call, is left to finish in its thread; its late answer is
  dropped), so the client and the event loop never wait on it,
- answers an unexpected exception with a ``500 InternalServerError`` body that holds no
  message, SQL, path or traceback (those go to the log under the request id) instead of letting
  it reach uvicorn, which would close the keep-alive connection.

The deadline covers the time to the first byte of the answer; once a response has started
(a long document stream, say) the deadline is lifted and the client's pace rules.

:func:`exit_watchdog` is armed when the application shuts down (``serve`` turns it on): if
worker threads still hold the process a few seconds later, it ends the process, so SIGTERM
stops the server even with a request stuck in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from typing import Any

from intake_broker import deadline
from intake_broker.errors import BrokerError, DeadlineExceeded
from intake_broker_remote import wire
from intake_broker_remote.errors import error_body

log = logging.getLogger("intake_broker_server")

#: Seconds after its deadline that a request whose work does not check the deadline is
#: answered anyway (work that checks has answered by then).
GRACE = 0.1
#: The header naming the error of an error response (the remote client does not retry a
#: ``DeadlineExceeded``: the same request would take as long again).
ERROR_HEADER = "x-intake-broker-error"


def request_id(scope_or_request: Any) -> str:
    """The id of a request (``"-"`` outside :class:`RequestGuard`)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return str(scope.get("state", {}).get("request_id", "-"))


def deadline_error(seconds: float) -> DeadlineExceeded:
    """The error of a request stopped at its deadline."""
    return DeadlineExceeded(
        f"the request ran past the server's deadline of {seconds:g} s and was stopped; narrow "
        "the query (fewer runs, fewer terms, simpler patterns) or ask for less at once"
    )


def internal_error(rid: str) -> RuntimeError:
    """What a client is told of a failure of the server: nothing but where the log has it."""
    return RuntimeError(
        f"the server failed on this request; its log has the details under request id {rid}"
    )


async def send_error(
    scope: dict, send: Any, err: BaseException, status: int, name: str | None = None
) -> None:
    """Answer with an error body (JSON, or msgpack when the client accepts it)."""
    body = error_body(err, name)
    body["request_id"] = request_id(scope)
    accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
    if wire.MSGPACK in accept:
        data, media = wire.packb(body), wire.MSGPACK
    else:
        data, media = wire.dumps(body), wire.JSON
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(data)).encode()),
        (ERROR_HEADER.encode(), body["error"].encode()),
        (b"x-request-id", body["request_id"].encode()),
    ]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class ServerStopping(BrokerError, ConnectionError):
    """The server stopped before it answered (a 503: another try reaches a server that runs)."""


def _drain(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" noise


class RequestGuard:
    """ASGI middleware: a request id, a deadline, and a body for every failure (see the module).

    Parameters
    ----------
    app : ASGI application
    seconds : float or None
        The deadline of every request; None: no deadline (ids and failure bodies still).
    """

    def __init__(self, app: Any, seconds: float | None):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        limit = deadline.Deadline(self.seconds) if self.seconds else None
        state = {"started": False, "answered": False}

        async def guarded_send(message: dict) -> None:
            if state["answered"]:
                return  # answered already (at the deadline): the late answer is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                if limit is not None:
                    limit.lift()
                headers = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        token = deadline.activate(limit)
        try:  # the task copies the context now: its threads see this request's deadline
            task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        finally:
            deadline.deactivate(token)
        try:
            timeout = None if limit is None else self.seconds + GRACE  # type: ignore[operator]
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done and state["started"]:  # streaming an answer: the client's pace
                await asyncio.wait({task})
                done = {task}
        except asyncio.CancelledError:  # the server stops (or the client left)
            task.add_done_callback(_drain)
            task.cancel()
            if state["started"]:
                raise
            state["answered"] = True
            log.warning(
                "%s %s [request %s]: cancelled as the server stops",
                scope.get("method"),
                scope.get("path"),
                rid,
            )
            stopping = ServerStopping(
                "the server is stopping and did not finish this request; send it again"
            )
            await send_error(scope, send, stopping, 503)
            return
        if not done:
            task.add_done_callback(_drain)
            task.cancel()
            state["answered"] = True
            log.warning(
                "%s %s [request %s]: no answer by the deadline of %g s; answered 503 "
                "(its work, which does not check the deadline, ends in its thread)",
                scope.get("method"),
                scope.get("path"),
                rid,
                self.seconds,
            )
            await send_error(scope, send, deadline_error(self.seconds or 0), 503)
            return
        err = task.exception()
        if err is None:
            return
        if state["started"]:  # nothing left to answer with: the body breaks off
            log.error(
                "%s %s [request %s] failed while answering",
                scope.get("method"),
                scope.get("path"),
                rid,
                exc_info=err,
            )
            state["answered"] = True
            return
        state["answered"] = True
        if limit is not None and (limit.remaining() or 0) <= 0:
            # the store stopped its statement at the deadline (SQLite "interrupted",
            # PostgreSQL "canceling statement due to statement timeout", ...)
            log.info(
                "%s %s [request %s] stopped at its deadline: %s: %s",
                scope.get("method"),
                scope.get("path"),
                rid,
                type(err).__name__,
                err,
            )
            await send_error(scope, send, deadline_error(self.seconds or 0), 503)
            return
        log.error(
            "%s %s [request %s] failed", scope.get("method"), scope.get("path"), rid, exc_info=err
        )
        await send_error(scope, send, internal_error(rid), 500, "InternalServerError")


#: Seconds after the application shut down that :func:`exit_watchdog` ends the process.
EXIT_AFTER = 3.0


def exit_watchdog(after: float = EXIT_AFTER) -> None:
    """End this process ``after`` seconds from now unless it has ended by itself (a daemon
    timer: a process whose threads all finish exits before it fires). For the end of
    ``serve``: a request stuck in a worker thread would keep the interpreter from exiting."""

    def fire() -> None:
        stuck = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        log.error(
            "the server shut down %g s ago but threads still run (%s); ending the process",
            after,
            ", ".join(stuck) or "none",
        )
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(after, fire)
    timer.daemon = True
    timer.name = "intake-broker exit watchdog"
    timer.start()
