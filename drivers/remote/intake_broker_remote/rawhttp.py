"""Bulk GETs over plain ``http://`` on a socket of our own: the body goes from the kernel
straight into the caller's buffers (``socket.recv_into``), with no HTTP parser copying it.

httpx reads a body as ``bytes`` pieces that h11 has appended to its buffer and sliced out
again: three copies of every byte before the caller gets it, which on loopback halves what a
socket carries. Here only the status line and headers are parsed (bodies with a
``Content-Length``, chunked or until close); everything else an HTTP client does -- the URL,
the query string, default and auth headers -- comes from the ``httpx.Client`` that builds the
request. :class:`~intake_broker_remote.client.HTTPClient` uses this only for ``http://`` URLs
that no proxy intercepts, and only for binary column bodies.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Callable

import httpx

#: Bytes asked of the socket per ``recv_into`` (1 MiB keeps a read within the CPU caches).
RECV_BYTES = 1 << 20
#: Longest status line and headers accepted.
MAX_HEAD = 1 << 16
#: Idle connections kept per pool.
MAX_IDLE = 32


class ProtocolError(ConnectionError):
    """The server's answer is not the HTTP/1.1 this reader understands."""


def usable(url: httpx.URL) -> bool:
    """Whether requests to ``url`` may go over a plain socket: ``http`` and no proxy set in
    the environment for its host (httpx would use the proxy)."""
    if url.scheme != "http" or not url.host:
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(url.host))


class Connection:
    """One keep-alive connection: a request out, a response's head and body in."""

    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = memoryview(b"")  # bytes received after the head
        self.reused = False

    def close(self) -> None:
        self.sock.close()

    def alive(self) -> bool:
        """Whether the server has not closed this idle connection (nor sent anything)."""
        try:
            self.sock.setblocking(False)
            try:
                return not self._pending and self.sock.recv(1, socket.MSG_PEEK) is None
            finally:
                self.sock.settimeout(self.timeout)
        except BlockingIOError:
            return True  # nothing to read: open
        except OSError:
            return False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readinto(self, view: memoryview) -> None:
        """Fill ``view`` from the body (exactly ``len(view)`` bytes)."""
        total, pos = len(view), 0
        if self._pending:
            pos = min(total, len(self._pending))
            view[:pos] = self._pending[:pos]
            self._pending = self._pending[pos:]
        while pos < total:
            got = self.sock.recv_into(view[pos:], min(total - pos, RECV_BYTES))
            if not got:
                raise ProtocolError(
                    f"the server closed the connection after {pos} of {total} bytes"
                )
            pos += got

    def _more(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ProtocolError("the server closed the connection")
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        """The status and the headers (names in lower case) of the next response."""
        data = bytearray(self._pending)
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > MAX_HEAD:
                raise ProtocolError(f"no end of the headers in {len(data)} bytes")
            data += self._more()
        self._pending = memoryview(bytes(data[end + 4 :]))
        status_line, *lines = bytes(data[:end]).decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def _line(self) -> bytes:
        data = bytearray(self._pending)
        while (end := data.find(b"\r\n")) < 0:
            if len(data) > MAX_HEAD:
                raise ProtocolError("a chunk size line is too long")
            data += self._more()
        self._pending = memoryview(bytes(data[end + 2 :]))
        return bytes(data[:end])

    def read_body(self, status: int, headers: dict[str, str]) -> bytes:
        """A whole (small) body: by ``Content-Length``, chunked, or until the server closes."""
        if status in (204, 304) or status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while size := int(self._line().split(b";")[0].strip() or b"0", 16):
                piece = bytearray(size)
                self.readinto(memoryview(piece))
                out += piece
                self._line()
            while self._line():  # trailers, then the empty line
                pass
            return bytes(out)
        length = headers.get("content-length")
        if length is not None:
            body = bytearray(int(length))
            self.readinto(memoryview(body))
            return bytes(body)
        out = bytearray(self._pending)
        self._pending = memoryview(b"")
        while data := self.sock.recv(RECV_BYTES):
            out += data
        headers["connection"] = "close"
        return bytes(out)


class Pool:
    """Keep-alive connections to one ``host:port``, shared by threads."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def acquire(self) -> Connection:
        """An idle connection the server has not closed, or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return Connection(self.host, self.port, self.timeout)
            if conn.alive():
                return conn
            conn.close()

    def release(self, conn: Connection) -> None:
        conn.reused = True
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _over(body: memoryview) -> Callable[[memoryview], None]:
    """``readinto`` over a body already received."""
    pos = 0

    def readinto(view: memoryview) -> None:
        nonlocal pos
        if pos + len(view) > len(body):
            raise ProtocolError(f"the body has {len(body)} bytes; more were asked")
        view[:] = body[pos : pos + len(view)]
        pos += len(view)

    return readinto


def head_bytes(request: httpx.Request) -> bytes:
    """The request line and headers of a body-less ``request`` (asking for no
    content-encoding: the body is read into buffers as it is)."""
    lines = [request.method.encode() + b" " + request.url.raw_path + b" HTTP/1.1"]
    for name, value in request.headers.raw:
        if name.lower() not in (b"accept-encoding", b"connection", b"content-length"):
            lines.append(name + b": " + value)
    lines += [b"Accept-Encoding: identity", b"", b""]
    return b"\r\n".join(lines)


Consume = Callable[[Callable[[memoryview], None], int], object]


def exchange(
    pool: Pool, request: httpx.Request, consume: Consume
) -> tuple[int, dict[str, str], object]:
    """Send ``request``; ``(status, headers, consume(readinto, size))`` for a 2xx answer,
    ``(status, headers, body bytes)`` for any other.

    A kept connection the server had closed while it was idle is replaced, silently.
    """
    data = head_bytes(request)
    while True:
        conn = pool.acquire()
        try:
            conn.send(data)
            status, headers = conn.read_head()
            break
        except OSError:  # ProtocolError too
            conn.close()
            if not conn.reused:
                raise
            pool.close()  # closed by the server while idle, as the others may be: a new one
    try:
        length = headers.get("content-length")
        if not 200 <= status < 300:
            result: object = conn.read_body(status, headers)
        elif headers.get("content-encoding", "identity").lower() != "identity":
            raise ProtocolError(
                f"the server sent a {headers['content-encoding']} body; identity was asked for"
            )
        elif length is not None and length.isdigit():
            result = consume(conn.readinto, int(length))
        else:  # chunked, or until the server closes: small bodies, not ours
            body = memoryview(conn.read_body(status, headers))
            result = consume(_over(body), len(body))
    except BaseException:
        conn.close()
        raise
    if headers.get("connection", "").lower() == "close":
        conn.close()
    else:
        pool.release(conn)
    return status, headers, result
