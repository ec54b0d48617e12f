"""The application: ``create_app`` over a catalog or store, the factory the workers call, and
``serve``, what ``intake-broker serve`` runs."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response

from intake_broker.store import DocumentStore
from intake_broker_remote import wire

from . import api, web, zarr_layout
from .auth import AuthConfig, Authenticator
from .auth.config import CHALLENGE
from .auth.errors import AuthError
from .liveness import RequestGuard, exit_watchdog
from .responses import error_response, install_error_handlers, respond
from .service import Limits, Service

__version__ = "0.1.0"

#: Environment variables the worker processes read their catalog from (``serve`` sets them).
CATALOG_ENV = "INTAKE_BROKER_SERVER_CATALOG"
ENTRY_ENV = "INTAKE_BROKER_SERVER_ENTRY"
DATA_ENV = "INTAKE_BROKER_SERVER_DATA"
#: ``module:attribute`` of an AuthConfig (or of a function returning one) for the workers.
AUTH_ENV = "INTAKE_BROKER_SERVER_AUTH"
#: The asset roots of the workers, as a JSON list of folders and URL prefixes.
ASSET_ROOTS_ENV = "INTAKE_BROKER_SERVER_ASSET_ROOTS"
#: Seconds of a request's deadline (``serve`` reads its default from here, and sets it for
#: the workers); ``none`` or ``0``: no deadline.
DEADLINE_ENV = "INTAKE_BROKER_SERVER_DEADLINE"
#: "1": other processes serve the same store (several workers or hosts), so each write is
#: flushed at once (:attr:`~intake_broker_server.service.Limits.shared_writes`; set by ``serve``).
SHARED_WRITES_ENV = "INTAKE_BROKER_SERVER_SHARED_WRITES"
#: "1": refuse writes (a server bound beyond loopback without auth; set by ``serve``).
READ_ONLY_ENV = "INTAKE_BROKER_SERVER_READ_ONLY"
#: Seconds ``serve`` waits, after SIGTERM, for requests in progress before it cancels them (and
#: :data:`~intake_broker_server.liveness.EXIT_AFTER` more before it ends a process whose
#: threads are stuck).
SHUTDOWN_SECONDS = 3
#: Seconds ``/healthz`` waits for the store before it answers 503.
HEALTH_SECONDS = 0.75


def load_auth(spec: AuthConfig | str | None) -> AuthConfig | None:
    """An :class:`AuthConfig`, given as one, as ``"module:attribute"`` naming one (or a
    function of no arguments returning one), or as an auth YAML file (``*.yml``/``*.yaml``,
    see :mod:`~intake_broker_server.auth.file`).

    Raises
    ------
    ValueError
        A one-line message: the module or attribute that is not there (with a did-you-mean),
        or the file, line and field of a mistake in an auth file.
    """
    if spec is None or isinstance(spec, AuthConfig):
        return spec
    import difflib
    import importlib

    if spec.endswith((".yml", ".yaml")):
        from .auth.file import load_auth_file

        return load_auth_file(spec)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"auth must be 'module:attribute' naming an AuthConfig, not {spec!r}")
    try:
        imported = importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"--auth {spec}: cannot import {module!r} ({err})") from None
    if not hasattr(imported, name):
        close = difflib.get_close_matches(
            name, [n for n in dir(imported) if not n.startswith("_")], n=1
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"--auth {spec}: module {module!r} has no {name!r}{hint}")
    found = getattr(imported, name)
    config = found() if callable(found) and not isinstance(found, AuthConfig) else found
    if not isinstance(config, AuthConfig):
        raise TypeError(f"--auth {spec} is a {type(config).__name__}, not an AuthConfig")
    return config


def _deadline_from_env(default: float | None) -> float | None:
    text = os.environ.get(DEADLINE_ENV, "").strip().lower()
    if not text:
        return default
    if text in ("none", "0", "off"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(
            f"{DEADLINE_ENV}={text!r} is not a number of seconds (or 'none' for no deadline)"
        ) from None
    if not seconds > 0:
        raise ValueError(f"{DEADLINE_ENV}={text!r}: a deadline must be > 0 seconds (or 'none')")
    return seconds


def create_app(
    source: Any,
    *,
    limits: Limits | None = None,
    auth: AuthConfig | None = None,
    asset_roots: Any = None,
    exit_when_stopped: bool = False,
    read_only: bool = False,
) -> FastAPI:
    """An ASGI application serving ``source``.

    Parameters
    ----------
    source : BrokerCatalog, DocumentStore or Service
        What to serve: a catalog (its store, filter and asset options), a bare store, or a
        prepared :class:`~intake_broker_server.service.Service`.
    limits : Limits, optional
        Page and response size limits.
    auth : AuthConfig, optional
        Who may ask and what they see: every request is resolved to a principal (API key,
        bearer token or anonymous) and served from ``GuardedStore(store, policy, principal)``.
        None: no authentication, every request sees everything ``source`` shows.
    asset_roots : str or list of str, optional
        Folders and fsspec URL prefixes external assets may be read from (besides the
        catalog's ``asset_roots`` and ``root_map`` targets); the server reads no other asset,
        and refuses resources naming one (see :mod:`intake_broker.assets.roots`).
    exit_when_stopped : bool
        When the application shuts down, end the process
        :data:`~intake_broker_server.liveness.EXIT_AFTER` seconds later if a stuck request
        keeps it alive (what ``serve`` runs; not for an application embedded in a process
        that goes on).
    read_only : bool
        Without ``auth``, refuse every request that writes (403): what ``serve`` does on a
        non-loopback address unless ``allow_writes``.

    Every request runs under ``limits.deadline`` (see
    :class:`~intake_broker_server.liveness.RequestGuard`); ``/healthz`` is answered on the event
    loop, with its own threads for the store's answer, while other requests are slow.
    """
    if isinstance(source, Service):
        if asset_roots is not None:
            raise ValueError("give asset_roots to the Service, not to create_app")
        service = source
    elif isinstance(source, DocumentStore):
        service = Service(source, limits=limits, asset_roots=asset_roots)
    else:
        service = Service.from_catalog(source, limits=limits, asset_roots=asset_roots)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if exit_when_stopped:
            exit_watchdog()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served by web.install from local files (works offline)
        redoc_url=None,
        title="intake-broker",
        version=__version__,
        summary="Bluesky runs over HTTP: the store contract as JSON/msgpack, event data as "
        "binary columns, streams as zarr v3.",
    )
    app.state.service = service
    app.state.auth = None if auth is None else Authenticator(auth)
    app.state.read_only = read_only
    install_error_handlers(app)
    app.add_middleware(RequestGuard, seconds=service.limits.deadline)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, err: AuthError) -> Response:
        response = error_response(request, err)
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        return response

    app.include_router(web.router)
    app.include_router(api.router)
    app.include_router(zarr_layout.router)
    web.install(app)

    health: dict[str, anyio.CapacityLimiter] = {}

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz(request: Request) -> Response:
        """``{"status": "ok"}`` when the store answers (a page of at most one run) within
        ``HEALTH_SECONDS``; else a 503. Answered on the event loop, with threads of its own
        for the store, so that slow requests filling the worker threads do not delay it."""
        limiter = health.setdefault("limiter", anyio.CapacityLimiter(2))
        with anyio.move_on_after(HEALTH_SECONDS):
            await anyio.to_thread.run_sync(
                lambda: service.store.runs(limit=1), limiter=limiter, abandon_on_cancel=True
            )
            return respond(request, {"status": "ok", "version": __version__})
        return respond(
            request,
            {
                "status": "unavailable",
                "version": __version__,
                "message": f"the store did not answer within {HEALTH_SECONDS} s",
            },
            503,
        )

    @app.get("/api/v1", summary="What this server offers")
    def info(request: Request, seen: api.ServiceDep) -> Response:
        store = seen.store
        return respond(
            request,
            {
                "version": __version__,
                "store": type(store).__name__,
                "writable": bool(store.writable),
                "codecs": wire.available_codecs(),
                "limits": {
                    "deadline": service.limits.deadline,
                    "page": service.limits.page,
                    "response_bytes": service.limits.response_bytes,
                    "body_bytes": service.limits.body_bytes,
                },
            },
        )

    return app


def open_served_catalog(
    spec: str | None = None, entry: str | None = None, data: str | None = None
) -> Any:
    """The catalog ``serve`` serves: a YAML file's entry, a store name, or the default one."""
    from intake_broker.cli import open_cli_catalog

    return open_cli_catalog(spec or None, entry or None, data or None)


def app_from_env() -> FastAPI:
    """The application of one worker, over the catalog named by the environment
    (``INTAKE_BROKER_SERVER_CATALOG`` / ``_ENTRY`` / ``_DATA``; the default catalog when
    unset). What ``uvicorn --factory intake_broker_server.app:app_from_env`` runs."""
    catalog = open_served_catalog(
        os.environ.get(CATALOG_ENV), os.environ.get(ENTRY_ENV), os.environ.get(DATA_ENV)
    )
    limits = Limits(
        deadline=_deadline_from_env(Limits.deadline),
        shared_writes=os.environ.get(SHARED_WRITES_ENV) == "1",
    )
    roots = os.environ.get(ASSET_ROOTS_ENV)
    return create_app(
        catalog,
        limits=limits,
        auth=load_auth(os.environ.get(AUTH_ENV) or None),
        asset_roots=json.loads(roots) if roots else None,
        exit_when_stopped=True,
        read_only=os.environ.get(READ_ONLY_ENV) == "1",
    )


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, with this server's log (refusals, failures under their
    request id, requests stopped at their deadline) on uvicorn's handler at ``level``."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["intake_broker_server"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def run_app(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve one application (from :func:`create_app`, with ``exit_when_stopped=True``) in this
    process until SIGTERM or Ctrl-C, as :func:`serve` does with one worker: requests in
    progress then get ``SHUTDOWN_SECONDS`` before they are cancelled."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_level),
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )


