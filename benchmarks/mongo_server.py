"""A MongoDB server for the mongo benchmarks: the ``--uri`` given, or a SecantusDB started here.

SecantusDB (``pip install secantusdb``, GPL, a test/benchmark tool only) is a MongoDB-wire
server written in Python on WiredTiger: every document it returns costs it tens of
microseconds, far more than a real ``mongod``. Figures against it are about the client's work
and the number of documents a query makes the server touch, not about MongoDB's speed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mongo_server(uri: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(server URI without database, description)``."""
    if uri:
        yield uri.rstrip("/"), f"MongoDB at {uri}"
        return
    beside = Path(sys.executable).with_name("secantusd-py")
    exe = str(beside) if beside.exists() else shutil.which("secantusd-py")
    if exe is None:
        raise SystemExit("no --uri given and SecantusDB is not installed (pip install secantusdb)")
    port = _free_port()
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                             ":memory:", "--standalone", "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = f"mongodb://127.0.0.1:{port}"
    client = pymongo.MongoClient(server, serverSelectionTimeoutMS=500)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("SecantusDB did not start") from None
                time.sleep(0.1)
        version = client.admin.command("buildInfo").get("secantusVersion", "?")
        yield server, f"SecantusDB {version} (in memory) on {server}, started by this script"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def best_of(repeat: int, func) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


PEERS_NOTE = ("peers: databroker 1.2.5 / 2.0.2 not measured here (no peer Python given; pass "
              "--peer-python /path/to/python with databroker installed to add them)")
