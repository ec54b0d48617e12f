"""The one plugin loader: entry points of the groups intake-broker reads, found once per process.

========================================  =================================================
group                                     what registers there
========================================  =================================================
``intake_broker.stores``                  store classes by name (``native``, ``jsonl``, ...)
``intake_broker.annotation_stores``       annotation stores by URL scheme (``sqlite``, ``https``)
``intake_broker.commands``                subcommands of ``intake-broker`` (``serve``, ...)
``databroker.handlers``,                  asset handlers by resource ``spec``
``intake_broker.handlers``
``intake_broker.mimetypes``               asset handlers by stream_resource ``mimetype``
``intake.drivers``                        intake drivers (read by intake and by discovery)
========================================  =================================================

``importlib.metadata.entry_points()`` parses the metadata of every installed distribution
(several ms for a large environment, which a notebook pays at its first frame). Here each
distribution's ``entry_points.txt`` is read as text and parsed only when it names one of our
groups, once per process.
"""

from __future__ import annotations

import configparser
import functools
import os
import sys
from importlib.metadata import EntryPoint

from intake_broker.errors import UnknownDriver

STORES = "intake_broker.stores"
#: Annotation stores by URL scheme (``sqlite``, ``postgresql``, ``http``, ``https``): what a
#: catalog's ``annotations:`` argument opens (see intake_broker.store.annotations).
ANNOTATION_STORES = "intake_broker.annotation_stores"
COMMANDS = "intake_broker.commands"
SPEC_GROUPS = ("databroker.handlers", "intake_broker.handlers")
MIMETYPE_GROUP = "intake_broker.mimetypes"
INTAKE_DRIVERS = "intake.drivers"
GROUPS = (STORES, ANNOTATION_STORES, COMMANDS, *SPEC_GROUPS, MIMETYPE_GROUP, INTAKE_DRIVERS)

#: Intake drivers of the core that a YAML file may name before intake has read entry points.
CORE_DRIVERS = {"bluesky-federation-catalog": "intake_broker.federation:FederatedCatalog"}

_META = (".dist-info", ".egg-info")


def _metadata_folders() -> list[str]:
    """The distribution metadata folders on ``sys.path``, first occurrence of a name wins."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(_META):
                project = name.rsplit("-", 1)[0].split("-")[0].lower().replace("_", "-")
                if project not in seen:
                    seen.add(project)
                    out.append(os.path.join(entry or ".", name))
    return out


@functools.cache
def _scan() -> dict[str, dict[str, EntryPoint]]:
    found: dict[str, dict[str, EntryPoint]] = {group: {} for group in GROUPS}
    for folder in _metadata_folders():
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        if not any(f"[{group}]" in text for group in GROUPS):
            continue
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names' case
        try:
            parser.read_string(text)
        except configparser.Error:
            continue  # a broken distribution must not hide the others
        for group in GROUPS:
            if parser.has_section(group):
                for name, value in parser.items(group):
                    found[group].setdefault(name, EntryPoint(name, value.strip(), group))
    return found


def entry_points(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` (one of :data:`GROUPS`) by name."""
    return dict(_scan()[group])


def load(group: str, name: str, what: str = "plugin") -> object:
    """The object registered as ``name`` in ``group``.

    Raises
    ------
    UnknownDriver
        Nothing is registered under ``name`` (listing what is), or it failed to import.
    """
    point = _scan()[group].get(name)
    if point is None:
        known = ", ".join(sorted(_scan()[group])) or "none"
        raise UnknownDriver(
            f"no {what} named {name!r} is installed (entry-point group {group!r}); "
            f"installed: {known}"
        )
    try:
        return point.load()
    except Exception as err:
        raise UnknownDriver(
            f"the {what} {name!r} ({point.value}) is installed but failed to import: {err}"
        ) from err


def refresh() -> None:
    """Forget what was found (after installing a plugin into a running process)."""
    _scan.cache_clear()
