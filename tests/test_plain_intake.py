"""YAML catalogs through plain ``intake.open_catalog`` (issue 16): every example entry opens,
what opening them imports is declared by README command 1's install, one meaning for relative
paths and variables, nothing created on open, missing locations are errors naming the entry
and the file; intake's idioms (describe, serialize, walk, discover, to_dask, reprs); streams
handed to plain xarray and intake-xarray users as zarr stores."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path

import intake
import numpy as np
import pytest

from intake_broker import open_catalog
from intake_broker.errors import EmptyLocationWarning, NotSupported, StoreNotFound
from intake_broker.testing import insert_all
from intake_broker.testing.factories import scalar_run
from intake_broker.views.catalog import BrokerCatalog, Run

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "catalogs"
ARCHIVE_BUCKET = "nsls2-archive"
MONGO_PASSWORD = "iss-secret"


def write(folder: Path, text: str, name: str = "site.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# -- the example catalogs, through plain intake ---------------------------------------------


def example_entries() -> list[tuple[str, str]]:
    """(file, entry) of every entry of every YAML file in catalogs/ (new files included)."""
    import yaml

    found = []
    for path in sorted(CATALOGS.glob("*.y*ml")):
        for entry in yaml.safe_load(path.read_text())["sources"]:
            found.append((path.name, entry))
    return found


@pytest.fixture(scope="module")
def examples(tmp_path_factory, s3_server, request):
    """catalogs/ copied to a temporary folder, with the servers its entries name: the archive
    bucket on moto, ISS on SecantusDB (when the MongoDB driver and server are installed)."""
    folder = tmp_path_factory.mktemp("examples") / "catalogs"
    shutil.copytree(CATALOGS, folder)
    env = {
        "ARCHIVE_S3_KEY": "testing",
        "ARCHIVE_S3_SECRET": "testing",
        "ARCHIVE_S3_ENDPOINT": s3_server.endpoint,
    }
    fs = s3_server.filesystem()
    if not fs.exists(ARCHIVE_BUCKET):
        fs.mkdir(ARCHIVE_BUCKET)
    try:
        mongo = request.getfixturevalue("mongo_server")
    except pytest.skip.Exception:
        mongo = None
    if mongo is not None:
        env.update(ISS_MONGO_PASSWORD=MONGO_PASSWORD, ISS_MONGO_HOST=mongo.host)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield folder, env, mongo is not None


@pytest.mark.parametrize(("file", "entry"), example_entries())
def test_every_example_entry_opens_through_plain_intake_and_creates_nothing(
    examples, file, entry, tmp_path, monkeypatch
):
    folder, _, has_mongo = examples
    if entry == "iss" and not has_mongo:
        pytest.skip("the MongoDB driver or SecantusDB is not installed")
    monkeypatch.chdir(tmp_path)  # relative paths must not follow the current directory
    before = files_under(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no member left out
        warnings.simplefilter("ignore", EmptyLocationWarning)  # the archive bucket is empty
        cat = intake.open_catalog(str(folder / file))[entry]
        assert isinstance(cat, BrokerCatalog)
        assert len(cat) == len(list(cat))
        count = len(cat)
        assert f": {count} run{'' if count == 1 else 's'}," in repr(cat)
    cat.store.close()
    assert files_under(folder) == before
    assert list(tmp_path.iterdir()) == []


def readme_command_one() -> list[str]:
    """The ``pip install`` arguments of README command 1."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"pip install -q (.+?) && \.venv/bin/intake-broker demo", text)
    assert found, "README command 1 (pip install ... && .venv/bin/intake-broker demo) not found"
    return shlex.split(found.group(1))


def _local_projects() -> dict[str, Path]:
    from packaging.utils import canonicalize_name

    projects = {}
    for pyproject in [ROOT / "pyproject.toml", *ROOT.glob("drivers/*/pyproject.toml")]:
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        projects[canonicalize_name(name)] = pyproject.parent
    return projects


