"""One pooled HTTP client per store: timeouts, retries with exponential back-off, error bodies
turned back into the exceptions the server raised, and binary bodies read without extra
copies."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import httpx

from . import rawhttp, wire
from .errors import ServiceUnavailable, raise_for_body

T = TypeVar("T")

#: Statuses worth another try: a proxy or the server says it is briefly unable.
RETRY_STATUSES = frozenset({502, 503, 504})
#: The header naming the error of an error answer (see intake_broker_server.liveness).
ERROR_HEADER = "x-intake-broker-error"
#: Failures worth another try: nothing reached the server, or the connection broke.
RETRY_ERRORS = (httpx.TransportError,)
#: Bytes httpcore asks of the socket per read. Its default (64 KiB) caps a loopback transfer at
#: about half of what 1 MiB reads give; the value only sizes a ``recv``, so raising it changes
#: nothing else (and is left alone if someone has set it already).
READ_BYTES = 1 << 20


def _tune_httpcore() -> None:
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # another httpcore layout: keep its default
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", None) == 64 * 1024:
        HTTP11Connection.READ_NUM_BYTES = READ_BYTES


def _retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an answer is worth another try: a 502/503/504, but not a request the server
    stopped at its deadline (the same request would take as long again)."""
    return status in RETRY_STATUSES and headers.get(ERROR_HEADER) != "DeadlineExceeded"


def _error(response: httpx.Response) -> None:
    _raise(response.request, response.status_code, response.headers, response.content)


def _raise(request: httpx.Request, status: int, headers: Mapping[str, str], content: bytes) -> None:
    """The exception an error response's body names."""
    try:
        body = (
            wire.unpackb(content)
            if headers.get("content-type", "").startswith(wire.MSGPACK)
            else json.loads(content)
        )
    except Exception:  # not our server, or no body: keep the status and some text
        body = None
    text = content[:200].decode("utf-8", "replace")
    raise_for_body(status, body, f"{request.method} {request.url} answered {status}: {text!r}")


class _PartsReader:
    """``readinto(view)`` over an iterator of byte strings (what httpx gives)."""

    def __init__(self, parts: Iterator[bytes | memoryview]):
        self._parts = parts
        self._rest = memoryview(b"")

    def __call__(self, view: memoryview) -> None:
        total, pos = len(view), 0
        while pos < total:
            if not self._rest:
                self._rest = memoryview(next(self._parts, b""))
                if not self._rest:
                    raise httpx.RemoteProtocolError(
                        f"the body ended after {pos} of {total} bytes asked"
                    )
            n = min(total - pos, len(self._rest))
            view[pos : pos + n] = self._rest[:n]
            self._rest = self._rest[n:]
            pos += n


