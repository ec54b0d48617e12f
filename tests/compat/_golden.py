"""What the compat tests share: the golden runs and files, and how they are compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "golden"
ROOT = "/intake-broker-golden/assets"
ASSETS = str((GOLDEN / "assets").resolve())
TZ = "America/New_York"


def golden_runs() -> list[list[tuple[str, dict]]]:
    runs = []
    for path in sorted((GOLDEN / "runs").glob("*.jsonl")):
        with open(path) as f:
            runs.append([tuple(json.loads(line)) for line in f])
    return runs


def golden_table(entry: dict):
    """A table databroker wrote: the parquet file with its array columns put back."""
    import pandas as pd

    df = pd.read_parquet(GOLDEN / "tables" / entry["file"])
    stem = entry["file"][: -len(".parquet")]
    for column in entry.get("arrays", []):
        frames = np.load(GOLDEN / "tables" / f"{stem}.{column}.npy")
        values = np.empty(len(frames), dtype=object)
        values[:] = list(frames)
        df[column] = values
    return df[entry["columns"]] if "columns" in entry else df


def golden_documents(name: str) -> list:
    with open(GOLDEN / "documents" / name) as f:
        return [json.loads(line) for line in f]


def plain(pairs) -> list:
    """Documents as golden JSON holds them (arrays tagged), for comparing."""
    from make_golden import _Encoder  # the recorder's own encoding

    return [json.loads(json.dumps([n, d], cls=_Encoder)) for n, d in pairs]


def frames_of(value):
    """A filled value as an array; AD_HDF5 frames databroker read as (1, y, x) become (y, x)
    (documented difference: we give the shape the descriptor declares)."""
    if isinstance(value, dict) and "__ndarray__" in value:
        value = np.asarray(value["__ndarray__"], dtype=value["dtype"])
    value = np.asarray(value)
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    return value
