"""Tables per stream: CSV / TSV (pandas) and Parquet (pyarrow), written block by block.

Files: ``<uid>/<stream>.csv`` (or ``.tsv``, ``.parquet``) and ``<uid>/metadata.json`` (the start
and stop documents and the descriptors: units, sources, shapes). Columns: ``seq_num``, ``time``,
then the data keys.

The rule for arrays in CSV/TSV (a cell holds one value): a data key with a shape is left out
and listed in the manifest's ``skipped`` with the reason, or, with ``arrays="json"``, written
as a JSON list per cell (``json.loads`` gives it back; ``np.asarray(...)`` the array). Parquet
holds arrays: a key of shape ``(n, m, ...)`` is a fixed-size list of its ``n*m*...`` values in
C order, its shape in the field's metadata (``shape``), so ``column.to_numpy()`` reshaped gives
the frames back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from intake_broker.errors import ExportError
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
from intake_broker.views.datakeys import field_shape


def _write_metadata(run: Any, dest: Destination, record: RunExport) -> None:
    rel = f"{safe_name(run.uid)}/metadata.json"
    record.files.append(dest.write_text(rel, to_json(run_metadata(run), indent=1)))


class CSVExporter(Exporter):
    """One CSV file per stream; arrays skipped (listed in the manifest) or as JSON lists."""

    name = "csv"
    separator = ","
    suffix = ".csv"
    defaults = {"arrays": "skip"}

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options["arrays"] not in ("skip", "json"):
            raise ExportError(
                f"arrays={self.options['arrays']!r}: the {self.name} format writes a data key "
                "with a shape as a JSON list per cell (arrays='json') or leaves it out "
                "(arrays='skip')"
            )

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        record = self.new_record(run)
        for stream_name in select_streams(run, streams):
            stream = run[stream_name]
            keys = select_fields(stream, fields)
            scalar = [k for k in keys if not field_shape(stream.layout.data_keys[k])]
            arrays = [k for k in keys if k not in scalar]
            if self.options["arrays"] == "skip":
                for key in arrays:
                    shape = list(field_shape(stream.layout.data_keys[key]))
                    record.skipped.append(
                        {
                            "stream": stream_name,
                            "field": key,
                            "reason": f"shape {shape} does not fit a {self.name} cell (the "
                            "rule: arrays='skip' leaves it out, arrays='json' writes a JSON "
                            "list per cell); parquet, zarr, nexus and tiff hold it",
                        }
                    )
                arrays = []
            rel = f"{safe_name(run.uid)}/{safe_name(stream_name)}{self.suffix}"
            with dest.writing(rel) as (path, files):
                with open(path, "w", newline="") as out:
                    first = True
                    for block in blocks(stream, scalar + arrays, self.block_bytes):
                        frame = self._frame(block, scalar, arrays)
                        frame.to_csv(out, sep=self.separator, index=False, header=first)
                        first = False
                    if first:  # no events: a header alone
                        out.write(self.separator.join(["seq_num", "time", *scalar, *arrays]))
                        out.write("\n")
            record.files.extend(files)
        _write_metadata(run, dest, record)
        return record

    @staticmethod
    def _frame(block: Any, scalar: list[str], arrays: list[str]) -> Any:
        import pandas as pd

        columns: dict[str, Any] = {
            "seq_num": block["seq_num"].values,
            "time": block["time"].values,
        }
        for key in scalar:
            columns[key] = block[key].values
        for key in arrays:
            columns[key] = [json.dumps(np.asarray(v).tolist()) for v in block[key].values]
        return pd.DataFrame(columns)


class TSVExporter(CSVExporter):
    """CSV with tabs."""

    name = "tsv"
    separator = "\t"
    suffix = ".tsv"


class ParquetExporter(Exporter):
    """One Parquet file per stream (through Arrow), one row group per block."""

    name = "parquet"
    defaults = {"compression": "snappy"}

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportError(
                "the parquet format needs pyarrow: pip install 'intake-broker[export]'"
            ) from None
        record = self.new_record(run)
        for stream_name in select_streams(run, streams):
            stream = run[stream_name]
            keys = select_fields(stream, fields)
            rel = f"{safe_name(run.uid)}/{safe_name(stream_name)}.parquet"
            with dest.writing(rel) as (path, files):
                writer = None
                try:
                    for block in blocks(stream, keys, self.block_bytes):
                        table = self._table(stream, block, keys, run.uid, stream_name)
                        if writer is None:
                            writer = pq.ParquetWriter(
                                path, table.schema, compression=self.options["compression"]
                            )
                        writer.write_table(table)
                    if writer is None:  # no events
                        empty = stream(include=keys, seq_num=True).to_dask()
                        table = self._table(stream, empty, keys, run.uid, stream_name)
                        pq.write_table(table, path, compression=self.options["compression"])
                finally:
                    if writer is not None:
                        writer.close()
            record.files.extend(files)
        _write_metadata(run, dest, record)
        return record

    @staticmethod
    def _table(stream: Any, block: Any, keys: list[str], uid: str, name: str) -> Any:
        import pyarrow as pa

        arrays = [pa.array(block["seq_num"].values), pa.array(block["time"].values)]
        schema_fields = [pa.field("seq_num", pa.int64()), pa.field("time", pa.float64())]
        for key in keys:
            dk = stream.layout.data_keys[key]
            values = np.asarray(block[key].values)
            meta = {
                "data_key": to_json({k: v for k, v in dk.items() if k != "configuration"}),
            }
            shape = tuple(values.shape[1:])
            if shape:
                flat = pa.array(np.ascontiguousarray(values).reshape(-1))
                array = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shape)))
                meta["shape"] = json.dumps(list(shape))
            else:
                array = pa.array(values if values.dtype.kind != "O" else values.tolist())
            arrays.append(array)
            schema_fields.append(pa.field(key, array.type, metadata=meta))
        schema = pa.schema(
            schema_fields,
            metadata={"intake_broker": json.dumps({"run_uid": uid, "stream": name})},
        )
        return pa.Table.from_arrays(arrays, schema=schema)
