"""YAML entries as databroker 1.2.5 users wrote them: ``transforms:`` (documents patched as they
are read, functions named by import path) and a relative ``root_map``, through plain
``intake.open_catalog`` and through ``intake_broker.open_catalog``."""

from __future__ import annotations

import shutil
import textwrap

import intake
import numpy as np
import pytest
from _golden import ASSETS, ROOT, golden_runs

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.store.transforms import TransformedStore, load_transforms
from intake_broker.views.datakeys import asset_kind

files = pytest.importorskip("intake_broker_files")

FIXES = """
def start(doc):
    doc["sample"] = "fixed " + str(doc.get("sample"))
    return doc

def stop(doc):
    doc["reason"] = "patched"
    return doc

def descriptor(doc):
    for key in doc["data_keys"].values():
        key["units"] = "patched"
    return doc

def resource(doc):
    doc = dict(doc)
    doc["root"] = {moved!r}
    return doc
"""


def _image_runs():
    out = []
    for docs in golden_runs():
        for name, doc in docs:
            if name == "descriptor" and any(
                asset_kind(dk) == "datum" for dk in doc["data_keys"].values()
            ):
                out.append(docs)
                break
    return out


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The golden image runs as JSONL files, their assets moved where only the resource
    transform (or a relative root_map) finds them, and a module of transforms."""
    runs = tmp_path / "runs"
    store = files.JSONLStore.in_folder(runs)
    for docs in _image_runs():
        for name, doc in docs:
            store.insert(name, doc)
    store.flush()
    moved = tmp_path / "moved-assets"
    shutil.copytree(ASSETS, moved)
    (tmp_path / "beamline_fixes.py").write_text(FIXES.format(moved=str(moved)))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "catalog.yml").write_text(
        textwrap.dedent(f"""
        sources:
          patched:
            driver: bluesky-jsonl-catalog
            args:
              paths: runs/*.jsonl
              transforms:
                start: beamline_fixes.start
                stop: beamline_fixes.stop
                descriptor: beamline_fixes.descriptor
                resource: beamline_fixes.resource
          relative:
            driver: bluesky-jsonl-catalog
            args:
              paths: runs/*.jsonl
              root_map:
                {ROOT}: moved-assets
          plain:
            driver: bluesky-jsonl-catalog
            args:
              paths: runs/*.jsonl
        """)
    )
    return tmp_path


def _check_patched(cat, original):
    assert len(cat) == len(original) > 0
    for docs in original:
        start = docs[0][1]
        run = cat[start["uid"]]
        assert run.start["sample"] == f"fixed {start.get('sample')}"
        assert run.metadata["start"]["sample"] == run.start["sample"]
        assert run.stop["reason"] == "patched"
        assert all(
            dk["units"] == "patched" for d in run.descriptors for dk in d["data_keys"].values()
        )
        seen = {name: doc for name, doc in run.documents()}
        assert seen["start"]["sample"] == run.start["sample"]
        assert seen["resource"]["root"].endswith("moved-assets")
        primary = run.primary.read()  # the frames are found where the resource transform says
        assert primary.sizes["time"] > 0
    # searches match what is stored, as databroker's did
    sample = original[0][0][1]["sample"]
    assert len(cat.search({"sample": sample})) == 1
    assert len(cat.search({"sample": f"fixed {sample}"})) == 0


@pytest.mark.parametrize("opener", ["intake", "intake_broker"])
def test_yaml_transforms_open_and_apply(folder, opener):
    if opener == "intake":
        top = intake.open_catalog(str(folder / "catalog.yml"))
    else:
        from intake_broker import open_catalog

        top = open_catalog(str(folder / "catalog.yml"))
    original = _image_runs()
    _check_patched(top["patched"], original)
    with pytest.raises(Exception, match="moved|No such file|not found|exist"):
        top["plain"][original[0][0][1]["uid"]].primary.read()  # untransformed: not found


@pytest.mark.parametrize("opener", ["intake", "intake_broker"])
def test_relative_root_map_is_relative_to_the_yaml_file(folder, opener, monkeypatch):
    monkeypatch.chdir("/")
    if opener == "intake":
        top = intake.open_catalog(str(folder / "catalog.yml"))
    else:
        from intake_broker import open_catalog

        top = open_catalog(str(folder / "catalog.yml"))
    cat = top["relative"]
    assert cat.asset_options["root_map"] == {ROOT: str(folder / "moved-assets")}
    for docs in _image_runs():
        run = cat[docs[0][1]["uid"]]
        for name in run:
            data = run[name].read()
            assert all(np.asarray(data[v]).size for v in data.data_vars)


def test_transforms_on_a_catalog_built_in_python_and_after_search():
    store = MemoryStore()
    for docs in golden_runs():
        for name, doc in docs:
            store.insert(name, doc)
    cat = BrokerCatalog(store, transforms={"start": lambda d: {**d, "patched": True}})
    assert isinstance(cat.store, TransformedStore)
    assert all(run.start["patched"] for run in cat.values())
    found = cat.search({"plan_name": cat[-1].start["plan_name"]})
    assert found[-1].start["patched"] is True


def test_bad_transforms_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"transforms for \['event'\] are not supported"):
        load_transforms({"event": "x.y"})
    with pytest.raises(ValueError, match="cannot be imported.*package.module.function"):
        load_transforms({"start": "no_such_module_xyz.fix"})
    with pytest.raises(TypeError, match="not callable"):
        load_transforms({"start": "math.pi"})
    with pytest.raises(TypeError, match="mapping of document kind"):
        load_transforms(["start"])  # type: ignore[arg-type]
