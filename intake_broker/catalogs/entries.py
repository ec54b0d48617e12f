"""What a driver does with the arguments of a YAML catalog entry, the same way whoever opens it.

``intake.open_catalog(file)[entry]`` and :func:`intake_broker.open_catalog` both end in
``Driver(**args, metadata={..., "catalog_dir": <the file's folder>})``. A Bluesky driver reads
its arguments through :class:`EntryArguments` at that point, so a YAML file has one meaning:

- ``${NAME}`` / ``${NAME:-default}`` are read from the environment (an unset one is an error
  naming the file, the line and the variable);
- relative paths (and relative ``sqlite:///`` URLs) are relative to the YAML file's folder,
  never to the current directory;
- a location that does not exist is a :class:`~intake_broker.errors.StoreNotFound` naming the
  entry, the file, the argument and what was looked for -- unless the entry says
  ``create: true``: then opening creates nothing and the store is made by its first write;
  a glob or folder that exists but holds no run yet is an
  :class:`~intake_broker.errors.EmptyLocationWarning`.

Outside a YAML entry (a driver built in Python) the arguments are taken as they are.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from intake_broker.catalogs.spec import CatalogFileError, expand_variables, resolve_path
from intake_broker.errors import EmptyLocationWarning, StoreNotFound

__all__ = ["EntryArguments", "has_magic", "glob_base"]

_MAGIC = set("*?[")
#: How far up the call stack the intake entry that is opening a driver is looked for.
_STACK_DEPTH = 16


def has_magic(path: str) -> bool:
    """Whether ``path`` is a glob."""
    return bool(_MAGIC & set(path))


def glob_base(path: str) -> str:
    """The folder a glob searches: its part before the first wildcard, up to a ``/``."""
    if not has_magic(path):
        return path
    head = path[: min(path.index(c) for c in _MAGIC if c in path)]
    return head.rsplit("/", 1)[0] if "/" in head else ""


@dataclass
class EntryArguments:
    """The YAML entry a driver is opened from (when it is), and how its arguments are read.

    ``EntryArguments.of(metadata)`` in a driver's ``__init__``; ``from_yaml`` is False for a
    driver built in Python, and every method then returns its argument unchanged.
    """

    catalog_dir: str | None = None
    #: The YAML file and the entry's name, when intake's entry is found opening the driver.
    file: str | None = None
    entry: str | None = None
    #: The entry's ``driver`` and ``args`` as written in the file (``${VARIABLES}`` and
    #: ``{{ templates }}`` unexpanded): what :meth:`BrokerCatalog.serialize` writes back.
    driver: str | None = None
    raw_args: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    @classmethod
    def of(cls, metadata: Mapping[str, Any] | None) -> EntryArguments:
        """The entry opening this driver (intake puts the file's folder in ``metadata``)."""
        catalog_dir = (metadata or {}).get("catalog_dir")
        if not catalog_dir:
            return cls()
        found = cls(catalog_dir=str(catalog_dir))
        entry = _opening_entry()
        if entry is not None:
            found.entry = entry.name
            catalog = getattr(entry, "_catalog", None)
            path = getattr(catalog, "path", None)
            if isinstance(path, str):
                found.file = path if "://" in path else os.path.abspath(path)
            driver = getattr(entry, "_driver", None)
            found.driver = driver if isinstance(driver, str) else None
            found.raw_args = copy.deepcopy(dict(getattr(entry, "_open_args", None) or {}))
            found.description = getattr(entry, "_description", None)
        return found

    @property
    def from_yaml(self) -> bool:
        """Whether the driver is being opened from a YAML catalog entry."""
        return self.catalog_dir is not None

    def where(self, argument: str | None = None) -> str:
        """``<file>, line <n>, entry '<name>', field 'args.<argument>'`` (what is known)."""
        if self.file is None:
            text = f"the YAML entry in {self.catalog_dir}" if self.from_yaml else "this catalog"
            return text + (f", argument {argument!r}" if argument else "")
        keys: tuple = ("sources", self.entry, "args") + ((argument,) if argument else ())
        return str(CatalogFileError(self.file, self._line(keys), keys, "x"))[:-3]

    def _line(self, keys: tuple) -> int | None:
        if self.file is None or "://" in self.file:
            return None
        from intake_broker.catalogs.spec import CatalogSpec

        try:
            return CatalogSpec.read(self.file).line(*keys)
        except Exception:  # the file changed or went away since: no line, still the entry
            return None

    # -- values ----------------------------------------------------------------------------

    def value(self, value: Any, argument: str | None = None) -> Any:
        """``value`` with ``${NAME}`` read from the environment (strings in lists, mappings)."""
        if not self.from_yaml:
            return value
        if isinstance(value, str):
            try:
                return expand_variables(value)
            except KeyError as err:
                name = err.args[0]
                raise CatalogFileError(
                    self.file or str(self.catalog_dir),
                    self._line(("sources", self.entry, "args", argument)) if argument else None,
                    ("sources", self.entry, "args", argument) if self.entry and argument else None,
                    f"environment variable {name} is not set; set it (export {name}=...) or "
                    f"give a default: ${{{name}:-value}}",
                ) from None
        if isinstance(value, Mapping):
            return {k: self.value(v, argument) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, argument) for v in value]
        return value

    def path(self, value: Any, argument: str | None = None) -> Any:
        """``value`` (a path, URL or list of them) expanded and made absolute against the YAML
        file's folder when it is relative; ``root_map`` mappings have their targets resolved."""
        if not self.from_yaml or value is None:
            return value
        value = self.value(value, argument)
        base = str(self.catalog_dir)
        if isinstance(value, str | os.PathLike):
            return resolve_path(os.fspath(value), base)
        if isinstance(value, Mapping):
            return {k: resolve_path(v, base) if isinstance(v, str) else v for k, v in value.items()}
        if isinstance(value, Sequence):
            return [
                resolve_path(os.fspath(v), base) if isinstance(v, str | os.PathLike) else v
                for v in value
            ]
        return value

    # -- locations -------------------------------------------------------------------------

    def not_found(self, argument: str, looked_for: str, problem: str) -> StoreNotFound:
        """The error for a location of ``argument`` that does not exist."""
        return StoreNotFound(
            f"{self.where(argument)}: {problem}: {looked_for}. Correct the path, or, if the "
            "store is to be made by its first write, add 'create: true' to the entry's args "
            "(opening creates nothing either way)"
        )

    def check_files(
        self,
        argument: str,
        paths: Sequence[str],
        storage_options: Mapping[str, Any] | None,
        *,
        create: bool,
        extension: str,
    ) -> None:
        """Check run-file locations of a YAML entry: a file, folder or glob folder (or bucket)
        that does not exist is a :class:`StoreNotFound` (unless ``create``); a glob or folder
        holding no ``*<extension>`` file yet, an :class:`EmptyLocationWarning`."""
        if not self.from_yaml:
            return
        from fsspec.core import url_to_fs

        for path in paths:
            fs, local = url_to_fs(path, **dict(storage_options or {}))
            folder = glob_base(local) if has_magic(local) else local
            if _object_store(fs):  # no folders there: the bucket must exist, prefixes need not
                folder = folder.strip("/").split("/", 1)[0]
            try:
                exists = fs.exists(folder) if folder else True
            except (PermissionError, OSError) as err:
                raise StoreNotFound(
                    f"{self.where(argument)}: cannot reach {path}: {type(err).__name__}: {err}"
                ) from err
            if not exists:
                if create:
                    continue
                what = "folder" if has_magic(local) else "file or folder"
                if _object_store(fs):
                    what = f"bucket {folder!r}"
                raise self.not_found(argument, path, f"the {what} does not exist")
            if has_magic(local):
                matched = fs.glob(local)
            elif _object_store(fs) or fs.isdir(local):
                matched = fs.glob(f"{local.rstrip('/')}/*{extension}")
            else:
                continue
            if not matched and not create:
                warnings.warn(
                    f"{self.where(argument)}: {path} matches no run file yet; the catalog is "
                    "empty for now",
                    EmptyLocationWarning,
                    stacklevel=4,
                )


def _object_store(fs: Any) -> bool:
    """Whether ``fs`` is an object store (S3, GCS, Azure, ...): buckets, no real folders."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in {"s3", "s3a", "gs", "gcs", "az", "abfs", "adl", "oss"}


def _opening_entry() -> Any:
    """The intake ``LocalCatalogEntry`` whose ``get`` is constructing a driver, if any."""
    try:
        from intake.catalog.local import LocalCatalogEntry
    except ImportError:  # pragma: no cover - intake is a dependency
        return None
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, LocalCatalogEntry):
            return candidate
        frame = frame.f_back
    return None
