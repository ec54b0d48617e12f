"""YAML catalog files: checked against their drivers, and opened as intake catalogs.

The format is intake's v1 format (``sources:`` / ``driver:`` / ``args:`` / ``metadata:``), so
``intake.open_catalog(file)`` keeps working. :func:`open_yaml` adds what intake does not do:

- every entry is checked when the file is opened -- the structure (a JSON schema, see
  :mod:`intake_broker.catalogs.spec`, which reads the file with the line of every field), the driver
  (installed? a typo?), the argument names, the required arguments and their types (read from
  the driver's signature) -- and each error names the file, the line, the field and what would
  be valid;
- environment variables: ``${NAME}`` (an error naming file, line and variable when unset),
  ``${NAME:-default}``, ``$$`` for a literal ``$``; intake's own ``{{ env(NAME) }}`` works too,
  but an unset ``NAME`` is an error here rather than an empty string. Variables are read when
  an entry is opened, so a secret is never written in the file, and an entry that needs an
  unset variable does not stop the others from opening;
- relative paths in the ``paths``, ``path``, ``directory``, ``index``, ``data`` and ``root_map``
  arguments of Bluesky drivers are relative to the YAML file's folder (intake's
  ``{{ CATALOG_DIR }}`` works as well); a driver may declare others as ``path_arguments``;
- ``handler_registry`` values may be dotted names (``"package.module.Handler"``), imported
  when the entry is opened;
- ``metadata: {timezone: <IANA name>}`` on an entry, or at the top of the file for every
  entry, is checked and given to the catalog as ``catalog.metadata["timezone"]``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from dataclasses import dataclass
from typing import Any

from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry, UserParameter

from intake_broker import plugins
from intake_broker.catalogs.arguments import conforms, describe, describe_value, driver_signature
from intake_broker.catalogs.spec import (
    CatalogFileError,
    CatalogSpec,
    UnknownDriverError,
    check_timezone,
    expand_variables,
    resolve_path,
    strings_in,
    variables,
)

__all__ = [
    "CORE_DRIVERS",
    "OPTIONAL_DRIVERS",
    "PATH_ARGUMENTS",
    "CatalogFileError",
    "CatalogSpec",
    "CheckedEntry",
    "EntryCheck",
    "UnknownDriverError",
    "YAMLCatalog",
    "check_entry",
    "expand_variables",
    "open_entry",
    "open_yaml",
    "resolve_path",
    "variables",
]

#: Arguments of Bluesky drivers that hold paths, resolved relative to the YAML file's folder.
PATH_ARGUMENTS = ("paths", "path", "directory", "index", "data", "root_map")
#: Drivers of this project that may be absent: an entry naming one opens with a clear error.
OPTIONAL_DRIVERS = {
    "bluesky-jsonl-catalog": "intake-broker-files (pip install ./drivers/files)",
    "bluesky-msgpack-catalog": "intake-broker-files (pip install ./drivers/files)",
    "bluesky-native-catalog": "intake-broker-native (pip install ./drivers/native)",
    "bluesky-mongo-normalized-catalog": "intake-broker-mongo (pip install ./drivers/mongo)",
}
#: Drivers of the core registered at run time until they are declared as entry points.
CORE_DRIVERS = plugins.CORE_DRIVERS


# -- drivers ---------------------------------------------------------------------------------


def ensure_core_drivers() -> None:
    """Make the core's own drivers known to intake (once they are entry points, a no-op)."""
    from intake.source.discovery import drivers

    registered = drivers.registered()
    for name, target in CORE_DRIVERS.items():
        registered.setdefault(name, target)


def installed_drivers() -> list[str]:
    """Names of the installed intake drivers for Bluesky runs (``bluesky-*``)."""
    from intake.source import registry

    ensure_core_drivers()
    return sorted(name for name in registry if name.startswith("bluesky"))


