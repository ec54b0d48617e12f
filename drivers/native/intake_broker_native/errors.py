"""The errors of the native store, each a :class:`~intake_broker.errors.BrokerError`.

Every message names what failed and where (the index URL with its password hidden, the data
URL, the zarr chunk), and what would be right.
"""

from __future__ import annotations

from intake_broker.errors import (
    BrokerError,
    CopyMismatch,  # noqa: F401 (re-exported)
    CorruptFile,
)


class IndexUnavailable(BrokerError, ConnectionError):
    """The SQL run index cannot be reached or opened (server down, bad URL, unreadable file)."""


class SchemaVersionError(BrokerError, RuntimeError):
    """The run index was written by a newer version of intake-broker-native than this one."""


class StorageError(BrokerError, OSError):
    """The data folder or bucket cannot be written or read (permissions, missing bucket)."""


class ReadOnlyFolder(StorageError, PermissionError):
    """A write to a store opened read-only (a data folder or index this user cannot write, or
    ``read_only=True``); nothing was written."""


class CorruptChunk(CorruptFile):
    """A zarr chunk that the run index says was written is damaged (wrong size, bad checksum,
    undecodable)."""


class MissingChunk(CorruptChunk):
    """A zarr chunk that the run index says was written is not there."""


class CorruptIndex(CorruptFile):
    """The SQLite run index file is damaged (not a database, or a malformed page) or a row
    of it cannot be read."""


class IndexMissing(IndexUnavailable):
    """The run index is new or empty but its data folder holds runs: the index was lost
    (deleted, or the wrong path given); rebuild it from the data folder with ``reindex``."""
