"""zarr v3: a group per run (``<uid>.zarr``), a group per stream, written by xarray block by
block (the first block creates the arrays, the others append along ``time``).

Each stream's group is what ``xarray.open_zarr(path, group=stream)`` opens: arrays with their
dimension names (``time``, ``<key>_dim_0``, ...), ``time`` and ``seq_num`` as coordinates,
units and sources as attributes. The run's group holds the start and stop documents and the
descriptors (as JSON text) in its attributes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from intake_broker.export.base import (
    Destination,
    Exporter,
    RunExport,
    blocks,
    run_metadata,
    safe_name,
    select_fields,
    select_streams,
    to_json,
)


def _plain(ds: Any) -> Any:
    """Object columns (strings, None) as fixed-width text, which zarr v3 stores."""
    for key in list(ds.data_vars):
        values = ds[key].values
        if values.dtype.kind == "O":
            ds[key] = ds[key].copy(
                data=np.asarray(["" if v is None else str(v) for v in values.reshape(-1)]).reshape(
                    values.shape
                )
            )
    return ds


class ZarrExporter(Exporter):
    """A zarr v3 group per run, a subgroup per stream (read with plain xarray)."""

    name = "zarr"

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        import zarr

        record = self.new_record(run)
        rel = f"{safe_name(run.uid)}.zarr"
        with dest.writing(rel, directory=True) as (path, files):
            root = zarr.open_group(str(path), mode="w", zarr_format=3)
            meta = run_metadata(run)
            root.attrs.update(
                {
                    "run_uid": run.uid,
                    "start": json.loads(to_json(meta["start"])),
                    "stop": json.loads(to_json(meta["stop"])),
                    "descriptors": to_json(meta["descriptors"]),
                }
            )
            for stream_name in select_streams(run, streams):
                stream = run[stream_name]
                keys = select_fields(stream, fields)
                group = safe_name(stream_name)
                first = True
                for block in blocks(stream, keys, self.block_bytes):
                    block = _plain(block)
                    block.attrs = {"stream_name": stream_name, "run_uid": run.uid}
                    if first:
                        block.to_zarr(
                            str(path), group=group, mode="w", zarr_format=3, consolidated=False
                        )
                        first = False
                    else:
                        block.to_zarr(
                            str(path),
                            group=group,
                            append_dim="time",
                            zarr_format=3,
                            consolidated=False,
                        )
                if first:  # no events: the empty arrays, so the stream is there
                    empty = _plain(stream(include=keys, seq_num=True).to_dask().load())
                    empty.to_zarr(
                        str(path), group=group, mode="w", zarr_format=3, consolidated=False
                    )
        record.files.extend(files)
        return record
