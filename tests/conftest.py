"""Servers and facilities for the tests that need several stores at once.

A moto S3 server and a SecantusDB (MongoDB wire protocol) server on loopback ports, started by
the tests themselves; ``facility`` copies ``catalogs/`` into a temporary folder and fills every
store its YAML files name with runs, through the YAML entries themselves.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from intake_broker.testing.factories import scalar_run
from intake_broker.testing.servers import S3Server, SecantusServer, aws_test_credentials, secantusd

CATALOGS = Path(__file__).resolve().parent.parent / "catalogs"
ARCHIVE_BUCKET = "nsls2-archive"
MONGO_PASSWORD = "iss-secret"
#: The members of catalogs/federation.yml's "everything", in order.
EVERYTHING = ["nsls2/csx", "nsls2/chx", "nsls2/iss", "nsls2/archive", "aps/xpcs", "aps/sim"]

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request


# -- S3 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server for the session."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        yield server


@pytest.fixture
def stoppable_s3():
    """A moto S3 server of this test alone, which the test may stop."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with aws_test_credentials(), S3Server() as server:
        yield server


# -- MongoDB (SecantusDB) -----------------------------------------------------------------------


class MongoServer(SecantusServer):
    """A SecantusDB server in memory on a free port, with a user ``iss``."""

    def __init__(self):
        self.pymongo = pytest.importorskip("pymongo")
        if secantusd() is None:
            pytest.skip("SecantusDB is not installed (pip install secantusdb)")
        super().__init__()
        client = self.pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=2000)
        try:
            client.admin.command("createUser", "iss", pwd=MONGO_PASSWORD, roles=["root"])
        finally:
            client.close()

    def drop(self, *databases: str) -> None:
        client = self.pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=2000)
        try:
            for name in databases:
                client.drop_database(name)
        finally:
            client.close()


@pytest.fixture(scope="session")
def mongo_server():
    """SecantusDB for the session (skips when the MongoDB driver or server is missing)."""
    pytest.importorskip(
        "intake_broker_mongo", reason="the MongoDB driver (intake-broker-mongo) is not installed"
    )
    server = MongoServer()
    yield server
    server.stop()


@pytest.fixture
def killable_mongo():
    """A SecantusDB server of this test alone, which the test may kill."""
    pytest.importorskip(
        "intake_broker_mongo", reason="the MongoDB driver (intake-broker-mongo) is not installed"
    )
    server = MongoServer()
    yield server
    server.stop()


# -- a facility -------------------------------------------------------------------------------


@dataclass
class Facility:
    """``catalogs/`` copied to ``folder``, its stores filled; what was written where."""

    folder: Path
    #: uid -> the members (``<file>/<entry>``) holding the run
    holders: dict[str, list[str]] = field(default_factory=dict)
    #: uid -> start time
    times: dict[str, float] = field(default_factory=dict)
    #: uid -> the label of the run (its start's ``sample``) and its plan name
    plans: dict[str, str] = field(default_factory=dict)
    plan_names: dict[str, str] = field(default_factory=dict)
    #: the members that could be filled (drivers installed, servers running)
    members: list[str] = field(default_factory=list)

    def path(self, name: str) -> str:
        return str(self.folder / name)

    def newest_first(self, *members: str) -> list[str]:
        """uids newest first: every run, or those held by any of ``members``."""
        uids = [u for u in self.times if not members or set(self.holders[u]) & set(members)]
        return sorted(uids, key=lambda u: (-self.times[u], u))


def _write(catalog, docs) -> None:
    for name, doc in docs:
        catalog.insert(name, doc)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def facility(tmp_path_factory, s3_server, request) -> Facility:
    """``catalogs/*.yml`` in a temporary folder, with runs in every store they name.

    CHX and XPCS get files beside the YAML; the archive (S3) mirrors one CHX run, one CSX run
    and has one of its own; CSX (native) and ISS (MongoDB) are filled when their drivers are
    installed (ISS with the password from ``ISS_MONGO_PASSWORD``, never written in the file).
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _fill(
            tmp_path_factory.mktemp("facility") / "catalogs", monkeypatch, s3_server, request
        )


def _fill(folder: Path, monkeypatch, s3_server, request) -> Facility:
    from intake_broker import open_catalog

    shutil.copytree(CATALOGS, folder)
    monkeypatch.setenv("ARCHIVE_S3_KEY", "testing")
    monkeypatch.setenv("ARCHIVE_S3_SECRET", "testing")
    monkeypatch.setenv("ARCHIVE_S3_ENDPOINT", s3_server.endpoint)
    fs = s3_server.filesystem()
    if fs.exists(ARCHIVE_BUCKET):
        fs.rm(ARCHIVE_BUCKET, recursive=True)
    fs.mkdir(ARCHIVE_BUCKET)
    mongo = None
    if _has("intake_broker_mongo"):
        mongo = request.getfixturevalue("mongo_server")
        mongo.drop("iss-metadatastore", "iss-assets")
        monkeypatch.setenv("ISS_MONGO_PASSWORD", MONGO_PASSWORD)
        monkeypatch.setenv("ISS_MONGO_HOST", mongo.host)

    result = Facility(folder)
    runs = {  # member: [(label, time, plan), ...]; labels shared between members are mirrors
        "nsls2/chx": [("chx-1", 1_700_000_100.0, "count"), ("shared-chx", 1_700_000_300.0, "scan")],
        "nsls2/archive": [
            ("shared-chx", 1_700_000_300.0, "scan"),
            ("archive-1", 1_600_000_000.0, "count"),
        ],
        "aps/xpcs": [("xpcs-1", 1_700_000_200.0, "scan"), ("xpcs-2", 1_700_000_900.0, "count")],
    }
    if _has("intake_broker_native"):
        runs["nsls2/csx"] = [
            ("csx-1", 1_700_000_500.0, "scan"),
            ("shared-csx", 1_700_000_700.0, "count"),
        ]
        runs["nsls2/archive"].append(("shared-csx", 1_700_000_700.0, "count"))
    if mongo is not None:
        runs["nsls2/iss"] = [("iss-1", 1_700_000_600.0, "scan")]
    documents: dict[str, list] = {}
    for member, made in runs.items():
        file, entry = member.split("/")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            catalog = open_catalog(folder / f"{file}.yml")[entry]
        for scan_id, (label, when, plan) in enumerate(made, start=1):
            if label not in documents:
                documents[label] = scalar_run(
                    time=when, scan_id=scan_id, plan_name=plan, sample=label
                )
            docs = documents[label]
            uid = docs[0][1]["uid"]
            _write(catalog, docs)
            result.holders.setdefault(uid, []).append(member)
            result.times[uid] = when
            result.plans[uid] = label
            result.plan_names[uid] = plan
        catalog.store.close()
        result.members.append(member)
    for holders in result.holders.values():
        holders.sort(key=EVERYTHING.index)
    return result
