"""Servers for the native store's tests, started here on loopback: a private PostgreSQL
cluster (initdb + pg_ctl, as an unprivileged user when run as root) and a moto S3 server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

from intake_broker.testing.recorded import recorded_runs
from intake_broker.testing.servers import S3Server, aws_test_credentials

BUCKET = "intake-broker-native"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> str | None:
    """The folder of Debian's PostgreSQL binaries (initdb, pg_ctl)."""
    for candidate in (
        os.path.dirname(shutil.which("initdb") or ""),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
    ):
        if candidate and all(
            os.access(os.path.join(candidate, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")
        ):
            return candidate
    return None


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL cluster of our own on 127.0.0.1 (a free port), in a temporary folder;
    yields its base URL (user ``postgres``, trust authentication on loopback only)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are not on this machine: looked on "
            "PATH and in /usr/lib/postgresql/*/bin"
        )
    base = tempfile.mkdtemp(prefix="intake-broker-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip(
                "running as root without runuser: cannot start PostgreSQL as an unprivileged user"
            )
        as_user = [runuser, "-u", "nobody", "--"]
        os.chmod(base, 0o755)
        shutil.chown(base, "nobody")
    data, log = os.path.join(base, "data"), os.path.join(base, "log")
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [
            *as_user,
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=base,
    )
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        [
            *as_user,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-o",
            options,
            "-l",
            log,
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=base,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_index(server: str) -> str:
    """A fresh, empty run index in the test cluster: a schema of its own, chosen through the
    connection's ``search_path``."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    return f"{server}?options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty run index (its own schema) in the test cluster."""
    return new_postgres_index(postgres_server)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a free port) with one bucket; yields its options."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        server.filesystem().mkdir(BUCKET)
        yield {"storage_options": server.storage_options, "bucket": BUCKET}


@pytest.fixture
def s3_data(s3_server) -> str:
    """A fresh, empty ``s3://`` prefix for one test's zarr columns."""
    return f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def bluesky_runs():
    """Documents of five plans run by a real RunEngine over ophyd.sim devices, as
    ``{label: [(name, doc), ...]}``."""
    pytest.importorskip("bluesky")
    pytest.importorskip("ophyd")
    return recorded_runs(sample=lambda label: {"name": f"sample-{label}"})


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server):
    """A fresh run index shared by the tests of one module."""
    return new_postgres_index(postgres_server)
