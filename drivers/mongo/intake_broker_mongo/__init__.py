"""intake-broker-mongo: Bluesky runs in MongoDB, in databroker's "normalized" layout.

Reads what suitcase-mongo and databroker wrote, in place and unchanged, and writes the same
layout::

    >>> from intake_broker_mongo import MongoNormalizedCatalog
    >>> cat = MongoNormalizedCatalog("mongodb://db:27017/mds", "mongodb://db:27017/assets")
    >>> cat = MongoNormalizedCatalog(uri="mongodb://db:27017/runs")   # one database for all
    >>> RE.subscribe(cat.insert)                                       # record into it
    >>> cat[-1].primary.read()

or in a YAML catalog, ``driver: bluesky-mongo-normalized-catalog``.
"""

from __future__ import annotations

from .catalog import MongoNormalizedCatalog
from .connection import MongoConfigurationError, MongoConnectionError, redact
from .embedded import EmbeddedMongoStore, MongoEmbeddedCatalog
from .filters import to_mongo
from .layout import EXTRA_INDEXES, SUITCASE_INDEXES, create_indexes
from .queries import to_mongo_normalized
from .store import MongoStore

__version__ = "0.1.0"

__all__ = [
    "EXTRA_INDEXES",
    "SUITCASE_INDEXES",
    "EmbeddedMongoStore",
    "MongoEmbeddedCatalog",
    "MongoConfigurationError",
    "MongoConnectionError",
    "MongoNormalizedCatalog",
    "MongoStore",
    "create_indexes",
    "redact",
    "to_mongo",
    "to_mongo_normalized",
]
