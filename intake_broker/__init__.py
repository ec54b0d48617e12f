"""intake-broker: Bluesky runs as intake catalogs, streams as lazy xarray datasets.

>>> import intake_broker
>>> cat = intake_broker.temp()          # an empty in-memory catalog
>>> # RE.subscribe(cat.insert); RE(scan(...)); cat[-1].primary.read()

Heavy libraries (xarray, dask) load when first used; ``import intake_broker`` stays light.
"""

from __future__ import annotations

import atexit
import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "BrokerCatalog": "intake_broker.views.catalog",
    "MemoryCatalog": "intake_broker.views.catalog",
    "Run": "intake_broker.views.catalog",
    "Stream": "intake_broker.views.stream",
    "DocumentStore": "intake_broker.store",
    "RunRecord": "intake_broker.store",
    "MemoryStore": "intake_broker.store.memory",
    "open_catalog": "intake_broker.catalogs.config",
    "default_catalog": "intake_broker.catalogs.config",
    "queries": "intake_broker",
    "errors": "intake_broker",
    "catalog": "intake_broker.catalogs.discovery",
    "FederatedCatalog": "intake_broker.federation",
    "FederatedStore": "intake_broker.federation",
}

if TYPE_CHECKING:
    from intake_broker.catalogs.config import default_catalog, open_catalog
    from intake_broker.store.contract import DocumentStore, RunRecord
    from intake_broker.store.memory import MemoryStore
    from intake_broker.views.catalog import BrokerCatalog, MemoryCatalog, Run
    from intake_broker.views.stream import Stream


def _close_hdf5_files() -> None:
    """Close the HDF5 files still open as Python exits, while Python can still run.

    A file read through a Python file object (an fsspec URL, an asset in a bucket, a
    simulation output opened by h5netcdf) that some cache still holds at exit is otherwise
    closed by HDF5's own C exit handler, after the interpreter is gone: its close calls back
    into Python and the process dies with a segmentation fault (exit 139) after all its work
    is done. Nothing is imported here unless h5py already is.
    """
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        try:
            h5py.File(fid).close()
        except Exception:  # a file already closing: nothing left to protect
            pass


atexit.register(_close_hdf5_files)


def temp() -> BrokerCatalog:
    """A new, empty catalog held in memory: for tests, tutorials and quick looks."""
    from intake_broker.views.catalog import MemoryCatalog

    return MemoryCatalog(name="temp")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'intake_broker' has no attribute {name!r}")
    if module == "intake_broker":
        return importlib.import_module(f"intake_broker.{name}")
    if name == "catalog":  # the mapping of discovered catalogs, as databroker's was
        return importlib.import_module(module).catalogs()
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "BrokerCatalog",
    "DocumentStore",
    "FederatedCatalog",
    "FederatedStore",
    "MemoryCatalog",
    "MemoryStore",
    "Run",
    "RunRecord",
    "Stream",
    "catalog",
    "default_catalog",
    "errors",
    "open_catalog",
    "queries",
    "temp",
]
