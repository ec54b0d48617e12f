"""The intake catalog over a normalized MongoDB: ``bluesky-mongo-normalized-catalog``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.database import Database

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.errors import NotSupported
from intake_broker.views.catalog import BrokerCatalog

from .connection import DEFAULT_TIMEOUT, MongoConfigurationError
from .events import DEFAULT_CHUNK_BYTES
from .store import MongoStore


class MongoNormalizedCatalog(BrokerCatalog):
    """Runs in MongoDB in databroker's "normalized" layout, as an intake catalog.

    Registered for intake as ``bluesky-mongo-normalized-catalog``, with databroker's arguments::

        sources:
          csx:
            driver: bluesky-mongo-normalized-catalog
            args:
              metadatastore_db: mongodb://db.example:27017/csx-metadatastore
              asset_registry_db: mongodb://db.example:27017/csx-assets
              handler_registry: {AD_HDF5: area_detector_handlers.handlers.AreaDetectorHDF5Handler}

    Parameters
    ----------
    metadatastore_db : str or pymongo.database.Database, optional
        URI (with the database name) or database of ``run_start``, ``run_stop``,
        ``event_descriptor`` and ``event``.
    asset_registry_db : str or pymongo.database.Database, optional
        URI or database of ``resource`` and ``datum``; the metadatastore database by default.
    uri : str, optional
        The single-URI form: one database holding every collection (instead of
        ``metadatastore_db``).
    handler_registry : dict, optional
        Asset handlers by resource spec (classes, or ``"module.Class"`` strings the core loads
        when first used), added to the installed ones.
    root_map : dict, optional
        Relocation of asset roots: ``{old_root: new_root}``.
    server_selection_timeout : float
        Seconds before an unreachable server raises ``MongoConnectionError``.
    validate, chunk_rows, chunk_bytes, create_indexes, recent_first, read_ahead
        Passed to :class:`~intake_broker_mongo.MongoStore`.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``, ...).
    """

    reads_yaml_arguments = True

    def __init__(
        self,
        metadatastore_db: str | Database | None = None,
        asset_registry_db: str | Database | None = None,
        *,
        uri: str | None = None,
        handler_registry: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        server_selection_timeout: float = DEFAULT_TIMEOUT,
        validate: bool = True,
        chunk_rows: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        create_indexes: bool = True,
        recent_first: bool = True,
        read_ahead: int = DEFAULT_CHUNK_BYTES,
        **kwargs: Any,
    ):
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        metadatastore_db = yaml.value(metadatastore_db, "metadatastore_db")
        asset_registry_db = yaml.value(asset_registry_db, "asset_registry_db")
        uri = yaml.value(uri, "uri")
        root_map = yaml.path(root_map)
        if (uri is None) == (metadatastore_db is None):
            raise MongoConfigurationError(
                "give either metadatastore_db (and optionally asset_registry_db), as databroker "
                "took them, or uri= for one database holding every collection"
                + ("; not both" if uri is not None else "")
            )
        target = metadatastore_db if uri is None else uri
        assert target is not None  # checked above: exactly one of them is given
        store = MongoStore(
            target,
            asset_registry_db,
            validate=validate,
            chunk_rows=chunk_rows,
            chunk_bytes=chunk_bytes,
            server_selection_timeout=server_selection_timeout,
            create_indexes=create_indexes,
            recent_first=recent_first,
            read_ahead=read_ahead,
        )
        super().__init__(store, handler_registry=handler_registry, root_map=root_map, **kwargs)

    def stats(self) -> dict[str, Any]:
        """MongoDB's storage statistics of the metadatastore database (``dbStats``), as
        databroker's Mongo catalogs gave. Only a catalog over the store itself has them: a
        store behind an access guard does not pass them on (they count every user's runs)."""
        stats = getattr(self.store, "stats", None)
        if stats is None:
            raise NotSupported(
                "stats() needs the catalog's own MongoStore; this one is behind an access guard"
            )
        return stats()
