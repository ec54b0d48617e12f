"""A data folder this user cannot write (a shared copy): listed, searched and read; every
write refused with one clear message, and nothing in the folder changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from intake_broker import BrokerCatalog
from intake_broker.demo import write_demo
from intake_broker.testing import factories
from intake_broker_native import NativeStore
from intake_broker_native.errors import ReadOnlyFolder


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def folder(tmp_path):
    """A native data folder holding the demo's five runs, closed by its writer."""
    root = tmp_path / "runs"
    store = NativeStore.in_folder(root)
    write_demo(BrokerCatalog(store), progress=False)
    store.close()
    return root


def _reads_and_refuses(store: NativeStore, expected: dict) -> None:
    cat = BrokerCatalog(store)
    assert len(cat) == 5
    assert len(cat.search("summary.primary.theta.max < 15")) == 1
    step = cat[1].primary.read()
    np.testing.assert_array_equal(step["det"].values, expected["det"])
    assert cat[-1].primary.read()["eiger_image"].shape == (5, 64, 64)
    with pytest.raises(ReadOnlyFolder, match=r"this data folder is read-only: .*copy it"):
        for name, doc in factories.scalar_run():
            store.insert(name, doc)
    with pytest.raises(ReadOnlyFolder, match="read-only"):
        cat[1].tag("mine")
    assert len(BrokerCatalog(store)) == 5


def test_read_only_argument(folder):
    """``read_only=True`` on a folder this user could write: the path a shared copy takes."""
    expected = {"det": BrokerCatalog(NativeStore.in_folder(folder))[1].primary.read()["det"]}
    for leftover in folder.glob("index.sqlite-*"):  # the -wal/-shm of the read above
        leftover.unlink()
    before = _tree(folder)
    store = NativeStore.in_folder(folder, read_only=True)
    assert store.read_only == "it was opened with read_only=True"
    _reads_and_refuses(store, expected)
    store.close()
    after = {k: v for k, v in _tree(folder).items() if not k.startswith("index.sqlite-")}
    assert after == before  # nothing written (SQLite's -shm of a mode=ro reader aside)


def _not_writable(folder: Path) -> list[Path]:
    changed = [folder, *(p for p in folder.rglob("*"))]
    for p in changed:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return changed


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes whatever the permissions say: chmod cannot make a folder read-only "
    "for it (test_read_only_argument covers the read-only store itself)",
)
def test_folder_without_write_permission(folder):
    expected = {"det": BrokerCatalog(NativeStore.in_folder(folder))[1].primary.read()["det"]}
    changed = _not_writable(folder)
    try:
        before = _tree(folder)
        store = NativeStore.in_folder(folder)  # detected: no argument
        assert store.read_only is not None and "not writable" in store.read_only
        _reads_and_refuses(store, expected)
        store.close()
        assert _tree(folder) == before
    finally:
        for p in changed:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


_AS_ANOTHER_USER = """
import json, sys
from intake_broker import BrokerCatalog
from intake_broker.testing import factories
from intake_broker_native import NativeStore
from intake_broker_native.errors import ReadOnlyFolder

store = NativeStore.in_folder(sys.argv[1])
cat = BrokerCatalog(store)
out = {"read_only": store.read_only, "runs": len(cat),
       "theta": len(cat.search("summary.primary.theta.max < 15")),
       "det": cat[1].primary.read()["det"].values.tolist()}
try:
    for name, doc in factories.scalar_run():
        store.insert(name, doc)
except ReadOnlyFolder as err:
    out["refused"] = str(err)
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")),
    reason="needs root and setpriv to run a reader as another user (nobody)",
)
def test_another_user_reads_roots_folder(folder, tmp_path):
    """As root, the permission test for real: user nobody reads a folder only root may write."""
    expected = BrokerCatalog(NativeStore.in_folder(folder))[1].primary.read()["det"]
    shared = Path(tempfile.mkdtemp(prefix="ib-shared-"))  # /tmp/pytest-of-root is root's only
    try:
        shutil.copytree(folder, shared / "runs")
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        before = _tree(shared)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            + [sys.executable, "-c", _AS_ANOTHER_USER, str(shared / "runs")],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": "/nonexistent"},
            cwd="/",
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.splitlines()[-1])
        assert out["read_only"] == f"the folder {str(shared / 'runs')!r} is not writable"
        assert (out["runs"], out["theta"]) == (5, 1)
        assert out["det"] == expected.values.tolist()
        assert out["refused"].startswith("this data folder is read-only: the folder")
        assert "copy it to a folder you can write, or ask its owner" in out["refused"]
        assert _tree(shared) == before  # nobody wrote nothing, not even SQLite's -shm
    finally:
        shutil.rmtree(shared)


def test_detection_names_the_folder(folder, monkeypatch):
    """Detection goes by os.access: a folder it reports unwritable opens read-only (immutable)."""
    real = os.access
    index_folder = str(folder)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path) == index_folder:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    store = NativeStore.in_folder(folder)
    assert store.read_only == f"the folder {index_folder!r} is not writable"
    assert len(BrokerCatalog(store)) == 5
    with pytest.raises(ReadOnlyFolder, match=f"read-only: the folder {index_folder!r}"):
        for name, doc in factories.scalar_run():
            store.insert(name, doc)


def test_read_only_needs_an_index(tmp_path):
    from intake_broker_native.errors import IndexUnavailable

    with pytest.raises(IndexUnavailable, match="no run index at .* to open read-only"):
        NativeStore.in_folder(tmp_path / "nothing", read_only=True)
    assert not (tmp_path / "nothing").exists()


def test_cli_lists_a_read_only_folder(tmp_path, monkeypatch, capsys):
    """`intake-broker ls/search/show` on a data folder it cannot write; a write says why."""
    from intake_broker.cli import main

    assert main(["--data", str(tmp_path), "--no-progress", "demo"]) == 0
    runs = str(tmp_path / "runs")
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path) == runs:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    capsys.readouterr()
    assert main(["--data", str(tmp_path), "ls"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "success" in line]) == 5
    assert main(["--data", str(tmp_path), "search", "summary.primary.theta.max < 15"]) == 0
    assert "rel_scan" in capsys.readouterr().out
    assert main(["--data", str(tmp_path), "--no-progress", "demo"]) != 0
    err = capsys.readouterr().err
    assert "this data folder is read-only" in err and "Traceback" not in err
