"""Run databroker 1.2.5's own generic driver tests against our drivers (issue 17, item 5).

    python tests/compat/run_databroker_generic.py [--keep DIR] [-- PYTEST_ARGS...]

databroker's ``databroker/tests/test_v2/generic.py`` (21 tests, each over three example runs:
a scalar detector, 2-D images in the events, NPY_SEQ images in external files) is what each of
its four intake drivers had to pass. This script takes ``generic.py``, ``fixtures.py`` and
``transform.py`` unchanged from databroker 1.2.5's wheel (``pip download --no-deps
databroker==1.2.5``, cached under ``~/.cache/intake-broker``; databroker is never installed or
imported, and none of its files is kept in this repository), and writes beside them one test
module per driver whose ``bundle`` fixture does what databroker's ``test_jsonl.py``,
``test_msgpack.py``, ``test_mongo_normalized.py`` and ``test_mongo_embedded.py`` did -- write
the example run with the same suitcase serializer and open the same YAML catalog through plain
``intake.open_catalog`` -- with only this plumbing changed:

- MongoDB is SecantusDB (``intake_broker.testing.servers``) instead of ``localhost:27017``;
- the transform functions are named by the extracted module's path instead of
  ``databroker.tests.test_v2.transform.transform``;
- ``bluesky-mongo-embedded-catalog`` is named by its class path
  (``intake_broker_mongo.MongoEmbeddedCatalog``) until the package is installed again;
- only the ``local`` parameter (databroker's ``remote`` one needs intake 0.6's server).

It prints the number of tests passed, and the failures grouped by test and error.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

VERSION = "1.2.5"
CACHE = Path(os.path.expanduser("~")) / ".cache" / "intake-broker" / f"databroker-{VERSION}-wheel"
TAKEN = ("generic.py", "fixtures.py", "transform.py")
REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest

from .fixtures import *  # noqa: F401,F403  (databroker's hw, RE, detector, example_data)


@pytest.fixture(scope="session")
def mongo_uri():
    from intake_broker.testing.servers import SecantusServer

    with SecantusServer() as server:
        yield server.uri


@pytest.fixture(scope="module")
def db_factory(request, mongo_uri):  # databroker's, on SecantusDB
    import uuid

    import pymongo

    def inner():
        client = pymongo.MongoClient(mongo_uri)
        name = f"test-{uuid.uuid4()}"
        request.addfinalizer(lambda: client.drop_database(name))
        return client[name]

    return inner
"""

MODULE = '''
import os
import tempfile
import types
from functools import partial
from pathlib import Path

import intake
import pytest

from .generic import *  # noqa: F401,F403  (databroker's tests, unchanged)

TRANSFORM = __package__ + ".transform.transform"


def _extract_uri(db):
    return f"mongodb://{{db.client.address[0]}}:{{db.client.address[1]}}/{{db.name}}"


def _yaml(path, driver, args):
    transforms = "\\n".join(
        f"        {{k}}: {{TRANSFORM}}" for k in ("start", "stop", "resource", "descriptor")
    )
    Path(path).write_text(f"""
sources:
  xyz:
    description: Some imaginary beamline
    driver: "{{driver}}"
    container: catalog
    args:
{{args}}
      handler_registry:
        NPY_SEQ: ophyd.sim.NumpySeqHandler
    metadata:
      beamline: "00-ID"
  xyz_with_transforms:
    description: Some imaginary beamline
    driver: "{{driver}}"
    container: catalog
    args:
{{args}}
      handler_registry:
        NPY_SEQ: ophyd.sim.NumpySeqHandler
      transforms:
{{transforms}}
    metadata:
      beamline: "00-ID"
""")


@pytest.fixture(params=["local"], scope="module")
def bundle(request, example_data, db_factory):
    tmp_dir = Path(tempfile.mkdtemp())
    uid, docs = example_data
{body}
    for name, doc in docs:
        serializer(name, doc)
    if hasattr(serializer, "close"):
        serializer.close()
    path = tmp_dir / "intake_test_catalog.yml"
    _yaml(path, DRIVER, ARGS)
    cat = intake.open_catalog(str(path))
    return types.SimpleNamespace(
        cat=cat, uid=uid, docs=docs, remote=False, serializer_partial=serializer_partial
    )
'''

