"""intake-broker-simulation: simulation outputs (NetCDF, HDF5, zarr) as Bluesky runs.

>>> from intake_broker_simulation import SimulationCatalog
>>> cat = SimulationCatalog("sims/")                  # or "s3://bucket/sims/*.nc"
>>> cat.search('sample == "LaB6"')[-1].primary.to_dask()
"""

from __future__ import annotations

from .catalog import SimulationCatalog
from .export import write_run
from .outputs import OutputInfo, SimulationOutputWarning
from .runs import DEFAULT_MAPPING, MetadataMapping
from .store import SimulationStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAPPING",
    "MetadataMapping",
    "OutputInfo",
    "SimulationCatalog",
    "SimulationOutputWarning",
    "SimulationStore",
    "write_run",
]
