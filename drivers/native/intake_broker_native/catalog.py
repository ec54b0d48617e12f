"""``NativeCatalog``: the native store as an intake catalog (``bluesky-native-catalog``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.store.contract import DocumentStore
from intake_broker.store.pending import PendingStore
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
    create : bool
        From a YAML entry: whether a SQLite index that does not exist yet is made by the first
        write (opening creates nothing) rather than an error naming the entry and the file.
        A catalog built in Python makes its index when opened, as ``NativeStore`` does.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``, ...).
    """

    reads_yaml_arguments = True

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
        create: bool = False,
        **kwargs: Any,
    ):
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        store: DocumentStore
        if isinstance(index, NativeStore):
            store = index
        else:
            index = str(yaml.path(index, "index"))
            data = yaml.path(data, "data")
            options = yaml.value(storage_options, "storage_options")

            open_store = functools.partial(
                NativeStore,
                index,
                data,
                storage_options=options,
                chunk_rows=chunk_rows,
                chunk_bytes=chunk_bytes,
                flush_interval=flush_interval,
                validate=validate,
            )
            path = _sqlite_file(index)
            if yaml.from_yaml and path is not None and not _exists(path):
                from .recovery import refuse_lost_index

                refuse_lost_index(index, data, dict(options or {}))  # runs without their index
                if not create:
                    raise yaml.not_found("index", path, "the SQLite run index does not exist")
                store = PendingStore(open_store, functools.partial(_exists, path), path)
            else:
                store = open_store()
        super().__init__(
            store, handler_registry=handler_registry, root_map=yaml.path(root_map), **kwargs
        )


def _sqlite_file(index: str) -> str | None:
    """The file of a SQLite index URL (None for another database or SQLite in memory)."""
    import sqlalchemy as sa

    from .schema import sqlite_path

    try:
        url = sa.make_url(index)
    except Exception:
        return None
    return sqlite_path(url) if url.get_backend_name() == "sqlite" else None


def _exists(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0
