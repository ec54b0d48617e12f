"""Two small derived computations over the recorded runs (:mod:`.recorded`), for the tests of
pipelines and the CLI, importable by dask workers: :data:`reduce_det` (a run's ``det`` scaled
and normalised by its maximum) and :data:`fit_peaks` (the peak of a reduced curve), and
:data:`reduce_and_fit`, the two as a :class:`~intake_broker.provenance.Pipeline`.

``reduce_det`` fails on a run without a ``det`` field in ``primary`` (the recorded
``grid_scan`` reads ``det4``): the failing input of the tests is a real one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from intake_broker.provenance.pipeline import Pipeline, derived


@derived(name="reduce_det", version="1", stream="primary", fields=["det"])
def reduce_det(ds: Any, *, scale: float = 1.0) -> dict[str, Any]:
    """``det`` times ``scale``, and divided by its largest value (``norm``)."""
    det = np.asarray(ds["det"].values, dtype=float) * scale
    return {"det": det, "norm": det / det.max()}


@derived(name="fit_peaks", version="1", stream="primary")
def fit_peaks(ds: Any) -> dict[str, Any]:
    """The peak of a reduced curve: its index, height and second-moment width."""
    norm = np.asarray(ds["norm"].values, dtype=float)
    index = np.arange(len(norm), dtype=float)
    weights = norm / norm.sum()
    center = float((index * weights).sum())
    return {
        "peak_index": int(norm.argmax()),
        "height": float(ds["det"].values.max()),
        "center": center,
        "width": float(np.sqrt((weights * (index - center) ** 2).sum())),
    }


#: Reduce, then fit.
reduce_and_fit = Pipeline(reduce_det, fit_peaks)