def declared_closure(arguments: list[str]) -> set[str]:
    """Every distribution ``pip install <arguments>`` brings in: our projects' requirements
    read from this tree's pyproject files, third-party ones from installed metadata."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    local = _local_projects()
    seen: set[tuple[str, frozenset]] = set()
    names: set[str] = set()
    todo: list[tuple[str, frozenset]] = []
    for arg in arguments:
        if arg == "-e":
            continue
        path, _, extras = arg.partition("[")
        project = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]
        todo.append(
            (canonicalize_name(project["name"]), frozenset(extras.rstrip("]").split(",")) - {""})
        )
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        if name in local:
            project = tomllib.loads((local[name] / "pyproject.toml").read_text())["project"]
            requirements = list(project.get("dependencies", []))
            for extra in extras:
                requirements += project.get("optional-dependencies", {}).get(extra, [])
        else:
            try:
                requirements = distribution(name).requires or []
            except PackageNotFoundError:
                continue
        for text in requirements:
            requirement = Requirement(text)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if requirement.marker is not None and not any(
                requirement.marker.evaluate(env) for env in environments
            ):
                continue
            todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return names


_OPEN_EVERY_ENTRY = """
import json, sys, warnings
before = set(sys.modules)
import intake
failures = {}
for path, entry in json.loads(sys.argv[1]):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat = intake.open_catalog(path)[entry]
            len(cat)
    except Exception as err:
        failures[f"{path}#{entry}"] = f"{type(err).__name__}: {err}"
print(json.dumps({"modules": sorted(set(sys.modules) - before), "failures": failures}))
"""

#: Modules a library imports only when they happen to be installed (inside ``try``), so the
#: full test venv imports them and a minimal install does without: aiobotocore probes httpx
#: (and httpx's own imports follow), jsonschema its format checkers, numcodecs lz4, pandas and
#: xarray their accelerators. ``.ci/minimal_install_check.sh`` proves the rest for real.
OPTIONAL_PROBES = {
    "httpx",
    "anyio",
    "certifi",
    "sniffio",
    "h11",
    "httpcore",
    "idna",
    "rich",
    "pygments",
    "markdown_it",
    "mdurl",
    "jsonpointer",
    "rfc3339_validator",
    "rfc3987",
    "uri_template",
    "webcolors",
    "fqdn",
    "isoduration",
    "lz4",
    "pyarrow",
    "bottleneck",
    "numbagg",
    "numexpr",
    "scipy",
    "cftime",
    "sparse",
}


def test_opening_every_example_entry_imports_only_what_readme_command_one_installs(examples):
    """Fails when opening an example entry through plain intake needs a package that README
    command 1 does not install (as jinja2 did): what a fresh interpreter imports while opening
    every entry must belong to the distributions that command brings in."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    folder, env, has_mongo = examples
    entries = [
        (str(folder / file), entry)
        for file, entry in example_entries()
        if entry != "iss" or has_mongo
    ]
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_EVERY_ENTRY, json.dumps(entries)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failures"] == {}
    declared = declared_closure(readme_command_one())
    owners = packages_distributions()
    missing = {}
    for module in result["modules"]:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top in OPTIONAL_PROBES:
            continue
        dists = {canonicalize_name(d) for d in owners.get(top, [])}
        if dists and not dists & declared:
            missing[top] = sorted(dists)
    assert missing == {}, f"imported but not installed by README command 1: {missing}"


def test_the_declared_closure_sees_a_missing_dependency():
    """The check above can fail: without the core's jinja2 requirement, jinja2 is not in it."""
    closure = declared_closure(readme_command_one())
    assert "jinja2" in closure and "s3fs" in closure and "pymongo" in closure
    assert "secantusdb" not in closure and "pytest" not in closure  # test extras stay out


# -- one meaning for a YAML file ---------------------------------------------------------------


