"""What a descriptor's data key means as an array: its numpy dtype, per-event shape, dimension
names, and whether its values live in external files. Pure functions of the data key, used by
streams, summaries, filling, the server and the stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_JSON_DTYPES = {
    "number": np.dtype("float64"),
    "integer": np.dtype("int64"),
    "boolean": np.dtype("bool"),
    "string": np.dtype("object"),
    "array": np.dtype("float64"),
}


def field_dtype(data_key: Mapping[str, Any]) -> np.dtype:
    """The numpy dtype of a data key: ``dtype_numpy`` if given, else from the JSON ``dtype``."""
    if data_key.get("dtype_numpy"):
        dtype = np.dtype(
            data_key["dtype_numpy"]
            if isinstance(data_key["dtype_numpy"], str)
            else [tuple(f) for f in data_key["dtype_numpy"]]
        )
        return np.dtype("object") if dtype.kind in "US" else dtype
    return _JSON_DTYPES.get(data_key.get("dtype", "number"), np.dtype("object"))


def field_shape(data_key: Mapping[str, Any]) -> tuple[int, ...]:
    """Per-event shape of a data key (``()`` for scalars)."""
    return tuple(int(n) for n in data_key.get("shape") or ())


def asset_kind(data_key: Mapping[str, Any]) -> str | None:
    """``"stream"`` for stream_resource data (ophyd-async), ``"datum"`` for resource/datum
    data, None for values kept in the events."""
    external = data_key.get("external")
    if not external:
        return None
    return "stream" if str(external).startswith("STREAM:") else "datum"


def field_dims(key: str, data_key: Mapping[str, Any]) -> tuple[str, ...]:
    """Dimension names: ``time`` then the descriptor's ``dims`` or ``<key>_dim_<i>``."""
    shape = field_shape(data_key)
    dims = data_key.get("dims")
    if not dims or len(dims) != len(shape):
        dims = [f"{key}_dim_{i}" for i in range(len(shape))]
    return ("time", *dims)


def field_attrs(data_key: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a field's variable gets from its data key."""
    keep = ("source", "units", "object_name", "precision", "external")
    return {k: data_key[k] for k in keep if k in data_key}
