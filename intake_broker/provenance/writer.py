"""Writing a derived result as an ordinary run: start (with its provenance), one ``primary``
descriptor, its events as one page, and a stop -- through the destination's ``insert``, so
validation, access checks and indexing are those of any run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from intake_broker.provenance.record import (
    DERIVED_FROM_KEY,
    NAME_KEY,
    PROVENANCE_KEY,
    ProvenanceError,
)

#: The most variables one derived result may have.
MAX_VARIABLES = 1_000
#: The plan name derived runs carry.
PLAN_NAME = "derived"


def as_columns(data: Any) -> tuple[dict[str, np.ndarray], int | None]:
    """A result as named arrays and the number of rows (events) they share, or None when they
    are one event (scalars, or arrays whose first dimensions differ).

    ``data`` is an ``xarray.Dataset`` (its data variables and coordinates) or a mapping of
    names to array-likes."""
    arrays: dict[str, np.ndarray] = {}
    dims: dict[str, str | None] = {}
    if hasattr(data, "data_vars") and hasattr(data, "coords"):
        for name, var in [*data.coords.items(), *data.data_vars.items()]:
            arrays[str(name)] = np.asarray(var.values)
            dims[str(name)] = var.dims[0] if var.dims else None
    elif isinstance(data, Mapping):
        for name, value in data.items():
            if not isinstance(name, str):
                raise ProvenanceError(f"a derived result's names are strings, got {name!r}")
            arrays[name] = np.asarray(value)
            dims[name] = "dim_0" if arrays[name].ndim else None
    else:
        raise ProvenanceError(
            f"a derived function returns an xarray.Dataset or a dict of arrays, not "
            f"{type(data).__name__}"
        )
    if not arrays:
        raise ProvenanceError("the derived function returned no data (an empty result)")
    if len(arrays) > MAX_VARIABLES:
        raise ProvenanceError(
            f"a derived result has at most {MAX_VARIABLES} variables, not {len(arrays)}"
        )
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biufU" and not (arr.dtype.kind == "O" and arr.size == 0):
            raise ProvenanceError(
                f"variable {name!r} of the result has dtype {arr.dtype}; derived runs store "
                "numbers, booleans and strings"
            )
    first = {dims[n] for n in arrays}
    lengths = {arr.shape[0] if arr.ndim else None for arr in arrays.values()}
    if len(first) == 1 and None not in first and len(lengths) == 1:
        return arrays, int(next(iter(lengths)))  # type: ignore[arg-type]
    return arrays, None


def _data_key(arr: np.ndarray) -> dict[str, Any]:
    kind = arr.dtype.kind
    if arr.ndim:
        dtype = "array"
    elif kind == "b":
        dtype = "boolean"
    elif kind in "iu":
        dtype = "integer"
    elif kind == "U":
        dtype = "string"
    else:
        dtype = "number"
    return {
        "dtype": dtype,
        "dtype_numpy": arr.dtype.str,
        "shape": list(arr.shape),
        "source": "derived",
    }


def derived_documents(
    data: Any,
    provenance: dict[str, Any],
    *,
    name: str,
    metadata: Mapping[str, Any] | None = None,
    exit_status: str = "success",
    reason: str = "",
    uid: str | None = None,
) -> list[tuple[str, dict]]:
    """The documents of one derived run holding ``data`` (None for a failed computation: a
    start and a stop with ``exit_status`` and ``reason``)."""
    import event_model

    if exit_status not in ("success", "fail", "abort"):
        raise ProvenanceError(f"exit_status is 'success', 'fail' or 'abort', not {exit_status!r}")
    status: Literal["success", "fail", "abort"] = exit_status  # type: ignore[assignment]
    finished = provenance.get("times", {}).get("finished") or time.time()
    md = dict(metadata or {})
    md.update(
        {
            "plan_name": PLAN_NAME,
            NAME_KEY: name,
            DERIVED_FROM_KEY: [i["uid"] for i in provenance["inputs"]],
            PROVENANCE_KEY: provenance,
        }
    )
    bundle = event_model.compose_run(uid=uid, time=finished, metadata=md)
    docs: list[tuple[str, dict]] = [("start", dict(bundle.start_doc))]
    if data is not None:
        arrays, rows = as_columns(data)
        if rows is None:  # one event holding every array whole
            keys = {n: _data_key(a) for n, a in arrays.items()}
            values = {n: [a.tolist()] for n, a in arrays.items()}
            rows = 1
        else:
            keys = {
                n: _data_key(a[0]) if len(a) else _data_key(a[:0].reshape(a.shape[1:]))
                for n, a in arrays.items()
            }
            values = {n: a.tolist() for n, a in arrays.items()}
        desc = bundle.compose_descriptor(name="primary", data_keys=keys, time=finished)
        docs.append(("descriptor", dict(desc.descriptor_doc)))
        if rows:
            docs.append(
                (
                    "event_page",
                    dict(
                        desc.compose_event_page(
                            data=values,
                            timestamps={n: [finished] * rows for n in arrays},
                            seq_num=list(range(1, rows + 1)),
                            time=[finished] * rows,
                        )
                    ),
                )
            )
    docs.append(
        ("stop", dict(bundle.compose_stop(exit_status=status, reason=reason, time=finished)))
    )
    return docs


def write_documents(dest: Any, docs: list[tuple[str, dict]]) -> str:
    """Insert ``docs`` into ``dest`` (a store or a catalog) in order, flush a buffered store,
    and return the run's uid."""
    from intake_broker.store.abilities import flush

    for kind, doc in docs:
        dest.insert(kind, doc)
    flush(getattr(dest, "store", dest))
    return docs[0][1]["uid"]
