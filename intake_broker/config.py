"""Finding stores and catalogs: the store registry, YAML catalog files, the default catalog.

Stores register under the ``intake_broker.stores`` entry-point group (``memory`` is built in);
intake drivers under ``intake.drivers``. Both are read lazily, once. YAML catalog files are
read and checked by :mod:`intake_broker.catalog_file` (:func:`open_catalog`), found where users
keep them by :mod:`intake_broker.discovery`, and merged by :mod:`intake_broker.federation`.
"""

from __future__ import annotations

import functools
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import BrokerError, UnknownDriver

STORE_GROUP = "intake_broker.stores"
#: Environment variable naming the folder of the default catalog (else the user data dir).
DATA_ENV = "INTAKE_BROKER_DATA"
#: The store the CLI and ``demo`` use when nobody names one.
DEFAULT_STORE = "native"


@functools.cache
def _store_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=STORE_GROUP)}


def installed_stores() -> list[str]:
    """Names of the stores that can be opened with :func:`load_store`."""
    return sorted({"memory", *_store_entry_points()})


def store_class(name: str) -> type:
    """The store class registered as ``name`` (``"memory"``, ``"jsonl"``, ``"msgpack"``, ...).

    Raises
    ------
    UnknownDriver
        Listing the installed store names and how to get more.
    """
    if name == "memory":
        from .memory import MemoryStore

        return MemoryStore
    ep = _store_entry_points().get(name)
    if ep is None:
        raise UnknownDriver(
            f"no store named {name!r} is installed; installed: {', '.join(installed_stores())}. "
            f"Stores come from the {STORE_GROUP!r} entry points of plugins such as "
            "intake-broker-files (pip install ./drivers/files)"
        )
    try:
        return ep.load()
    except Exception as err:
        raise UnknownDriver(
            f"the store {name!r} ({ep.value}) is installed but failed to import: {err}"
        ) from err


def load_store(name: str, **kwargs: Any):
    """Create a store by its registered name with the store's own arguments."""
    cls = store_class(name)
    try:
        return cls(**kwargs)
    except TypeError as err:  # wrong or missing arguments
        raise BrokerError(
            f"store {name!r} ({cls.__name__}) cannot be created with arguments "
            f"{sorted(kwargs)}: {err}"
        ) from err


def data_dir() -> Path:
    """Where the default catalog keeps its data: ``$INTAKE_BROKER_DATA`` or the user data
    directory (``~/.local/share/intake-broker`` on Linux)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("intake-broker", appauthor=False))


def default_catalog(data: str | os.PathLike | None = None, *, store: str = DEFAULT_STORE):
    """The embedded default catalog, kept in ``<data>/runs``.

    ``data`` is the data directory: by default ``$INTAKE_BROKER_DATA`` or the user data
    directory (see :func:`data_dir`). Writable: ``RE.subscribe(default_catalog().insert)``.
    """
    from .catalog import BrokerCatalog

    folder = Path(data if data is not None else data_dir()).expanduser() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return BrokerCatalog(store_class(store).in_folder(str(folder)), name=f"default ({folder})")


def open_catalog(uri: str | os.PathLike, **kwargs: Any):
    """Open a YAML catalog file, checking every entry first.

    Like ``intake.open_catalog`` for the v1 format (``sources:`` / ``driver:`` / ``args:``),
    and also: each entry's driver, argument names, required arguments and types are checked
    against the driver's signature, with errors naming the file, the line, the field and what
    would be valid; ``${VARIABLE}`` and ``{{ env(VARIABLE) }}`` are read from the environment
    when an entry is opened (unset is an error); relative paths are relative to the file's
    folder; ``handler_registry`` values may be dotted names; ``metadata.timezone`` is checked.
    See :mod:`intake_broker.catalog_file`.

    Parameters
    ----------
    uri : str or path
        A local path or an fsspec URL of the YAML file.
    **kwargs
        ``storage_options`` for reading a remote file; the rest go to the intake catalog.

    Returns
    -------
    intake_broker.catalog_file.YAMLCatalog
        An intake catalog: ``cat["csx"]`` opens an entry.

    Raises
    ------
    CatalogFileError
        The file is missing, not YAML, or an entry is wrong (a ``BrokerError`` and a
        ``ValueError``; an unknown driver is also an ``UnknownDriver``).
    """
    from .catalog_file import open_yaml

    return open_yaml(uri, **kwargs)
