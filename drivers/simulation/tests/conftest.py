"""Shared fixtures: an S3 server (moto) on a free port, documents from a real RunEngine, and
simulation outputs written the way simulation codes write them."""

from __future__ import annotations

import os
import uuid
import warnings

import pytest

from intake_broker.testing.recorded import recorded_runs
from intake_broker.testing.servers import S3Server, aws_test_credentials

BUCKET = "intake-broker-simulation"


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a free port), with one bucket; yields its options."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        server.filesystem().mkdir(BUCKET)
        yield {"storage_options": server.storage_options, "bucket": BUCKET, "server": server}


@pytest.fixture
def s3_prefix(s3_server) -> str:
    """A fresh, empty ``s3://`` folder for one test."""
    return f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def bluesky_runs():
    """Documents of five plans run by a real RunEngine over ophyd.sim devices."""
    pytest.importorskip("bluesky")
    pytest.importorskip("ophyd")
    return recorded_runs()


@pytest.fixture(autouse=True)
def _quiet_zarr_and_aws(monkeypatch):
    """Keep a developer's ~/.aws out; zarr's note on consolidated metadata is not ours."""
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*was not created with `asynchronous=True`")
        yield
