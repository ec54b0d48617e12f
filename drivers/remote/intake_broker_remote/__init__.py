"""intake-broker-remote: the catalogs of an intake-broker server, with the local Python API.

>>> import intake
>>> cat = intake.open_catalog("http://broker:8000", driver="bluesky-remote-catalog")
>>> from intake_broker_remote import RemoteCatalog
>>> cat = RemoteCatalog("http://broker:8000")
>>> cat[-1].primary.read()                  # chunks fetched over HTTP when computed
"""

from __future__ import annotations

from .assets import RemoteAssetReader
from .catalog import RemoteCatalog
from .errors import (
    DescriptorNotFound,
    Forbidden,
    InvalidRequest,
    OversizedRequest,
    RemoteError,
    ResourceNotFound,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)
from .store import RemoteStore

__version__ = "0.1.0"

__all__ = [
    "DescriptorNotFound",
    "Forbidden",
    "InvalidRequest",
    "OversizedRequest",
    "RemoteAssetReader",
    "RemoteCatalog",
    "RemoteError",
    "RemoteStore",
    "ResourceNotFound",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
]
