"""Provenance and pipelines (issue #21): derived results stored as ordinary runs whose start
document records their inputs, code, parameters and environment (:mod:`.record`,
:mod:`.writer`), their lineage as the reader may see it (:mod:`.graph`), functions of runs
run over a search (:mod:`.pipeline`), and runs shipped to dask workers by reference
(:mod:`.shipping`).

The public names load lazily: ``from intake_broker.provenance import derived, Pipeline``.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "derived": "pipeline",
    "Derived": "pipeline",
    "Pipeline": "pipeline",
    "PipelineReport": "pipeline",
    "Failure": "pipeline",
    "lineage": "graph",
    "Lineage": "graph",
    "LineageNode": "graph",
    "ProvenanceError": "record",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'intake_broker.provenance' has no attribute {name!r}")
    return getattr(importlib.import_module(f"intake_broker.provenance.{module}"), name)