def import_object(name: str) -> Any:
    """The object named ``package.module.Name`` or ``package.module:Name``."""
    module, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
    if not module:
        raise ImportError(f"{name!r} is not a dotted name such as 'package.module.Name'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def driver_class(spec: CatalogSpec, name: str) -> type | None:
    """The class of the entry's driver; None for intake's list/dict driver forms.

    Raises
    ------
    UnknownDriverError
        Not installed (with the installed Bluesky drivers and a close match) or not importable.
    """
    from intake.source import registry

    ensure_core_drivers()
    driver = spec.entry_driver(name)
    keys = ("sources", name, "driver")
    if not isinstance(driver, str):
        return None
    if driver in registry:
        try:
            return registry[driver]
        except Exception as err:
            raise spec.error(
                keys,
                f"driver {driver!r} is installed but failed to import: {err}",
                UnknownDriverError,
            ) from err
    if "." in driver or ":" in driver:
        try:
            return import_object(driver)
        except (ImportError, AttributeError) as err:
            raise spec.error(
                keys, f"cannot import driver class {driver!r}: {err}", UnknownDriverError
            ) from err
    bluesky = installed_drivers()
    close = difflib.get_close_matches(driver, [*bluesky, *OPTIONAL_DRIVERS], n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close and close[0] != driver else "."
    package = OPTIONAL_DRIVERS.get(driver)
    where = (
        f" It comes with {package}."
        if package
        else " Check the spelling, or install the plugin that provides it."
    )
    raise spec.error(
        keys,
        (
            f"driver {driver!r} is not installed{hint} Installed Bluesky drivers: "
            f"{', '.join(bluesky) or 'none'} (and {len(registry) - len(bluesky)} other intake "
            f"drivers).{where}"
        ),
        UnknownDriverError,
    )


@dataclass
class EntryCheck:
    """The outcome of checking one entry: its driver class, or why it cannot be opened."""

    name: str
    cls: type | None
    problem: CatalogFileError | None = None


def check_entry(
    spec: CatalogSpec, name: str, chain: tuple = (), *, deep: bool = True
) -> EntryCheck:
    """Check one entry of ``spec``: driver, argument names, required arguments and types.

    A driver of this project that is not installed is not an error here: the entry's
    :class:`EntryCheck` carries the error, raised when the entry is opened (a federation skips
    such a member with a warning). Drivers may add checks of their own with a classmethod
    ``check_catalog_entry(spec, name, chain)`` (the federation driver checks its members);
    ``deep=False`` leaves them out.

    Raises
    ------
    CatalogFileError
        Naming the file, the line, the field and what would be valid.
    """
    if name not in spec.sources:
        raise spec.error(
            ("sources",), f"no entry {name!r}; the entries are {', '.join(map(str, spec.sources))}"
        )
    entry = spec.sources[name]
    try:
        cls = driver_class(spec, name)
    except UnknownDriverError as err:
        if entry["driver"] in OPTIONAL_DRIVERS:
            return EntryCheck(name, None, err)
        raise
    args = entry.get("args") or {}
    check_timezone(
        spec,
        ("sources", name, "metadata", "timezone"),
        (entry.get("metadata") or {}).get("timezone"),
    )
    for keys, text in strings_in(args, ("sources", name, "args")):
        try:
            list(variables(text))
        except ValueError as err:
            raise spec.error(keys, str(err)) from None
    if cls is None:
        return EntryCheck(name, None)
    _check_arguments(spec, name, cls, args)
    hook = getattr(cls, "check_catalog_entry", None)
    if hook is not None and deep and name not in spec._checked:
        hook(spec, name, chain)
        spec._checked.add(name)
    return EntryCheck(name, cls)


def _check_arguments(spec: CatalogSpec, name: str, cls: type, args: dict) -> None:
    signature = driver_signature(cls)
    driver = spec.entry_driver(name)
    offered = signature.offered()
    for arg in args:
        if not signature.open and arg not in signature.parameters:
            close = difflib.get_close_matches(str(arg), offered, n=1)
            raise spec.error(
                ("sources", name, "args", arg),
                (
                    f"driver {driver!r} takes no argument {arg!r}"
                    + (f"; did you mean {close[0]!r}?" if close else ".")
                    + f" Its arguments: {', '.join(offered)}"
                ),
            )
    for required in signature.required:
        if required not in args:
            hint = describe(signature.parameters[required].hint)
            raise spec.error(
                ("sources", name, "args"),
                (
                    f"driver {driver!r} needs the argument {required!r} ({hint}); its arguments: "
                    + ", ".join(
                        f"{p}{' (required)' if p in signature.required else ''}" for p in offered
                    )
                ),
            )
    for arg, value in args.items():
        parameter = signature.parameters.get(arg)
        if parameter is not None and not conforms(value, parameter.hint):
            raise spec.error(
                ("sources", name, "args", arg),
                (f"expected {describe(parameter.hint)}, got {describe_value(value)}"),
            )
    registry = args.get("handler_registry")
    if isinstance(registry, dict):
        for spec_name, target in registry.items():
            if isinstance(target, str) and not re.fullmatch(
                r"[A-Za-z_][\w.]*[.:][A-Za-z_][\w.]*", target
            ):
                raise spec.error(
                    ("sources", name, "args", "handler_registry", spec_name),
                    (
                        f"handler {target!r} is not a dotted name; give the handler class as "
                        "'package.module.Class', e.g. "
                        "'area_detector_handlers.handlers.AreaDetectorHDF5Handler'"
                    ),
                )


# -- opening ---------------------------------------------------------------------------------


class CheckedEntry(LocalCatalogEntry):
    """An intake entry that reads environment variables, resolves relative paths and imports
    handlers when it is opened; the file keeps ``${VARIABLES}`` and nothing secret is stored
    in :meth:`describe`."""

    def __init__(self, spec: CatalogSpec, check: EntryCheck):
        entry = spec.sources[check.name]
        metadata = dict(entry.get("metadata") or {})
        if "timezone" in spec.metadata:
            metadata.setdefault("timezone", spec.metadata["timezone"])
        parameters = []
        for key, value in (entry.get("parameters") or {}).items():
            try:
                parameters.append(UserParameter(name=key, **(value or {})))
            except (TypeError, ValueError) as err:
                raise spec.error(
                    ("sources", check.name, "parameters", key),
                    (
                        f"not an intake user parameter ({err}); give description, type, default "
                        "and optionally min, max, allowed"
                    ),
                ) from None
        self._spec, self._check = spec, check
        super().__init__(
            name=check.name,
            description=entry.get("description"),
            driver=check.cls if check.cls is not None else entry["driver"],
            direct_access=entry.get("direct_access", "forbid"),
            args=dict(entry.get("args") or {}),
            cache=entry.get("cache") or [],
            parameters=parameters,
            metadata=metadata,
            catalog_dir=spec.catalog_dir,
            getenv=True,
            getshell=False,
        )

    def get(self, **user_parameters: Any) -> Any:
        """Open the entry; a driver refusing its arguments is an error naming the entry."""
        try:
            return super().get(**user_parameters)
        except CatalogFileError:
            raise
        except (TypeError, ValueError) as err:
            driver = self._spec.entry_driver(self.name)
            raise self._spec.error(
                ("sources", self.name),
                (f"driver {driver!r} refused its arguments: {type(err).__name__}: {err}"),
            ) from err

    def _create_open_args(self, user_parameters: dict) -> tuple[Any, dict]:
        if self._check.problem is not None:
            raise self._check.problem
        spec, name = self._spec, self.name
        keys = ("sources", name, "args")
        for where, text in strings_in(self._open_args, keys):
            for variable, has_default in variables(text):
                if not has_default and variable not in os.environ:
                    raise spec.error(
                        where,
                        (
                            f"environment variable {variable} is not set; set it (export "
                            f"{variable}=...) or give a default: ${{{variable}:-value}}"
                        ),
                    )
        plugin, args = super()._create_open_args(user_parameters)
        if getattr(plugin, "reads_yaml_arguments", False):
            # the driver reads ${VARIABLES} and relative paths itself (EntryArguments), as it
            # does under plain intake.open_catalog: one meaning for the file
            return plugin, finish_arguments(spec, name, plugin, args, paths=False)
        metadata = args.pop("metadata", None)
        args = {k: _expand(v) for k, v in args.items()}
        if metadata is not None:
            args["metadata"] = metadata
        return plugin, finish_arguments(spec, name, plugin, args)


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return expand_variables(value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def finish_arguments(
    spec: CatalogSpec, name: str, plugin: type, args: dict, *, paths: bool = True
) -> dict:
    """Resolve relative paths (against the file's folder; not when ``paths`` is False: the
    driver does) and import dotted handler names."""
    from intake_broker.views.catalog import BrokerCatalog

    path_args = getattr(plugin, "path_arguments", None) if paths else ()
    if path_args is None:
        path_args = PATH_ARGUMENTS if issubclass(plugin, BrokerCatalog) else ()
    path_args = path_args or ()
    base = spec.catalog_dir
    for arg in path_args:
        value = args.get(arg)
        if isinstance(value, str):
            args[arg] = resolve_path(value, base)
        elif isinstance(value, list):
            args[arg] = [resolve_path(v, base) if isinstance(v, str) else v for v in value]
        elif isinstance(value, dict) and arg == "root_map":
            args[arg] = {
                k: resolve_path(v, base) if isinstance(v, str) else v for k, v in value.items()
            }
    registry = args.get("handler_registry")
    if isinstance(registry, dict):
        handlers = {}
        for key, target in registry.items():
            try:
                handlers[key] = import_object(target) if isinstance(target, str) else target
            except (ImportError, AttributeError) as err:
                raise spec.error(
                    ("sources", name, "args", "handler_registry", key),
                    (
                        f"cannot import handler {target!r}: {err}; install the package that "
                        "provides it or correct the name"
                    ),
                ) from None
        args["handler_registry"] = handlers
    return args


class YAMLCatalog(Catalog):
    """The entries of a checked YAML catalog file (what :func:`open_yaml` returns)."""

    container = "catalog"

    def __init__(self, spec: CatalogSpec, checks: dict[str, EntryCheck], **kwargs: Any):
        self.spec = spec
        self.path = spec.path
        self._checks = checks
        kwargs.setdefault("name", spec.name)
        kwargs.setdefault("description", spec.description)
        kwargs.setdefault("metadata", spec.metadata)
        super().__init__(**kwargs)

    def _load(self) -> None:
        if not self._entries and getattr(self, "_checks", None):
            for name, check in self._checks.items():
                entry = CheckedEntry(self.spec, check)
                entry._catalog = self
                self._entries[name] = entry

    def entry_check(self, name: str) -> EntryCheck:
        """How the entry ``name`` was checked (its driver class, or why it cannot open)."""
        return self._checks[name]


def open_yaml(
    path: str | os.PathLike, storage_options: dict | None = None, **kwargs: Any
) -> YAMLCatalog:
    """Read and check a YAML catalog file, every entry of it; see the module docstring."""
    spec = CatalogSpec.read(path, storage_options)
    checks = {name: check_entry(spec, name) for name in spec.sources}
    return YAMLCatalog(spec, checks, **kwargs)


def open_entry(path: str | os.PathLike, name: str) -> Any:
    """Open one entry of a YAML catalog file (checking only that entry)."""
    spec = CatalogSpec.read(path)
    catalog = YAMLCatalog(spec, {name: check_entry(spec, name)})
    return catalog[name]
