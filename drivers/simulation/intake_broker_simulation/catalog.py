"""The intake catalog of simulation outputs (driver ``bluesky-simulation-catalog``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.views.catalog import BrokerCatalog

from .runs import DEFAULT_JSON_ATTRIBUTES
from .store import SimulationStore


class SimulationCatalog(BrokerCatalog):
    """Simulation outputs (NetCDF, HDF5, zarr; local or on fsspec URLs such as ``s3://``) as
    a catalog of Bluesky runs, searched with the same queries as measured runs.

    Registered for intake as ``bluesky-simulation-catalog``::

        sources:
          md-runs:
            driver: bluesky-simulation-catalog
            args:
              paths: [sims/]                      # relative to the YAML file's folder
              mapping: {sample: material, plan_name: code}

    Parameters
    ----------
    paths : str or list of str
        Folders, files, globs or fsspec URLs of outputs.
    storage_options : dict, optional
        fsspec options (credentials, ``client_kwargs: {endpoint_url: ...}``).
    mapping : dict, optional
        ``{start key: attribute or [attributes]}`` laid over the default mapping.
    json_attributes : list of str
        Attributes holding a JSON object merged into the start document.
    required : list of str
        Start keys every listed output must have (others are left out with a warning).
    finished_attribute : str, optional
        An attribute whose absence means the simulation is still running (no stop document).
    primary_dimension : str
        The root group's dimension whose variables form the ``primary`` stream.
    refresh_interval : float
        Seconds between listings of ``paths``.
    cache : str, optional
        A local JSON file keeping scanned metadata across processes.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``).
    """

    reads_yaml_arguments = True

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        storage_options: Mapping[str, Any] | None = None,
        mapping: Mapping[str, str | Sequence[str] | None] | None = None,
        json_attributes: Sequence[str] = DEFAULT_JSON_ATTRIBUTES,
        required: Sequence[str] = (),
        finished_attribute: str | None = None,
        primary_dimension: str = "time",
        refresh_interval: float = 5.0,
        cache: str | os.PathLike | None = None,
        **kwargs: Any,
    ):
        # relative paths and ${VARIABLES} of a YAML entry, the same under plain intake
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        paths = yaml.path(paths, "paths")
        cache = yaml.path(cache, "cache")
        storage_options = yaml.value(storage_options, "storage_options")
        store = SimulationStore(
            paths,
            storage_options=storage_options,
            mapping=mapping,
            json_attributes=json_attributes,
            required=required,
            finished_attribute=finished_attribute,
            primary_dimension=primary_dimension,
            refresh_interval=refresh_interval,
            cache=cache,
        )
        super().__init__(store, **kwargs)
