"""Real servers for tests, on loopback: a moto S3 server with test credentials.

Shared by the core's tests and the drivers' (moto and s3fs are test dependencies)::

    with aws_test_credentials(), S3Server() as s3:
        s3.filesystem().mkdir("bucket")
        store = MyStore("s3://bucket/runs", storage_options=s3.storage_options)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

#: Credentials moto accepts; set so that no real AWS configuration is read.
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


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
        return {"key": "testing", "secret": "testing",
                "client_kwargs": {"endpoint_url": self.endpoint}}

    def filesystem(self):
        """An s3fs filesystem on this server (listings not cached)."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, use_listings_cache=False,
                                 skip_instance_cache=True)

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
