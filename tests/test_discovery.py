"""Discovery: ``from intake_broker import catalog; catalog["csx"]`` and ``intake-broker
catalogs``, finding YAML files in the user's data dir, sys.prefix/share/intake, INTAKE_PATH and
entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import intake_broker.catalogs.discovery as discovery
from intake_broker.catalogs.discovery import (
    CatalogNotFound,
    Catalogs,
    DiscoveryWarning,
    search_path,
)
from intake_broker.catalogs.files import CatalogFileError
from intake_broker.cli import main
from intake_broker.views.catalog import BrokerCatalog

CSX = """
sources:
  csx:
    description: CSX from {where}
    driver: bluesky-msgpack-catalog
    args: {{paths: [runs], create: true}}
  {other}:
    driver: bluesky-memory-catalog
"""


@pytest.fixture
def places(tmp_path, monkeypatch):
    """The user data dir, intake's user dir and two INTAKE_PATH folders, all temporary."""
    folders = {name: tmp_path / name for name in ("data", "xdg", "a", "b")}
    for folder in folders.values():
        folder.mkdir()
    (folders["data"] / "catalogs").mkdir()
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(folders["data"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(folders["xdg"]))
    monkeypatch.setenv("INTAKE_PATH", os.pathsep.join([str(folders["a"]), str(folders["b"])]))
    monkeypatch.setattr(discovery, "entry_points", lambda group: [])
    return folders


def put(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_search_path_order(places):
    labels = [(label, str(folder)) for label, folder in search_path()]
    assert labels[0] == ("user data", str(places["data"] / "catalogs"))
    assert labels[1] == ("intake user data", str(places["xdg"] / "intake"))
    assert labels[2] == ("environment", str(Path(sys.prefix) / "share" / "intake"))
    assert labels[3:] == [("INTAKE_PATH", str(places["a"])), ("INTAKE_PATH", str(places["b"]))]


def test_names_come_from_every_folder_first_one_wins(places):
    put(places["data"] / "catalogs", "mine.yml", CSX.format(where="mine", other="scratch"))
    put(places["b"], "facility.yaml", CSX.format(where="facility", other="chx"))
    put(places["b"], "notes.txt", "not a catalog")
    cats = Catalogs()
    assert list(cats) == ["csx", "scratch", "chx"]
    assert "chx" in cats and "nope" not in cats and len(cats) == 3
    found = cats.scan()
    shadowed = [f for f in found if f.shadowed]
    assert [(f.name, f.path) for f in shadowed] == [("csx", str(places["b"] / "facility.yaml"))]
    csx = cats.find("csx")
    assert csx.source == "user data" and csx.line == 2
    assert csx.where == f"{places['data'] / 'catalogs' / 'mine.yml'}:2"
    opened = cats["csx"]
    assert isinstance(opened, BrokerCatalog)
    assert opened.store.paths == [str(places["data"] / "catalogs" / "runs")]
    assert cats["csx"] is opened  # opened once, kept
    assert isinstance(cats["chx"], BrokerCatalog)


def test_unknown_name_lists_what_was_found(places):
    put(places["a"], "one.yml", CSX.format(where="a", other="chx"))
    with pytest.raises(CatalogNotFound) as info:
        Catalogs()["xpd"]
    assert isinstance(info.value, KeyError)
    assert "no catalog named 'xpd' was found; found: chx, csx" in str(info.value)
    assert str(places["a"]) in str(info.value)


def test_a_broken_file_warns_and_hides_nothing_else(places):
    put(places["a"], "broken.yml", "sources: [1, 2]")
    put(places["b"], "good.yml", CSX.format(where="b", other="chx"))
    with pytest.warns(DiscoveryWarning, match=r"broken.yml.*no 'sources:' mapping"):
        assert list(Catalogs()) == ["csx", "chx"]


def test_an_entry_with_bad_arguments_fails_when_opened_naming_its_line(places):
    put(
        places["a"],
        "bad.yml",
        """
        sources:
          csx:
            driver: bluesky-msgpack-catalog
            args: {paths: 5}
        """,
    )
    cats = Catalogs()
    assert list(cats) == ["csx"]
    with pytest.raises(CatalogFileError, match=r"bad.yml, line 4, entry 'csx'"):
        cats["csx"]


def test_entry_points(places, monkeypatch):
    def fake(group):
        assert group == "intake.catalogs"
        return [EntryPoint(name="sim", value="intake_broker:temp", group=group)]

    monkeypatch.setattr(discovery, "entry_points", fake)
    put(places["a"], "one.yml", CSX.format(where="a", other="chx"))
    cats = Catalogs()
    assert list(cats) == ["csx", "chx", "sim"]
    sim = cats.find("sim")
    assert sim.source == "entry point" and sim.where == "entry point sim = intake_broker:temp"
    assert isinstance(cats["sim"], BrokerCatalog)


def test_a_federation_member_found_by_name(places, tmp_path):
    put(places["a"], "one.yml", CSX.format(where="a", other="chx"))
    fed = put(
        tmp_path,
        "fed.yml",
        """
        sources:
          both:
            driver: bluesky-federation-catalog
            args: {members: [csx, chx]}
        """,
    )
    from intake_broker import open_catalog

    both = open_catalog(fed)["both"]
    assert list(both.store.members) == ["csx", "chx"]


def test_the_cli_lists_names_drivers_and_where_they_come_from(places, capsys):
    put(places["data"] / "catalogs", "mine.yml", CSX.format(where="mine", other="scratch"))
    put(places["b"], "facility.yml", CSX.format(where="facility", other="chx"))
    assert main(["catalogs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DRIVER", "FROM"]
    mine = places["data"] / "catalogs" / "mine.yml"
    assert lines[1].split() == ["csx", "bluesky-msgpack-catalog", f"{mine}:2", "[user", "data]"]
    assert any(line.startswith("csx (shadowed)") and "INTAKE_PATH" in line for line in lines)
    assert any(line.split()[:2] == ["chx", "bluesky-memory-catalog"] for line in lines)
    assert f"{places['a']} [INTAKE_PATH]" in out and "entry points 'intake.catalogs'" in out


def test_the_cli_with_nothing_found(places, capsys):
    assert main(["catalogs"]) == 0
    assert capsys.readouterr().out.startswith("no catalogs found")


# -- `from intake_broker import catalog` in a fresh interpreter -----------------------------------

SCRIPT = """
{before}
from intake_broker import catalog
cat = catalog["csx"]
from intake_broker import BrokerCatalog
assert isinstance(cat, BrokerCatalog), cat
print(sorted(catalog), cat.store.paths[0].endswith("runs"))
"""


def _fresh(places, before: str) -> subprocess.CompletedProcess:
    put(places["a"], "one.yml", CSX.format(where="a", other="chx"))
    env = {**os.environ}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before=before)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_from_intake_broker_import_catalog_in_a_fresh_interpreter(places):
    done = _fresh(places, "")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chx', 'csx'] True"


def test_from_intake_broker_import_catalog_after_the_module_was_imported(places):
    done = _fresh(places, "import intake_broker.views.catalog\nimport intake")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chx', 'csx'] True"


def test_the_mapping_is_a_plain_mapping_object():
    """``intake_broker.catalog`` is the shared mapping of discovered catalogs, not a module."""
    from collections.abc import Mapping

    from intake_broker import catalog

    assert isinstance(catalog, Mapping) and catalog is discovery.catalogs()
    assert not isinstance(catalog, types.ModuleType)
