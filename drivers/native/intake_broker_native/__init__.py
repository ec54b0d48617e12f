"""intake-broker-native: the fast embedded store of intake-broker.

A SQL run index (SQLite with no server, or PostgreSQL) with each stream's event columns in zarr
on any fsspec URL (a local folder, or ``s3://`` at facility scale).

>>> from intake_broker_native import NativeCatalog, NativeStore
>>> cat = NativeCatalog("sqlite:///runs/index.sqlite")            # data beside it
>>> store = NativeStore.in_folder("runs")                          # runs/index.sqlite, runs/data
>>> cat = NativeCatalog("postgresql://broker@db/csx", "s3://csx-runs/data")
"""

from __future__ import annotations

from intake_broker.transfer import CopyReport, copy_runs

from .annotations import AnnotationIndex
from .catalog import NativeCatalog
from .errors import (
    CopyMismatch,
    CorruptChunk,
    CorruptIndex,
    IndexMissing,
    IndexUnavailable,
    MissingChunk,
    SchemaVersionError,
    StorageError,
)
from .recovery import ReindexReport, main, reindex
from .schema import SCHEMA_VERSION
from .store import NativeStore

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "CopyMismatch",
    "CopyReport",
    "CorruptChunk",
    "CorruptIndex",
    "IndexMissing",
    "IndexUnavailable",
    "MissingChunk",
    "NativeCatalog",
    "AnnotationIndex",
    "NativeStore",
    "ReindexReport",
    "SchemaVersionError",
    "StorageError",
    "copy_runs",
    "main",
    "reindex",
]