def serve(
    catalog_spec: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    *,
    entry: str | None = None,
    data: str | None = None,
    log_level: str = "info",
    auth: AuthConfig | str | None = None,
    asset_roots: Sequence[str] | None = None,
    deadline: float | None | str = "env",
    read_only: bool = False,
    shared_writes: bool | None = None,
) -> None:
    """Serve a catalog over HTTP until interrupted.

    Parameters
    ----------
    catalog_spec : str, optional
        A YAML catalog file (with ``entry``), the name of an installed store for the default
        folder in that format, or None for the embedded default catalog.
    host, port : str, int
        Where to listen (loopback by default: put a reverse proxy with TLS in front to serve
        other hosts).
    workers : int
        Worker processes. Each opens the catalog itself; they share nothing but the store, so
        the store must be one that several processes can open (files, a database). The memory
        store lives in one process and cannot have several workers.
    entry : str, optional
        The entry of the YAML file (may be left out when the file has one).
    data : str, optional
        The data directory of the default catalog.
    shared_writes : bool, optional
        Flush a buffering store (native, files) after each write, so that every process
        serving the store sees an acknowledged document at once (a run's documents may reach
        several processes). Default: with several workers; say True for several hosts of one
        worker each behind a load balancer.
    log_level : str
        uvicorn's log level.
    auth : AuthConfig or str, optional
        Authentication and access control (see :func:`create_app`); with several workers,
        give it as ``"module:attribute"`` naming an AuthConfig (or a function returning one),
        which each worker imports.
    asset_roots : list of str, optional
        Folders and fsspec URL prefixes external assets may be read from (what
        ``intake-broker serve --asset-root`` gives); without them, and without a catalog
        ``asset_roots`` or ``root_map``, the server reads no external asset.
    deadline : float or None
        Seconds each request may take to its first byte (default:
        ``$INTAKE_BROKER_SERVER_DEADLINE``, else 30); past it the request's work is stopped
        where the store allows and it is answered ``503 DeadlineExceeded``. None: no deadline.

    SIGTERM (or Ctrl-C) stops the server: requests in progress get ``SHUTDOWN_SECONDS`` to
    finish, then are cancelled, and a process still held by a stuck thread
    :data:`~intake_broker_server.liveness.EXIT_AFTER` seconds later is ended.

    With ``read_only`` and no ``auth``, every request that writes is refused (what
    ``intake-broker serve`` does on a non-loopback address unless ``--allow-writes``).
    """
    import uvicorn

    from intake_broker.assets.roots import AssetRoots
    from intake_broker.store.memory import MemoryStore

    seconds = _deadline_from_env(Limits.deadline) if deadline == "env" else deadline
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"deadline must be a number of seconds > 0 or None, not {deadline!r}")
    catalog = open_served_catalog(catalog_spec, entry, data)  # fail here, before forking
    shared = workers > 1 if shared_writes is None else bool(shared_writes)
    if asset_roots:
        AssetRoots.of(list(asset_roots))  # a bad root fails here too (ValueError)
    config = load_auth(auth)
    if workers > 1 and isinstance(auth, AuthConfig):
        raise ValueError(
            "with several workers give auth as 'module:attribute' (each worker "
            "imports it), not an AuthConfig object"
        )
    if workers > 1 and isinstance(catalog.store, MemoryStore):
        raise ValueError(
            "a memory store lives in one process: serve it with workers=1, or "
            "serve a store kept in files or a database with several workers"
        )
    for name, value in (
        (CATALOG_ENV, catalog_spec),
        (ENTRY_ENV, entry),
        (DATA_ENV, data),
        (AUTH_ENV, auth if isinstance(auth, str) else None),
        (ASSET_ROOTS_ENV, json.dumps([str(r) for r in asset_roots]) if asset_roots else None),
        (DEADLINE_ENV, "none" if seconds is None else repr(float(seconds))),
        (READ_ONLY_ENV, "1" if read_only else None),
        (SHARED_WRITES_ENV, "1" if shared else None),
    ):
        if value:
            os.environ[name] = str(value)
        else:
            os.environ.pop(name, None)
    if workers == 1:
        app = create_app(
            catalog,
            limits=Limits(deadline=seconds, shared_writes=shared),
            auth=config,
            asset_roots=asset_roots,
            exit_when_stopped=True,
            read_only=read_only,
        )
        run_app(app, host=host, port=port, log_level=log_level)
        return
    uvicorn.run(
        "intake_broker_server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=log_config(log_level),
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )


def browse(
    catalog_spec: str | None = None,
    *,
    entry: str | None = None,
    data: str | None = None,
    port: int = 0,
    open_page: bool = True,
    log_level: str = "warning",
) -> None:
    """Serve a catalog (the local default one when ``catalog_spec`` is None) on 127.0.0.1, one
    worker, no authentication (only this machine can connect), and open its web page with
    :func:`webbrowser.open` once the server listens (or print the address: ``open_page=False``).
    What ``intake-broker browse`` runs; stops on Ctrl-C or SIGTERM."""
    import socket
    import threading
    import webbrowser

    import uvicorn

    if not 0 <= port < 65536:
        raise ValueError(f"port must be 0 (any free port) to 65535, not {port}")
    catalog = open_served_catalog(catalog_spec, entry, data)
    app = create_app(catalog, exit_when_stopped=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        raise ValueError(
            f"cannot listen on 127.0.0.1:{port} ({err}); choose another --port"
        ) from None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            log_config=log_config(log_level),
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        )
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            print(f"intake-broker: browsing the catalog at {url} (Ctrl-C to stop)", flush=True)
            if open_page:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])
