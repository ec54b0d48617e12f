"""``NativeCatalog``: the native store as an intake catalog (``bluesky-native-catalog``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from intake_broker.views.catalog import BrokerCatalog

from .store import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_ROWS, DEFAULT_FLUSH_INTERVAL, NativeStore


class NativeCatalog(BrokerCatalog):
    """The runs of a native store (SQL run index + zarr columns) as an intake catalog.

    Registered for intake as ``bluesky-native-catalog``; writable with ``cat.insert(name,
    doc)`` (``RE.subscribe(cat.insert)``).

    Parameters
    ----------
    index : str or NativeStore
        The run index: ``sqlite:///path/index.sqlite`` or ``postgresql://user@host/db`` (or
        a store already open, e.g. ``NativeStore.in_folder(folder)``).
    data : str, optional
        Where the zarr columns live: a folder or an fsspec URL (``s3://bucket/runs``); by
        default the one the index recorded, else a folder beside a SQLite index.
    storage_options : dict, optional
        fsspec options for ``data`` (s3fs credentials, ``client_kwargs.endpoint_url``).
    handler_registry, root_map : dict, optional
        Asset handlers and root relocations, as for every broker catalog.
    chunk_rows, chunk_bytes, flush_interval, validate
        See :class:`~intake_broker_native.NativeStore`.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``, ...).
    """

    def __init__(
        self,
        index: str | NativeStore,
        data: str | os.PathLike | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        handler_registry: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
        validate: bool = True,
        **kwargs: Any,
    ):
        if isinstance(index, NativeStore):
            store = index
        else:
            store = NativeStore(
                index,
                data,
                storage_options=storage_options,
                chunk_rows=chunk_rows,
                chunk_bytes=chunk_bytes,
                flush_interval=flush_interval,
                validate=validate,
            )
        super().__init__(store, handler_registry=handler_registry, root_map=root_map, **kwargs)
