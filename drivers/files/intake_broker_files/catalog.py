"""Intake catalogs over folders and buckets of run files (databroker 1.2 argument names)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.views.catalog import BrokerCatalog

from .store import FilesStore


class _FilesCatalog(BrokerCatalog):
    _format: ClassVar[str]
    reads_yaml_arguments = True

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        handler_registry: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        directory: str | os.PathLike | None = None,
        storage_options: dict[str, Any] | None = None,
        validate: bool = True,
        refresh_interval: float = 1.0,
        create: bool = False,
        **kwargs: Any,
    ):
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        paths = yaml.path(paths, "paths")
        directory = yaml.path(directory, "directory")
        storage_options = yaml.value(storage_options, "storage_options")
        root_map = yaml.path(root_map)
        listed = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        extension = f".{self._format}"
        yaml.check_files(
            "paths",
            [os.fspath(p) for p in listed],
            storage_options,
            create=create,
            extension=extension,
        )
        if directory is not None:
            yaml.check_files(
                "directory",
                [os.fspath(directory)],
                storage_options,
                create=create,
                extension=extension,
            )
        store = FilesStore(
            paths,
            format=self._format,
            directory=directory,
            storage_options=storage_options,
            validate=validate,
            refresh_interval=refresh_interval,
        )
        super().__init__(store, handler_registry=handler_registry, root_map=root_map, **kwargs)


class JSONLCatalog(_FilesCatalog):
    """The runs of suitcase-jsonl files (``<uid>.jsonl``) as an intake catalog.

    Registered for intake as ``bluesky-jsonl-catalog``.

    Parameters
    ----------
    paths : str or list of str
        Files, globs or directories, local or as fsspec URLs (``s3://bucket/runs/*.jsonl``).
    handler_registry : dict, optional
        Asset handlers by resource spec, added to the installed ones.
    root_map : dict, optional
        Relocation of asset roots: ``{old_root: new_root}``.
    directory : str, optional
        Where :meth:`insert` writes new runs (default: the directory of the first path).
    storage_options : dict, optional
        fsspec options, e.g. s3fs credentials and ``endpoint_url``.
    validate : bool
        Check inserted documents against event-model's schemas.
    refresh_interval : float
        Seconds between re-globs of ``paths`` when runs are listed.
    create : bool
        From a YAML entry: whether folders that do not exist yet are made by the first write
        (opening creates nothing) rather than an error naming the entry and the file.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``, ...).
    """

    _format = "jsonl"


class MsgpackCatalog(_FilesCatalog):
    """The runs of suitcase-msgpack files (``<uid>.msgpack``) as an intake catalog.

    Registered for intake as ``bluesky-msgpack-catalog``; arguments as for
    :class:`JSONLCatalog`.
    """

    _format = "msgpack"
