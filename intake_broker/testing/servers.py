"""Real servers for tests, on loopback: a moto S3 server with test credentials, and a
SecantusDB (MongoDB-wire) server.

Shared by the core's tests, the drivers' and the benchmarks (moto, s3fs, secantusdb and
pymongo are test dependencies)::

    with aws_test_credentials(), S3Server() as s3:
        s3.filesystem().mkdir("bucket")
        store = MyStore("s3://bucket/runs", storage_options=s3.storage_options)

    with SecantusServer() as mongo:         # mongo.uri: mongodb://127.0.0.1:<port>
        store = MongoStore(f"{mongo.uri}/metadatastore")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Credentials moto accepts; set so that no real AWS configuration is read.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@contextlib.contextmanager
def aws_test_credentials() -> Iterator[None]:
    """Set :data:`AWS_TEST_ENV` for the duration, restoring the environment after."""
    saved = {name: os.environ.get(name) for name in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class S3Server:
    """A moto S3 server on a free loopback port; ``stop()`` takes it down for real (to test a
    store that goes away). Also a context manager."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.running = True

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec / s3fs options reaching this server."""
        return {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint},
        }

    def filesystem(self):
        """An s3fs filesystem on this server (listings not cached)."""
        import s3fs

        return s3fs.S3FileSystem(
            **self.storage_options, use_listings_cache=False, skip_instance_cache=True
        )

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def secantusd() -> str | None:
    """The ``secantusd-py`` executable (beside this Python first), or None when SecantusDB is
    not installed."""
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else shutil.which("secantusd-py")


class SecantusServer:
    """A SecantusDB server in memory on a free loopback port, ready (it answered a ping) once
    made; ``uri`` is ``mongodb://127.0.0.1:<port>``. ``stop()`` kills it for real (to test a
    store whose server goes away). Also a context manager.

    Raises
    ------
    FileNotFoundError
        When SecantusDB is not installed (``pip install secantusdb``).
    RuntimeError
        When it exits or does not answer within ``timeout`` seconds (with its log's end).
    """

    def __init__(self, timeout: float = 60.0) -> None:
        import pymongo

        exe = secantusd()
        if exe is None:
            raise FileNotFoundError(
                "SecantusDB is not installed (pip install secantusdb, or "
                "the mongo driver's test extra)"
            )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.uri = f"mongodb://{self.host}"
        self._log = tempfile.NamedTemporaryFile(prefix="secantusd-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [
                exe,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                ":memory:",
                "--standalone",
                "--log-level",
                "WARNING",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=500
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"secantusd-py exited with {self.process.returncode}: "
                        f"{Path(self._log.name).read_text()[-2000:]}"
                    )
                try:
                    client.admin.command("ping")
                    break
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"SecantusDB did not answer on port {self.port} within {timeout:g} s"
                        ) from None
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
        if os.path.exists(self._log.name):
            os.unlink(self._log.name)

    def __enter__(self) -> SecantusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
