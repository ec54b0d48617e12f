"""Finding stores and catalogs: the store registry, YAML catalog files, the default catalog.

Stores register under the ``intake_broker.stores`` entry-point group (``memory`` is built in);
intake drivers under ``intake.drivers``. Both are read lazily, once.
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import BrokerError, UnknownDriver

STORE_GROUP = "intake_broker.stores"
#: Environment variable naming the folder of the default catalog (else the user data dir).
DATA_ENV = "INTAKE_BROKER_DATA"
#: The store the CLI and ``demo`` use when nobody names one.
DEFAULT_STORE = "msgpack"


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
        raise UnknownDriver(f"the store {name!r} ({ep.value}) is installed but failed to "
                            f"import: {err}") from err


def load_store(name: str, **kwargs: Any):
    """Create a store by its registered name with the store's own arguments."""
    cls = store_class(name)
    try:
        return cls(**kwargs)
    except TypeError as err:  # wrong or missing arguments
        raise BrokerError(f"store {name!r} ({cls.__name__}) cannot be created with arguments "
                          f"{sorted(kwargs)}: {err}") from err


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


def _known_drivers() -> set[str]:
    from intake.source import registry

    return set(registry)


def open_catalog(uri: str | os.PathLike, **kwargs: Any):
    """Open a YAML catalog file with intake, first checking that every driver it names exists.

    intake alone reports an unknown driver only when the entry is opened, without the file;
    this names the file, the entry, and the installed bluesky drivers.
    """
    import intake
    import yaml

    path = str(uri)
    try:
        import fsspec

        with fsspec.open(path, "rt") as f:
            spec = yaml.safe_load(f) or {}
    except FileNotFoundError as err:
        raise BrokerError(f"catalog file {path!r} does not exist") from err
    except yaml.YAMLError as err:
        raise BrokerError(f"catalog file {path!r} is not valid YAML: {err}") from err
    sources = spec.get("sources") if isinstance(spec, dict) else None
    if not isinstance(sources, dict):
        raise BrokerError(f"catalog file {path!r} has no 'sources:' mapping; an intake catalog "
                          "lists its entries under 'sources:' with 'driver:' and 'args:'")
    known = _known_drivers()
    for name, entry in sources.items():
        driver = entry.get("driver") if isinstance(entry, dict) else None
        if isinstance(driver, str) and driver not in known and "." not in driver:
            bluesky = sorted(d for d in known if d.startswith("bluesky"))
            raise UnknownDriver(
                f"{path}: entry {name!r} names driver {driver!r}, which is not installed; "
                f"installed bluesky drivers: {', '.join(bluesky) or 'none'} (other intake "
                f"drivers: {len(known) - len(bluesky)}). Check the spelling, or install the "
                "plugin that provides it"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return intake.open_catalog(path, **kwargs)
