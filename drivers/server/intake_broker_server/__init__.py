"""intake-broker-server: a facility's catalogs over HTTP.

>>> from intake_broker_server import serve
>>> serve("facility.yml", entry="csx", port=8000, workers=4)     # intake-broker serve ...

The API mirrors the store contract (so :mod:`intake_broker_remote` is a store over it), event
data travel as binary columns, and every stream is also a zarr v3 group that
``xarray.open_zarr`` reads directly. See the README for the endpoints.
"""

from __future__ import annotations

from .app import __version__, app_from_env, create_app, open_served_catalog, serve
from .service import Limits, Service

__all__ = [
    "Limits",
    "Service",
    "__version__",
    "app_from_env",
    "create_app",
    "open_served_catalog",
    "serve",
]