class HTTPClient:
    """An ``httpx.Client`` made on first use (and anew in a forked process).

    Parameters
    ----------
    url : str
        The server's base URL (``http://host:8000`` or with a path prefix).
    timeout : float
        Seconds to wait for a connection and for each read.
    headers : dict, optional
        Sent with every request.
    api_key : str, optional
        Sent as ``Authorization: Apikey <key>``.
    retries : int
        Further tries after a connection failure or a 502/503/504 (never after another 4xx
        or 5xx), waiting ``backoff * 2**n`` seconds (with jitter) before try ``n + 1``.
    backoff : float
        The first wait, in seconds.
    max_connections : int
        Connections kept open to the server (for dask's threads reading chunks at once).
    raw_reads : bool
        Read binary bodies (event columns) from a socket of our own straight into the
        arrays they fill, for ``http://`` URLs that no proxy intercepts (see
        :mod:`~intake_broker_remote.rawhttp`); False reads them through httpx too.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        max_connections: int = 32,
        raw_reads: bool = True,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Apikey {api_key}"
        self.retries = retries
        self.backoff = backoff
        self.max_connections = max_connections
        self.raw_reads = raw_reads
        self._raw: rawhttp.Pool | None = None
        self._client: httpx.Client | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def options(self) -> dict[str, Any]:
        """The constructor's arguments (what a pickle keeps)."""
        return {
            "timeout": self.timeout,
            "headers": self.headers,
            "retries": self.retries,
            "backoff": self.backoff,
            "max_connections": self.max_connections,
            "raw_reads": self.raw_reads,
        }

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                limits = httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                )
                _tune_httpcore()
                self._client = httpx.Client(
                    base_url=self.url, headers=self.headers, timeout=self.timeout, limits=limits
                )
                base = self._client.base_url
                self._raw = (
                    rawhttp.Pool(base.host, base.port or 80, self.timeout)
                    if (self.raw_reads and rawhttp.usable(base))
                    else None
                )
                self._pid = os.getpid()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
                if self._raw is not None:
                    self._raw.close()
            self._client = None
            self._raw = None

    def _wait(self, attempt: int) -> None:
        time.sleep(self.backoff * 2**attempt * (0.5 + random.random()))

    def _unavailable(self, method: str, path: str, why: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"{method} {self.url}{path} failed after {self.retries + 1} tries: {why}"
        )

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives; retried until its status is known
        (errors while the body is read are the caller's to retry)."""
        for attempt in range(self.retries + 1):
            context = self.client.stream(method, path, **kwargs)
            try:
                response = context.__enter__()
            except RETRY_ERRORS as err:
                if attempt == self.retries:
                    raise self._unavailable(method, path, f"{type(err).__name__}: {err}") from err
                self._wait(attempt)
                continue
            try:
                retry = _retry(response.status_code, response.headers)
                if retry and attempt < self.retries:
                    self._wait(attempt)
                    continue
                if retry:
                    raise self._unavailable(method, path, f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    response.read()
                    _error(response)
                yield response
                return
            finally:
                context.__exit__(None, None, None)

    def request(
        self, method: str, path: str, *, accept: str = wire.MSGPACK, **kwargs: Any
    ) -> bytearray:
        """The whole body of a successful response, retrying transport failures, in one
        writable buffer."""
        headers = {"Accept": accept, **kwargs.pop("headers", {})}
        for attempt in range(self.retries + 1):
            try:
                with self.stream(method, path, headers=headers, **kwargs) as response:
                    size = response.headers.get("content-length")
                    encoded = response.headers.get("content-encoding", "identity")
                    if size is not None and size.isdigit() and encoded == "identity":
                        body = bytearray(int(size))
                        view, pos = memoryview(body), 0
                        for part in response.iter_bytes():
                            view[pos : pos + len(part)] = part
                            pos += len(part)
                        if pos != len(body):
                            raise httpx.RemoteProtocolError(
                                f"the body ended after {pos} of {len(body)} bytes"
                            )
                        return body
                    return bytearray(response.read())
            except httpx.TransportError as err:  # the body broke off: the request again
                if attempt == self.retries:
                    raise self._unavailable(method, path, f"{type(err).__name__}: {err}") from err
                self._wait(attempt)
        raise AssertionError("unreachable")

    def fetch(
        self,
        path: str,
        consume: rawhttp.Consume,
        *,
        accept: str,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """GET ``path`` and hand its body to ``consume(readinto, size)`` as it arrives:
        ``readinto(view)`` fills ``view`` with the next ``len(view)`` bytes, and ``consume``
        reads all ``size`` of them (it may be called again for a retry: it must start over).
        Returns what ``consume`` returns; error statuses raise as in :meth:`request`."""
        client = self.client
        request = client.build_request("GET", path, params=params, headers={"Accept": accept})
        for attempt in range(self.retries + 1):
            if self._raw is None:  # httpx retries until the status is known
                with self.stream(
                    "GET", path, params=params, headers={"Accept": accept}
                ) as response:
                    size = response.headers.get("content-length")
                    if (
                        size is None
                        or not size.isdigit()
                        or response.headers.get("content-encoding", "identity") != "identity"
                    ):
                        body = memoryview(response.read())
                        return consume(_PartsReader(iter([body])), len(body))
                    try:
                        return consume(_PartsReader(response.iter_bytes()), int(size))
                    except httpx.TransportError as err:  # the body broke off
                        why = f"{type(err).__name__}: {err}"
            else:
                try:
                    status, headers, result = rawhttp.exchange(self._raw, request, consume)
                except OSError as err:  # refused, reset, timed out, cut short
                    why = f"{type(err).__name__}: {err}"
                else:
                    if status < 300:
                        return result
                    if not _retry(status, headers):
                        _raise(request, status, headers, result)  # type: ignore[arg-type]
                    why = f"HTTP {status}"
            if attempt == self.retries:
                raise self._unavailable("GET", path, why)
            self._wait(attempt)
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        """A metadata GET, decoded from msgpack."""
        clean = {k: v for k, v in params.items() if v is not None}
        return wire.unpackb(self.request("GET", path, params=clean))

    def post(self, path: str, payload: Any, **params: Any) -> Any:
        """A POST of a msgpack body, the answer decoded."""
        clean = {k: v for k, v in params.items() if v is not None}
        return wire.unpackb(
            self.request(
                "POST",
                path,
                content=wire.packb(payload),
                headers={"Content-Type": wire.MSGPACK},
                params=clean,
            )
        )
