"""Shared fixtures: an S3 server (moto) on a free port, and documents from a real RunEngine."""

from __future__ import annotations

import os
import uuid

import pytest

from intake_broker.testing.servers import S3Server, aws_test_credentials

BUCKET = "intake-broker-files"


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a free port), with one bucket; yields its options."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        server.filesystem().mkdir(BUCKET)
        yield {"endpoint_url": server.endpoint, "storage_options": server.storage_options,
               "bucket": BUCKET}


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
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, det4, det_with_conf, direct_img, motor, motor1, motor2

    RE = RunEngine({}, call_returns_result=False)
    runs: dict[str, list] = {}
    plans = {
        "scan": lambda: bp.scan([det], motor, -1, 1, 5),
        "count": lambda: bp.count([det], 3),
        "grid_scan": lambda: bp.grid_scan([det4], motor1, -1, 1, 3, motor2, -1, 1, 4),
        "det_with_conf": lambda: bp.count([det_with_conf]),
        "image": lambda: bp.count([direct_img], 2),
    }
    for scan_id, (label, plan) in enumerate(plans.items(), start=1):
        docs: list = []
        RE.md["scan_id"] = scan_id - 1  # the RunEngine increments it
        RE(plan(), lambda name, doc, docs=docs: docs.append((name, doc)),
           sample=f"sample-{label}")
        runs[label] = docs
    return runs


@pytest.fixture(autouse=True)
def _no_stray_aws_config(monkeypatch):
    """Keep a developer's ~/.aws from leaking into the tests."""
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
