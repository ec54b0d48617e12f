"""A MongoDB server for the mongo benchmarks: the ``--uri`` given, or a SecantusDB started here.

SecantusDB (``pip install secantusdb``, GPL, a test/benchmark tool only) is a MongoDB-wire
server written in Python on WiredTiger: every document it returns costs it tens of
microseconds, far more than a real ``mongod``. Figures against it are about the client's work
and the number of documents a query makes the server touch, not about MongoDB's speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymongo

from intake_broker.testing.servers import SecantusServer


@contextlib.contextmanager
def mongo_server(uri: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(server URI without database, description)``."""
    if uri:
        yield uri.rstrip("/"), f"MongoDB at {uri}"
        return
    try:
        server = SecantusServer()
    except (FileNotFoundError, RuntimeError) as err:
        raise SystemExit(f"no --uri given and {err}") from None
    with server:
        client = pymongo.MongoClient(server.uri)
        version = client.admin.command("buildInfo").get("secantusVersion", "?")
        client.close()
        yield (
            server.uri,
            (f"SecantusDB {version} (in memory) on {server.uri}, started by this script"),
        )


PEERS_NOTE = (
    "peers: databroker 1.2.5 / 2.0.2 not measured here (no peer Python given; pass "
    "--peer-python /path/to/python with databroker installed to add them)"
)
