"""Finding catalogs where users and facilities put them, as ``databroker.catalog`` did::

    from intake_broker import catalog
    catalog["csx"]          # the entry 'csx' of the first YAML catalog file that has one
    list(catalog)           # every name found

Names come from the entries (``sources:``) of the YAML files (``*.yml``, ``*.yaml``) in these
folders, searched in this order -- the first file with a name wins, later ones are *shadowed*:

1. the user's data directories: ``<data_dir()>/catalogs`` (``~/.local/share/intake-broker/
   catalogs`` on Linux, or ``$INTAKE_BROKER_DATA/catalogs``) and intake's
   (``~/.local/share/intake``);
2. the environment's ``<sys.prefix>/share/intake``;
3. each folder of ``$INTAKE_PATH`` (separated by ``os.pathsep``);

and then from the ``intake.catalogs`` entry points of installed packages (a catalog object, a
callable returning one, or the path of a YAML file). ``intake-broker catalogs`` lists them all
with where each came from. A broken file is reported with a warning and skipped; it never
hides the others. Entries are opened through :func:`intake_broker.catalogs.config.open_catalog`'s
checks, once, and kept.

``intake_broker.catalog`` is the shared :class:`Catalogs` mapping (:func:`catalogs`), as
databroker's was: ``from intake_broker import catalog; catalog["csx"]``.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from intake_broker.errors import BrokerError, RunNotFound

ENTRY_POINT_GROUP = "intake.catalogs"
_SUFFIXES = (".yml", ".yaml")


class CatalogNotFound(RunNotFound):
    """No discovered catalog has the name asked for (a ``KeyError``)."""


class DiscoveryWarning(UserWarning):
    """A catalog file or entry point found during discovery is broken and was skipped."""


@dataclass(frozen=True)
class Found:
    """One discovered catalog name and where it comes from."""

    name: str
    driver: str | None
    #: Which part of the search found it: ``user data``, ``intake user data``,
    #: ``environment``, ``INTAKE_PATH`` or ``entry point``.
    source: str
    path: str | None = None
    entry: str | None = None
    line: int | None = None
    target: str | None = None
    #: The name is also found earlier in the search, which wins.
    shadowed: bool = False

    @property
    def where(self) -> str:
        """``file:line`` of a YAML entry, or the entry point's target and package."""
        if self.path is not None:
            return f"{self.path}:{self.line}" if self.line else self.path
        return f"entry point {self.name} = {self.target}"


