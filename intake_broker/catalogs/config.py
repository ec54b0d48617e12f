"""Finding stores and catalogs: the store registry, YAML catalog files, the default catalog.

Stores register under the ``intake_broker.stores`` entry-point group (``memory`` is built in);
intake drivers under ``intake.drivers``. Both are read lazily, once. YAML catalog files are
read and checked by :mod:`intake_broker.catalogs.files` (:func:`open_catalog`), found where users
keep them by :mod:`intake_broker.catalogs.discovery`, and merged by :mod:`intake_broker.federation`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from intake_broker import plugins
from intake_broker.catalogs.paths import data_dir
from intake_broker.errors import BrokerError, NotSupported, UnknownDriver
from intake_broker.store.abilities import FolderStore

STORE_GROUP = plugins.STORES
#: The store the CLI and ``demo`` use when nobody names one (a name in the store registry:
#: the native driver's, a SQLite index and zarr columns in one folder).
DEFAULT_STORE = "native"


def installed_stores() -> list[str]:
    """Names of the stores that can be opened with :func:`load_store`."""
    return sorted({"memory", *plugins.entry_points(STORE_GROUP)})


def store_class(name: str) -> type:
    """The store class registered as ``name`` (``"memory"``, ``"jsonl"``, ``"msgpack"``, ...).

    Raises
    ------
    UnknownDriver
        Listing the installed store names and how to get more.
    """
    if name == "memory":
        from intake_broker.store.memory import MemoryStore

        return MemoryStore
    if name not in plugins.entry_points(STORE_GROUP):
        raise UnknownDriver(
            f"no store named {name!r} is installed; installed: {', '.join(installed_stores())}. "
            f"Stores come from the {STORE_GROUP!r} entry points of plugins such as "
            "intake-broker-files (pip install ./drivers/files) and intake-broker-native "
            "(pip install ./drivers/native)"
        )
    return plugins.load(STORE_GROUP, name, "store")  # type: ignore[return-value]


def folder_store(name: str, folder: str | os.PathLike, **kwargs: Any):
    """The store ``name`` kept in one local ``folder`` (stores with the FolderStore ability)."""
    cls = store_class(name)
    if not isinstance(cls, FolderStore):
        raise NotSupported(
            f"the store {name!r} ({cls.__name__}) cannot be kept in a folder; name a store "
            f"that can ({', '.join(installed_stores())}) or give its arguments in a YAML catalog"
        )
    return cls.in_folder(str(folder), **kwargs)


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


def default_catalog(data: str | os.PathLike | None = None, *, store: str = DEFAULT_STORE):
    """The embedded default catalog, kept in ``<data>/runs``.

    ``data`` is the data directory: by default ``$INTAKE_BROKER_DATA`` or the user data
    directory (see :func:`data_dir`). Writable: ``RE.subscribe(default_catalog().insert)``.
    """
    from intake_broker.views.catalog import BrokerCatalog

    folder = Path(data if data is not None else data_dir()).expanduser() / "runs"
    if store == DEFAULT_STORE and store not in plugins.entry_points(STORE_GROUP):
        raise UnknownDriver(
            f"the default catalog is a {DEFAULT_STORE!r} store, which is not installed: "
            "pip install ./drivers/native (intake-broker-native), or name another store "
            f"(installed: {', '.join(installed_stores())})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return BrokerCatalog(folder_store(store, folder), name=f"default ({folder})")


def open_catalog(uri: str | os.PathLike, **kwargs: Any):
    """Open a YAML catalog file, checking every entry first.

    Like ``intake.open_catalog`` for the v1 format (``sources:`` / ``driver:`` / ``args:``),
    and also: each entry's driver, argument names, required arguments and types are checked
    against the driver's signature, with errors naming the file, the line, the field and what
    would be valid; ``${VARIABLE}`` and ``{{ env(VARIABLE) }}`` are read from the environment
    when an entry is opened (unset is an error); relative paths are relative to the file's
    folder; ``handler_registry`` values may be dotted names; ``metadata.timezone`` is checked.
    See :mod:`intake_broker.catalogs.files`.

    Parameters
    ----------
    uri : str or path
        A local path or an fsspec URL of the YAML file.
    **kwargs
        ``storage_options`` for reading a remote file; the rest go to the intake catalog.

    Returns
    -------
    intake_broker.catalogs.files.YAMLCatalog
        An intake catalog: ``cat["csx"]`` opens an entry.

    Raises
    ------
    CatalogFileError
        The file is missing, not YAML, or an entry is wrong (a ``BrokerError`` and a
        ``ValueError``; an unknown driver is also an ``UnknownDriver``).
    """
    from intake_broker.catalogs.files import open_yaml

    return open_yaml(uri, **kwargs)