DRIVERS = {
    "jsonl": (
        "bluesky-jsonl-catalog",
        """
    from suitcase.jsonl import Serializer

    data = tmp_dir / "data"
    serializer_partial = partial(Serializer, data)
    serializer = serializer_partial()
    global DRIVER, ARGS
    DRIVER = "bluesky-jsonl-catalog"
    ARGS = f"      paths: {data / '*.jsonl'}"
""",
    ),
    "msgpack": (
        "bluesky-msgpack-catalog",
        """
    from suitcase.msgpack import Serializer

    data = tmp_dir / "data"
    serializer_partial = partial(Serializer, data)
    serializer = serializer_partial()
    global DRIVER, ARGS
    DRIVER = "bluesky-msgpack-catalog"
    ARGS = f"      paths: {data / '*.msgpack'}"
""",
    ),
    "mongo_normalized": (
        "bluesky-mongo-normalized-catalog",
        """
    from suitcase.mongo_normalized import Serializer

    mds_db, assets_db = db_factory(), db_factory()

    class _Serializer(Serializer):
        def _create_indexes(self):  # SecantusDB has no text index
            pass

    serializer_partial = partial(_Serializer, mds_db, assets_db)
    serializer = serializer_partial()
    global DRIVER, ARGS
    DRIVER = "bluesky-mongo-normalized-catalog"
    ARGS = (
        f"      metadatastore_db: {_extract_uri(mds_db)}\\n"
        f"      asset_registry_db: {_extract_uri(assets_db)}"
    )
""",
    ),
    "mongo_embedded": (
        "bluesky-mongo-embedded-catalog",
        """
    from suitcase.mongo_embedded import Serializer

    permanent_db = db_factory()

    class _Serializer(Serializer):
        def _create_indexes(self):  # SecantusDB has no text index
            pass

    serializer_partial = partial(_Serializer, permanent_db)
    serializer = serializer_partial()
    global DRIVER, ARGS
    DRIVER = "intake_broker_mongo.MongoEmbeddedCatalog"  # bluesky-mongo-embedded-catalog
    ARGS = f"      datastore_db: {_extract_uri(permanent_db)}"
""",
    ),
}


def wheel() -> Path:
    found = sorted(CACHE.glob("databroker-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"databroker=={VERSION}", "-d"]
        + [str(CACHE)],
        check=True,
    )
    return sorted(CACHE.glob("databroker-*.whl"))[0]


def lay_out(root: Path) -> Path:
    package = root / "dbgeneric"
    package.mkdir(parents=True)
    with zipfile.ZipFile(wheel()) as z:
        for name in TAKEN:
            (package / name).write_bytes(z.read(f"databroker/tests/test_v2/{name}"))
    (package / "__init__.py").write_text("")
    (package / "conftest.py").write_text(CONFTEST)
    for label, (_, body) in DRIVERS.items():
        (package / f"test_{label}.py").write_text(MODULE.format(body=textwrap.indent(body, "")))
    return package


def report(junit: Path) -> int:
    cases = ET.parse(junit).getroot().iter("testcase")
    outcome: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for case in cases:
        module = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("test_")
        name = case.get("name", "")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if case.find("skipped") is not None:
            outcome["skipped"].append((f"{module}::{name}", ""))
        elif failure is not None:
            message = (failure.get("message") or "").splitlines()[0][:160]
            outcome["failed"].append((f"{module}::{name}", message))
        else:
            outcome["passed"].append((f"{module}::{name}", ""))
    total = sum(len(v) for v in outcome.values())
    passed = len(outcome["passed"])
    print(f"\ndatabroker {VERSION} generic.py on our drivers: {passed} of {total} passed")
    by_test: dict[str, list[str]] = collections.defaultdict(list)
    for case, message in outcome["failed"]:
        module, name = case.split("::", 1)
        by_test[f"{name.split('[')[0]}: {message}"].append(f"{module}[{name.partition('[')[2]}")
    for key, where in sorted(by_test.items()):
        print(f"  FAILED {key}\n         {len(where)}x: {', '.join(sorted(where))}")
    for case, _ in outcome["skipped"]:
        print(f"  skipped {case}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", help="lay the tests out in this folder (kept) instead of a temp one"
    )
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dbgeneric-"))
    package = lay_out(root)
    junit = root / "junit.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-m", "pytest", str(package), "-q", "-p", "no:cacheprovider"]
        + ["-W", "ignore::DeprecationWarning", f"--junitxml={junit}", "--rootdir", str(root)]
        + args.pytest_args,
        env=env,
        cwd=root,
    )
    return report(junit)


if __name__ == "__main__":
    sys.exit(main())
