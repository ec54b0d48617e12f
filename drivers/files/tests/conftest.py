"""Shared fixtures: an S3 server (moto) on a free port, and documents from a real RunEngine."""

from __future__ import annotations

import os
import uuid

import pytest

from intake_broker.testing.recorded import recorded_runs
from intake_broker.testing.servers import S3Server, aws_test_credentials

BUCKET = "intake-broker-files"


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a free port), with one bucket; yields its options."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        server.filesystem().mkdir(BUCKET)
        yield {
            "endpoint_url": server.endpoint,
            "storage_options": server.storage_options,
            "bucket": BUCKET,
        }


@pytest.fixture
def s3_prefix(s3_server) -> str:
    """A fresh, empty ``s3://`` folder for one test."""
    return f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def bluesky_runs():
    """Documents of five plans run by a real RunEngine over ophyd.sim devices, as
    ``{label: [(name, doc), ...]}`` (the documents exactly as the RunEngine emitted them)."""
    pytest.importorskip("bluesky")
    pytest.importorskip("ophyd")
    return recorded_runs()


@pytest.fixture(autouse=True)
def _no_stray_aws_config(monkeypatch):
    """Keep a developer's ~/.aws from leaking into the tests."""
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
