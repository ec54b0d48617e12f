"""Test helpers: a live server on a free loopback port, in a thread of this process.

>>> from intake_broker_server.testing import LiveServer
>>> with LiveServer() as server:                     # one real socket, many stores
...     url = server.mount(MemoryStore())          # each store gets its own URL prefix
...     RemoteStore(url).count()

Each mounted store is a separate application under ``/s/<token>``, so a test suite that needs a
new, empty store per test (the conformance suite) gets one without restarting the server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import uvicorn

from .app import create_app


class _Dispatcher:
    """An ASGI app that routes ``/s/<token>/...`` to the app mounted under that token."""

    def __init__(self) -> None:
        self.apps: dict[str, Any] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        parts = path.split("/", 3)
        app = self.apps.get(parts[2]) if len(parts) > 2 and parts[1] == "s" else None
        if app is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b'{"error": "NotFound", "message": "no store mounted here"}',
                }
            )
            return
        prefix = f"/s/{parts[2]}"
        # ASGI's convention (as Starlette reads it): ``path`` stays whole, ``root_path`` says
        # which leading part belongs to the mount.
        scope = {**scope, "root_path": scope.get("root_path", "") + prefix}
        await app(scope, receive, send)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn on 127.0.0.1 in a daemon thread, serving any number of mounted stores."""

    def __init__(self, log_level: str = "warning"):
        self._dispatcher = _Dispatcher()
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response waits ~40 ms for a delayed ACK (Nagle).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self._dispatcher, log_level=log_level, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def mount(self, source: Any, **kwargs: Any) -> str:
        """Serve ``source`` (a catalog, store or Service) under a new prefix; its URL."""
        token = uuid.uuid4().hex[:12]
        self._dispatcher.apps[token] = create_app(source, **kwargs)
        return f"{self.url}/s/{token}"

    def unmount(self, url: str) -> None:
        self._dispatcher.apps.pop(url.rstrip("/").rsplit("/", 1)[-1], None)

    def app(self, url: str) -> Any:
        """The application mounted at ``url``."""
        return self._dispatcher.apps[url.rstrip("/").rsplit("/", 1)[-1]]


#: The header naming the process that answered, added only by :func:`app_with_worker_pid`.
WORKER_HEADER = "X-Test-Worker-Pid"


def app_with_worker_pid() -> Any:
    """A test-only uvicorn factory: the worker's application (``app_from_env``) with each
    answer naming its process in :data:`WORKER_HEADER`, and ``GET /_test/worker`` counting
    what it answered, so that a test can tell which worker answered what. Never what
    ``serve`` runs (a production server tells no one its pids)."""
    from .app import app_from_env

    app = app_from_env()
    pid = str(os.getpid())
    answered: dict[str, int] = {}

    @app.middleware("http")
    async def name_the_worker(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers[WORKER_HEADER] = pid
        key = f"{request.method} {request_kind(request.url.path)} {response.status_code}"
        answered[key] = answered.get(key, 0) + 1
        return response

    @app.get("/_test/worker", include_in_schema=False)
    def worker() -> dict[str, Any]:
        """This worker's pid and what it answered: ``{"METHOD kind status": count}``."""
        return {"pid": pid, "answered": dict(answered)}

    return app


def request_kind(path: str) -> str:
    """A request path with its uids left out (``/api/v1/descriptors/{uid}/events`` ->
    ``descriptors/events``)."""
    parts = path.split("/api/v1/", 1)[-1].strip("/").split("/")
    return "/".join(p for i, p in enumerate(parts) if i % 2 == 0 or len(parts) == 1)


@contextlib.contextmanager
def serve_workers(
    catalog: str,
    *,
    workers: int = 2,
    entry: str | None = None,
    auth: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """``serve(catalog, workers=workers, entry=entry, auth=auth)`` in a subprocess on a free
    loopback port, its workers running :func:`app_with_worker_pid`; yields the URL once ``/healthz``
    answers, and stops the server (SIGTERM) after."""
    import httpx

    port = free_port()
    code = (
        "import uvicorn\n"
        "from intake_broker_server import serve\n"
        "real = uvicorn.run\n"
        "def run(app, **kwargs):\n"
        "    if app == 'intake_broker_server.app:app_from_env':\n"
        "        app = 'intake_broker_server.testing:app_with_worker_pid'\n"
        "    real(app, **kwargs)\n"
        "uvicorn.run = run\n"
        f"serve({catalog!r}, port={port}, workers={workers}, entry={entry!r}, auth={auth!r}, "
        "log_level='warning')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server with {workers} workers did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_error(response: Any, status: int, name: str, *words: str) -> dict:
    """Check that an ``httpx`` response is an error of this status whose JSON body names
    ``name`` and whose message holds each of ``words``; the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"] == name, body
    for word in words:
        assert word in body["message"], body
    return body


def worker_answers(url: str, workers: int = 2, timeout: float = 30) -> dict[str, dict[str, int]]:
    """``{pid: {"METHOD kind status": count}}`` of each worker of a server started by
    :func:`serve_workers`, asked by fresh connections until ``workers`` of them answered (or
    ``timeout`` seconds passed)."""
    import httpx

    found: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(
        base_url=url, limits=httpx.Limits(max_keepalive_connections=0), timeout=10
    ) as http:
        while len(found) < workers and time.monotonic() < deadline:
            answer = http.get("/_test/worker").json()
            found[answer["pid"]] = answer["answered"]
    return found