def search_path(data: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The folders searched for YAML catalog files, in order, each with its label.

    ``data`` replaces the data directory of intake-broker (default: :func:`config.data_dir`).
    """
    import platformdirs

    from intake_broker.catalogs.paths import data_dir

    folders = [
        ("user data", Path(data if data is not None else data_dir()).expanduser() / "catalogs"),
        ("intake user data", Path(platformdirs.user_data_dir("intake", appauthor=False))),
        ("environment", Path(sys.prefix) / "share" / "intake"),
    ]
    for entry in os.environ.get("INTAKE_PATH", "").split(os.pathsep):
        if entry.strip():
            folders.append(("INTAKE_PATH", Path(entry.strip()).expanduser()))
    seen: set[str] = set()
    unique = []
    for label, folder in folders:
        key = os.path.realpath(folder)
        if key not in seen:
            seen.add(key)
            unique.append((label, folder))
    return unique


def _catalog_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


class Catalogs(Mapping):
    """The catalogs found on the search path and in entry points, by name (see module doc).

    Parameters
    ----------
    path : list of (label, folder), optional
        The folders to search (default: :func:`search_path`, read anew at every look-up, so
        ``INTAKE_PATH`` and the files may change while a session runs).
    entry_points : bool
        Whether to include the ``intake.catalogs`` entry points.
    """

    def __init__(self, path: list[tuple[str, Path]] | None = None, *, entry_points: bool = True):
        self._path = path
        self._entry_points = entry_points
        self._opened: dict[tuple, Any] = {}
        self._warned: set[tuple] = set()
        self._lock = threading.Lock()

    def scan(self) -> list[Found]:
        """Every name found, in search order, shadowed ones included (marked)."""
        from intake_broker.catalogs.files import CatalogFileError, CatalogSpec

        found: list[Found] = []
        names: set[str] = set()

        def add(item: Found) -> None:
            found.append(
                item if item.name not in names else Found(**{**item.__dict__, "shadowed": True})
            )
            names.add(item.name)

        for label, folder in self._path if self._path is not None else search_path():
            for file in _catalog_files(folder):
                try:
                    spec = CatalogSpec.read(file)
                except CatalogFileError as err:
                    self._warn(("file", str(file), file.stat().st_mtime_ns), str(err))
                    continue
                for name, entry in spec.sources.items():
                    driver = entry.get("driver")
                    add(
                        Found(
                            str(name),
                            driver if isinstance(driver, str) else repr(driver),
                            label,
                            path=spec.path,
                            entry=str(name),
                            line=spec.line("sources", name),
                        )
                    )
        if self._entry_points:
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                add(Found(ep.name, None, "entry point", target=ep.value))
        return found

    def _warn(self, key: tuple, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(f"skipping a broken catalog: {message}", DiscoveryWarning, stacklevel=3)

    def find(self, name: str) -> Found | None:
        """Where ``name`` comes from (the first found), or None."""
        for item in self.scan():
            if item.name == name:
                return item
        return None

    def __getitem__(self, name: str) -> Any:
        found = self.find(name)
        if found is None:
            known = sorted(self)
            raise CatalogNotFound(
                f"no catalog named {name!r} was found; found: {', '.join(known) or 'none'}. "
                "Put a YAML catalog file in one of: "
                + ", ".join(str(f) for _, f in (self._path or search_path()))
                + " (or a folder of $INTAKE_PATH); `intake-broker catalogs` lists them"
            )
        if found.path is None:
            key: tuple = ("ep", found.name)
        else:
            stat = os.stat(found.path)
            key = (found.path, stat.st_mtime_ns, stat.st_size, found.entry)
        with self._lock:
            if key in self._opened:
                return self._opened[key]
        if found.path is None:
            opened = load_entry_point(found.name)
        else:
            from intake_broker.catalogs.files import open_entry

            assert found.entry is not None  # a YAML entry has its path and its entry name
            opened = open_entry(found.path, found.entry)
        with self._lock:
            return self._opened.setdefault(key, opened)

    def __iter__(self) -> Iterator[str]:
        return iter(item.name for item in self.scan() if not item.shadowed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __repr__(self) -> str:
        return f"<discovered catalogs: {', '.join(self) or 'none'}>"

    def _ipython_key_completions_(self) -> list[str]:
        return list(self)


def load_entry_point(name: str) -> Any:
    """The catalog an ``intake.catalogs`` entry point names: the object it points to, the
    result of calling it, or the YAML file at the path it gives."""
    from intake.catalog import Catalog
    from intake.source.base import DataSource

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            break
    else:
        raise CatalogNotFound(f"no {ENTRY_POINT_GROUP!r} entry point named {name!r}")
    try:
        obj = ep.load()
        if isinstance(obj, str | os.PathLike):
            from intake_broker.catalogs.config import open_catalog

            return open_catalog(obj)
        if callable(obj) and not isinstance(obj, Catalog | DataSource):
            obj = obj()
        return obj
    except BrokerError:
        raise
    except Exception as err:
        raise BrokerError(
            f"the catalog entry point {name!r} ({ep.value}) failed to load: "
            f"{type(err).__name__}: {err}"
        ) from err


_CATALOGS = Catalogs()


def catalogs() -> Catalogs:
    """The discovered catalogs on the default search path (one shared object)."""
    return _CATALOGS