def _jsonl_site(tmp_path: Path, runs: int = 2) -> Path:
    folder = tmp_path / "site"
    (folder / "runs").mkdir(parents=True)
    yaml_path = write(
        folder,
        """
        sources:
          local:
            description: runs beside the file
            driver: bluesky-jsonl-catalog
            args:
              paths: [runs]
              directory: runs
              storage_options: {password: "${SITE_TEST_PASSWORD:-none}"}
        """,
    )
    cat = open_catalog(yaml_path)["local"]
    for i in range(runs):
        insert_all(cat.store, scalar_run(time=1_700_000_000.0 + i, scan_id=i + 1, sample=f"s{i}"))
    return yaml_path


@pytest.mark.parametrize("opener", ["intake", "intake_broker"])
def test_relative_paths_mean_the_yaml_folder_whoever_opens(tmp_path, monkeypatch, opener):
    yaml_path = _jsonl_site(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "runs").mkdir(parents=True)  # a decoy: the current directory has runs/ too
    monkeypatch.chdir(elsewhere)
    cat = (intake.open_catalog if opener == "intake" else open_catalog)(str(yaml_path))["local"]
    assert len(cat) == 2
    assert cat.store.paths == [str(yaml_path.parent / "runs")]


@pytest.mark.parametrize("opener", ["intake", "intake_broker"])
def test_a_missing_folder_is_an_error_naming_entry_file_and_path(tmp_path, opener):
    path = write(
        tmp_path,
        """
        sources:
          typo:
            driver: bluesky-msgpack-catalog
            args: {paths: [rnus]}
        """,
    )
    with pytest.raises(StoreNotFound) as info:
        (intake.open_catalog if opener == "intake" else open_catalog)(str(path))["typo"]
    message = str(info.value)
    assert f"{path}, line 4, entry 'typo', field 'args.paths'" in message
    assert f"does not exist: {tmp_path}/rnus" in message and "create: true" in message
    assert isinstance(info.value, FileNotFoundError)
    assert files_under(tmp_path) == {"site.yml"}


def test_a_glob_matching_nothing_yet_is_a_warning_and_an_empty_catalog(tmp_path):
    (tmp_path / "runs").mkdir()
    path = write(
        tmp_path,
        """
        sources:
          later:
            driver: bluesky-jsonl-catalog
            args: {paths: ["runs/*.jsonl"]}
        """,
    )
    with pytest.warns(EmptyLocationWarning, match=r"entry 'later'.*matches no run file yet"):
        cat = intake.open_catalog(str(path))["later"]
    assert len(cat) == 0


def test_a_missing_bucket_is_an_error_and_a_missing_prefix_is_not(tmp_path, s3_server):
    opts = json.dumps(s3_server.storage_options)
    path = write(
        tmp_path,
        f"""
        sources:
          missing:
            driver: bluesky-jsonl-catalog
            args: {{paths: ["s3://no-such-bucket-16/runs/*.jsonl"], storage_options: {opts}}}
          prefix:
            driver: bluesky-jsonl-catalog
            args: {{paths: ["s3://plain-intake-16/runs/*.jsonl"], storage_options: {opts}}}
        """,
    )
    fs = s3_server.filesystem()
    if not fs.exists("plain-intake-16"):
        fs.mkdir("plain-intake-16")
    with pytest.raises(StoreNotFound, match=r"entry 'missing'.*bucket 'no-such-bucket-16'"):
        intake.open_catalog(str(path))["missing"]
    with pytest.warns(EmptyLocationWarning):
        assert len(intake.open_catalog(str(path))["prefix"]) == 0


NATIVE = """
sources:
  beamline:
    driver: bluesky-native-catalog
    args: {{index: "sqlite:///data/index.sqlite", data: data/events{create}}}
"""


def test_a_native_index_that_is_not_there_is_an_error_without_create(tmp_path):
    pytest.importorskip("intake_broker_native")
    path = write(tmp_path, NATIVE.format(create=""))
    with pytest.raises(StoreNotFound, match=r"entry 'beamline'.*SQLite run index does not exist"):
        intake.open_catalog(str(path))["beamline"]
    assert files_under(tmp_path) == {"site.yml"}


