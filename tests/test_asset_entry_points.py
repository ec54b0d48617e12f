"""Handler entry points found once and cached across processes, and seen again as soon as a
distribution is installed, upgraded or removed."""

from __future__ import annotations

import itertools
import os
import sys
import time

import pytest

from intake_broker import assets
from intake_broker.asset_handlers import AreaDetectorHDF5Handler, NumpySeqHandler

_AGES = itertools.count(int(time.time()) - 3600)


def age(*paths):
    """Make files look an hour old (a cache is only written when nothing it relies on is
    recent), each time a second later than the time before (as mtimes go)."""
    when = next(_AGES)
    for path in paths:
        os.utime(path, (when, when))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A ``sys.path`` of one folder of fake distributions, a private cache, and a count of the
    real scans of the installed distributions."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.setattr(sys, "path", [str(folder)])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    scans = []
    real = assets._scan_entry_points

    def counted():
        scans.append(1)
        return real()

    monkeypatch.setattr(assets, "_scan_entry_points", counted)
    assets._entry_point_handlers.cache_clear()
    yield folder, scans
    assets._entry_point_handlers.cache_clear()


def install(folder, name, entry_points: dict[str, dict[str, str]], version="1.0"):
    dist = folder / f"{name}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    text = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in entry_points.items()
    )
    (dist / "entry_points.txt").write_text(text)
    return dist


def handlers() -> dict[str, str]:
    """The entry-point handlers a new process would find (``name -> value``)."""
    assets._entry_point_handlers.cache_clear()
    return {name: ep.value for name, ep in assets._entry_point_handlers().items()}


NPY = "intake_broker.asset_handlers:NumpySeqHandler"
H5 = "intake_broker.asset_handlers:AreaDetectorHDF5Handler"


def test_installing_and_removing_a_handler_package_is_seen(site):
    folder, scans = site
    dist = install(folder, "old_handlers", {"databroker.handlers": {"OLD": NPY}})
    age(dist / "entry_points.txt", dist, folder)
    assert handlers() == {"OLD": NPY} and len(scans) == 1
    assert handlers() == {"OLD": NPY} and len(scans) == 1  # from the cache: no scan

    new = install(
        folder,
        "new_handlers",
        {"intake_broker.handlers": {"NEW": H5}, "console_scripts": {"x": "y:z"}},
    )
    assert handlers() == {"OLD": NPY, "NEW": H5} and len(scans) == 2
    age(new / "entry_points.txt", new, folder)
    assert handlers() == {"OLD": NPY, "NEW": H5} and len(scans) == 3  # cached now
    assert handlers() == {"OLD": NPY, "NEW": H5} and len(scans) == 3

    (new / "entry_points.txt").unlink()
    (new / "METADATA").unlink()
    new.rmdir()
    assert handlers() == {"OLD": NPY} and len(scans) == 4


def test_reinstalling_the_same_version_with_new_entry_points_is_seen(site):
    folder, scans = site
    dist = install(folder, "handlers", {"databroker.handlers": {"A": NPY}})
    age(dist / "entry_points.txt", dist, folder)
    assert handlers() == {"A": NPY}
    for path in dist.iterdir():  # pip removes the dist-info folder and writes a new one
        path.unlink()
    dist.rmdir()
    dist = install(folder, "handlers", {"databroker.handlers": {"A": NPY, "B": H5}})
    assert handlers() == {"A": NPY, "B": H5}


def test_a_folder_that_changes_without_new_distributions_keeps_the_cache(site):
    folder, scans = site
    dist = install(folder, "handlers", {"databroker.handlers": {"A": NPY}})
    age(dist / "entry_points.txt", dist, folder)
    assert handlers() == {"A": NPY} and len(scans) == 1
    (folder / "analysis.ipynb").write_text("{}")  # a notebook saved in the working folder
    assert handlers() == {"A": NPY} and len(scans) == 1
    (folder / "extra.pth").write_text("")  # a .pth file can change what is importable
    assert handlers() == {"A": NPY} and len(scans) == 2


def test_a_new_sys_path_entry_and_another_python_are_other_caches(site, tmp_path, monkeypatch):
    folder, scans = site
    age(folder)
    assert handlers() == {} and len(scans) == 1
    other = tmp_path / "other"
    other.mkdir()
    install(other, "more", {"intake_broker.mimetypes": {"application/x-more": H5}})
    monkeypatch.setattr(sys, "path", [str(folder), str(other)])
    assert handlers() == {"application/x-more": H5} and len(scans) == 2
    monkeypatch.setattr(sys, "path", [str(folder)])
    assert handlers() == {} and len(scans) == 2  # the first one's cache is still there
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    assert handlers() == {} and len(scans) == 3


def test_recent_changes_are_not_cached(site):
    folder, scans = site
    install(folder, "handlers", {"databroker.handlers": {"A": NPY}})  # just now
    assert handlers() == {"A": NPY} and handlers() == {"A": NPY}
    assert len(scans) == 2
    assert not (folder.parent / "cache").exists()


def test_an_unusable_cache_is_ignored(site, tmp_path, monkeypatch):
    folder, scans = site
    dist = install(folder, "handlers", {"databroker.handlers": {"A": NPY}})
    age(dist / "entry_points.txt", dist, folder)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # cannot be created
    assert handlers() == {"A": NPY} and handlers() == {"A": NPY} and len(scans) == 2

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert handlers() == {"A": NPY} and len(scans) == 3
    (cache,) = (tmp_path / "cache" / "intake-broker").iterdir()
    cache.write_text("{not json")
    assert handlers() == {"A": NPY} and len(scans) == 4
    assert handlers() == {"A": NPY} and len(scans) == 4  # rewritten by the scan


def test_priority_catalog_then_runtime_then_entry_points_then_builtins(site, monkeypatch):
    folder, _ = site
    install(
        folder,
        "handlers",
        {
            "databroker.handlers": {"AD_HDF5": NPY, "OTHER": H5},
            "intake_broker.handlers": {"OTHER": NPY},
        },
    )
    monkeypatch.setattr(assets, "_runtime", {})
    assets._entry_point_handlers.cache_clear()
    registry = assets.HandlerRegistry()
    assert registry["AD_HDF5"] is NumpySeqHandler  # an entry point beats a built-in
    assert registry["OTHER"] is AreaDetectorHDF5Handler  # databroker.handlers comes first
    assert assets.HandlerRegistry()["NPY_SEQ"] is NumpySeqHandler  # a built-in

    class Runtime:
        pass

    class Catalogs:
        pass

    assets.register_handler("AD_HDF5", Runtime)
    assert assets.HandlerRegistry()["AD_HDF5"] is Runtime
    assert assets.HandlerRegistry({"AD_HDF5": Catalogs})["AD_HDF5"] is Catalogs


def test_a_deleted_working_folder_still_finds_the_handlers(site, tmp_path, monkeypatch):
    folder, scans = site
    install(folder, "handlers", {"databroker.handlers": {"A": NPY}})
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setattr(sys, "path", ["", str(folder)])
    assert handlers() == {"A": NPY}
