"""TIFF for image fields: one multi-page TIFF per image field per stream, or one file per frame.

An image field is a data key whose per-event shape has two or more dimensions (a frame, or a
stack of frames per event); the last two dimensions of a frame are a TIFF page. Files:

* ``<uid>/<stream>/<field>.tif``: every frame of the field, in event order (``tifffile.imread``
  gives an array of shape ``(events, *frame_shape)``, the same as ``run[stream].read()[field]``);
* with ``per_frame=True``, a folder ``<uid>/<stream>/<field>/`` holding ``<seq_num>.tif`` per
  event (six digits, zero-padded);
* ``<uid>/metadata.json``: the start and stop documents and the descriptors (as the tables do).

The scalar metadata of each file is JSON in its ``ImageDescription`` (``tifffile``'s shaped
description, so ``TiffFile(path).shaped_metadata[0]`` gives it back): the run uid, stream and
field, the field's data key (units, source, shape, dtype), the start document, and per frame its
``seq_num``, ``time`` and the values of the stream's scalar fields (a motor's position at each
frame). A stream of more than :data:`MAX_FRAMES_DESCRIBED` events keeps only the first three in the
description (the per-frame values are a table: export csv or parquet for them).

Data keys with a shape of one dimension (spectra) are not images: they are left out and listed
in the manifest's ``skipped``. A run with no image field in the chosen streams is an error that
names its fields and the formats that hold them; an image field of a stream without events is
listed in ``skipped`` (a TIFF without pages is not valid). Frames are written by ``tifffile``
from an iterator over the stream's blocks, so memory is bounded by a block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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

#: Streams with more events than this keep per-frame values out of the TIFF description.
MAX_FRAMES_DESCRIBED = 100_000
#: Compressions offered (tifffile's names); None writes the frames as they are.
COMPRESSIONS = (None, "zlib", "lzma", "packbits")


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError:
        raise ExportError(
            "the tiff format needs tifffile: pip install 'intake-broker[tiff]' (or [export])"
        ) from None
    return tifffile


def _plain(value: Any) -> Any:
    return json.loads(to_json(value))


class TIFFExporter(Exporter):
    """A multi-page TIFF per image field per stream (or a TIFF per frame, ``per_frame=True``),
    the scalar metadata as JSON in the description. Options: ``per_frame`` (bool),
    ``compression`` (None, ``"zlib"``, ``"lzma"``, ``"packbits"``)."""

    name = "tiff"
    defaults = {"per_frame": False, "compression": None}

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options["compression"] not in COMPRESSIONS:
            raise ExportError(
                f"compression={self.options['compression']!r}: the tiff format compresses "
                f"with one of {', '.join(repr(c) for c in COMPRESSIONS)}"
            )
        if not isinstance(self.options["per_frame"], bool):
            raise ExportError(
                f"per_frame={self.options['per_frame']!r}: true (a TIFF per frame) or false "
                "(a multi-page TIFF per field)"
            )

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        tifffile = _tifffile()
        record = self.new_record(run)
        plan: list[tuple[str, Any, list[str], list[str]]] = []
        seen: dict[str, list[str]] = {}
        for stream_name in select_streams(run, streams):
            stream = run[stream_name]
            keys = select_fields(stream, fields)
            dks = stream.layout.data_keys
            images = [k for k in keys if len(field_shape(dks[k])) >= 2]
            scalars = [k for k in keys if not field_shape(dks[k])]
            for key in keys:
                shape = list(field_shape(dks[key]))
                seen.setdefault(stream_name, []).append(
                    f"{key} ({'scalar' if not shape else f'shape {shape}'})"
                )
                if len(shape) == 1:
                    record.skipped.append(
                        {
                            "stream": stream_name,
                            "field": key,
                            "reason": f"shape {shape} is not an image (a TIFF page has two "
                            "dimensions); parquet, zarr and nexus hold it",
                        }
                    )
            if images:
                plan.append((stream_name, stream, images, scalars))
        if not plan:
            described = "; ".join(f"{s}: {', '.join(k) or 'no fields'}" for s, k in seen.items())
            raise ExportError(
                f"run {run.uid[:8]} has no image field (a data key with a shape of two or more "
                f"dimensions) for the tiff format; its fields: {described or 'none'}. Export "
                "it as csv, parquet, zarr or nexus, or choose streams/fields holding images"
            )
        for stream_name, stream, images, scalars in plan:
            table = self._scalars(stream, scalars)
            for key in images:
                self._field(tifffile, run, dest, record, stream_name, stream, key, table)
        rel = f"{safe_name(run.uid)}/metadata.json"
        record.files.append(dest.write_text(rel, to_json(run_metadata(run), indent=1)))
        return record

    def _scalars(self, stream: Any, scalars: list[str]) -> dict[str, list]:
        """``seq_num``, ``time`` and the scalar fields of every event, as JSON lists."""
        table: dict[str, list] = {"seq_num": [], "time": [], **{k: [] for k in scalars}}
        for block in blocks(stream, scalars, self.block_bytes):
            for key in table:
                table[key].extend(_plain(block[key].values.tolist()))
        return table

    def _description(
        self, run: Any, stream_name: str, stream: Any, key: str, table: dict, rows: slice
    ) -> dict:
        dk = {k: v for k, v in stream.layout.data_keys[key].items() if k != "configuration"}
        meta = {
            "run_uid": run.uid,
            "stream": stream_name,
            "field": key,
            "data_key": _plain(dk),
            "start": _plain(run.metadata["start"]),
        }
        count = len(table["seq_num"][rows])
        if count <= MAX_FRAMES_DESCRIBED:
            meta["frames"] = {name: values[rows] for name, values in table.items()}
        else:
            meta["frames"] = {name: values[:3] for name, values in table.items()}
            meta["frames_note"] = (
                f"{count} frames: the first 3 described; export csv or parquet for every row"
            )
        return meta

    def _field(
        self,
        tifffile: Any,
        run: Any,
        dest: Destination,
        record: RunExport,
        stream_name: str,
        stream: Any,
        key: str,
        table: dict,
    ) -> None:
        rel = f"{safe_name(run.uid)}/{safe_name(stream_name)}/{safe_name(key)}"
        frames = self._frames(stream, key)
        first = next(frames, None)
        if first is None:  # no events: no frame to write (a TIFF without pages is not valid)
            record.skipped.append(
                {"stream": stream_name, "field": key, "reason": "the stream has no events"}
            )
            return
        compression = self.options["compression"]
        if self.options["per_frame"]:
            with dest.writing(rel, directory=True) as (path, files):
                for i, frame in enumerate(_chain(first, frames)):
                    meta = self._description(run, stream_name, stream, key, table, slice(i, i + 1))
                    seq = table["seq_num"][i] if i < len(table["seq_num"]) else i + 1
                    tifffile.imwrite(
                        path / f"{int(seq):06d}.tif",
                        frame,
                        metadata=meta,
                        photometric="minisblack",
                        compression=compression,
                    )
            record.files.extend(files)
            return
        events = len(table["seq_num"])
        meta = self._description(run, stream_name, stream, key, table, slice(None))
        with dest.writing(f"{rel}.tif") as (path, files):
            tifffile.imwrite(
                path,
                _pages(_chain(first, frames), first.dtype),
                shape=(events, *first.shape),
                dtype=first.dtype,
                metadata=meta,
                photometric="minisblack",
                compression=compression,
            )
        record.files.extend(files)

    def _frames(self, stream: Any, key: str) -> Iterator[np.ndarray]:
        """Each event's frame (shape ``(..., y, x)``), block by block."""
        for block in blocks(stream, [key], self.block_bytes):
            values = np.asarray(block[key].values)
            if values.dtype.kind not in "biufc":
                raise ExportError(
                    f"field {key!r} holds {values.dtype} values, which a TIFF page cannot; "
                    "zarr or nexus hold them"
                )
            yield from values


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _pages(frames: Iterator[np.ndarray], dtype: np.dtype) -> Iterator[np.ndarray]:
    """The 2-D pages of each frame, in C order, in the dtype of the first frame."""
    for frame in frames:
        frame = np.ascontiguousarray(frame, dtype=dtype)
        yield from frame.reshape(-1, *frame.shape[-2:])