def test_create_true_makes_the_store_at_its_first_write_and_not_before(tmp_path):
    pytest.importorskip("intake_broker_native")
    path = write(tmp_path, NATIVE.format(create=", create: true"))
    reader = intake.open_catalog(str(path))["beamline"]  # opened before anything exists
    writer = open_catalog(path)["beamline"]
    assert len(reader) == 0 and len(writer) == 0 and "first write" in repr(writer)
    assert files_under(tmp_path) == {"site.yml"}
    assert len(pickle.loads(pickle.dumps(reader))) == 0  # a pending store travels (dask)
    assert files_under(tmp_path) == {"site.yml"}
    docs = scalar_run(time=1_700_000_000.0)
    insert_all(writer.store, docs)
    writer.store.flush()
    assert (tmp_path / "data" / "index.sqlite").exists()
    assert list(reader) == [docs[0][1]["uid"]]  # the first reader sees the store made since
    assert list(pickle.loads(pickle.dumps(writer))) == [docs[0][1]["uid"]]
    again = intake.open_catalog(str(path))["beamline"]
    assert len(again) == 1 and "PendingStore" not in repr(again.store)
    writer.store.close()
    reader.store.close()
    again.store.close()


# -- intake idioms ---------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_TEST_PASSWORD", "hunter2")
    yaml_path = _jsonl_site(tmp_path, runs=3)
    return yaml_path, intake.open_catalog(str(yaml_path))["local"]


def test_describe_shows_the_entry_as_written_without_secrets(site):
    yaml_path, cat = site
    described = cat.describe()
    assert described["driver"] == "bluesky-jsonl-catalog"
    assert described["args"]["paths"] == ["runs"]  # as written in the file
    assert described["args"]["storage_options"] == {"password": "${SITE_TEST_PASSWORD:-none}"}
    assert "hunter2" not in repr(described) and str(yaml_path) in described["store"]
    assert cat.store.storage_options == {"password": "hunter2"}  # the driver got the value
    run = cat[-1]
    assert run.describe()["streams"] == list(run) == ["baseline", "primary"]
    assert run.describe()["metadata"]["start"]["uid"] == run.uid


def test_serialize_is_a_loadable_entry_giving_the_same_runs(site, tmp_path):
    yaml_path, cat = site
    text = cat.serialize()
    assert "!!python" not in text and "hunter2" not in text
    copy = yaml_path.parent / "copy.yml"
    copy.write_text(text)
    assert list(intake.open_catalog(str(copy))["local"]) == list(cat)
    found = cat.search("scan_id >= 2")
    copy.write_text(found.yaml())
    assert list(intake.open_catalog(str(copy))[found.name]) == list(found) and len(found) == 2
    run = cat[-1]
    copy.write_text(run.yaml())
    reopened = intake.open_catalog(str(copy))[run.uid]
    assert list(reopened) == [run.uid]


def test_serialize_of_a_catalog_built_in_python_redacts_credentials(tmp_path):
    from intake_broker_files import JSONLCatalog

    (tmp_path / "runs").mkdir()
    cat = JSONLCatalog(str(tmp_path / "runs"), storage_options={"secret": "s3cr3t", "anon": False})
    text = cat.serialize()
    assert "s3cr3t" not in text and "<redacted>" in text and "bluesky-jsonl-catalog" in text


def test_walk_discover_and_reprs(site):
    _, cat = site
    uids = list(cat)
    assert list(cat.walk(depth=1)) == uids
    walked = cat.walk(depth=2)
    assert set(walked) == set(uids) | {f"{u}.{s}" for u in uids for s in ("primary", "baseline")}
    assert isinstance(walked[uids[0]], Run)
    assert cat.discover()["shape"] == (3,)
    assert cat[-1].discover()["shape"] == (2,)  # primary and baseline
    assert cat[-1].primary.discover()["shape"] == (5,)
    assert re.search(r"3 runs, FilesStore\(.*site/runs.*entry 'local' of ", repr(cat))
    stream = cat[-1].primary
    shown = repr(stream) + repr(stream.config) + repr(stream.timestamps) + stream.yaml()
    assert "!!python" not in shown and "NativeStore" not in shown and "5 events" in shown


def test_federation_describe_shows_its_members(tmp_path):
    yaml_path = _jsonl_site(tmp_path)
    write(
        yaml_path.parent,
        """
        sources:
          both:
            driver: bluesky-federation-catalog
            args: {members: [site.yml]}
        """,
        name="fed.yml",
    )
    fed = intake.open_catalog(str(yaml_path.parent / "fed.yml"))["both"]
    text = json.dumps(fed.describe()) + repr(fed)
    assert "<property" not in text and "federation of 1 stores" in text
    assert fed.describe()["args"] == {"members": ["site.yml"]}


def test_run_to_dask_is_every_stream_and_a_catalog_says_what_to_call(site):
    _, cat = site
    run = cat[-1]
    tree = run.to_dask()
    ds = tree["primary"].to_dataset()
    assert sorted(tree.children) == ["baseline", "primary"]
    assert ds["det"].chunks is not None  # lazy
    np.testing.assert_array_equal(ds["det"].values, run.primary.read()["det"].values)
    assert run.read()["primary"].to_dataset()["det"].chunks is None
    with pytest.raises(NotSupported, match=r"catalog of 3 runs.*run\.to_dask\(\)"):
        cat.to_dask()


# -- streams for plain xarray and intake-xarray users ----------------------------------------


_OPEN_WITHOUT_US = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("intake_broker"):
            raise ImportError(f"{name} must not be needed")
sys.meta_path.insert(0, Refuse())
import xarray as xr
url, options, key = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ds = xr.open_zarr(url, storage_options=options or None)
lazy = ds[key].chunks is not None
print(json.dumps({"lazy": lazy, "values": ds[key].values.tolist(), "time": ds.time.values.tolist(),
                  "run_uid": ds.attrs["run_uid"]}))
"""


def _exported(url: str, options: dict, key: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_WITHOUT_US, url, json.dumps(options), key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _native_run(tmp_path):
    native = pytest.importorskip("intake_broker_native")
    cat = native.NativeCatalog(native.NativeStore.in_folder(tmp_path / "store"))
    insert_all(cat.store, scalar_run(n=7, time=1_700_000_000.0))
    cat.store.flush()
    return cat[-1]


def test_a_native_stream_exported_to_a_folder_opens_in_plain_xarray(tmp_path):
    run = _native_run(tmp_path)
    url = str(tmp_path / "primary.zarr")
    export = run.primary.export_zarr(url)
    got = _exported(url, {}, "det")
    expected = run.primary.read()
    assert got["lazy"] and got["run_uid"] == run.uid
    np.testing.assert_array_equal(got["values"], expected["det"].values)
    np.testing.assert_array_equal(got["time"], expected["time"].values)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        run.primary.export_zarr(url)
    run.primary.export_zarr(url, overwrite=True)
    # intake-xarray's entry, through plain intake
    pytest.importorskip("intake_xarray")
    (tmp_path / "xr.yml").write_text(export.yaml(name="primary"))
    ds = intake.open_catalog(str(tmp_path / "xr.yml"))["primary"].to_dask()
    assert ds["det"].chunks is not None
    np.testing.assert_array_equal(ds["det"].values, expected["det"].values)


def test_a_native_stream_exported_to_s3_opens_with_storage_options(tmp_path, s3_server):
    run = _native_run(tmp_path)
    fs = s3_server.filesystem()
    if not fs.exists("streams-16"):
        fs.mkdir("streams-16")
    options = s3_server.storage_options
    url = f"s3://streams-16/{run.uid}/primary.zarr"
    export = run.primary.export_zarr(url, storage_options=options)
    got = _exported(url, options, "det")
    assert got["lazy"]
    np.testing.assert_array_equal(got["values"], run.primary.read()["det"].values)
    entry = export.entry()
    assert entry["driver"] == "zarr" and entry["args"]["urlpath"] == url
    assert "testing" not in json.dumps(entry)  # credentials come from the environment
    assert entry["args"]["storage_options"]["client_kwargs"]["endpoint_url"] == s3_server.endpoint
