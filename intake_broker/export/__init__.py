"""Exporting runs: ``run.export(format, dest)``, ``cat.search(...).export(format, dest)`` and
``intake-broker export RUN|QUERY --format F --to DIR_OR_URL``.

Every format writes into a destination folder (a local path or an fsspec URL, ``s3://`` too)
and a ``manifest.json`` listing per run the files written, their sizes and SHA-256 sums, and
what a format could not hold. Files are written under a temporary name and renamed when whole;
the manifest is rewritten after every run, so an export of many runs that stopped (an error, a
full disk, Ctrl-C) continues where it stopped when run again: runs whose files are all there
with their recorded sizes are skipped. Streams are read block by block (about
:data:`~intake_broker.export.base.BLOCK_BYTES` at a time), so memory is bounded by a block and a
stored chunk, not by the run.

Formats (:data:`FORMATS`): ``jsonl`` and ``msgpack`` (every document, by suitcase; ingest reads
them back exactly), ``csv`` / ``tsv`` and ``parquet`` (a table per stream), ``zarr`` (v3, a
group per run), ``nexus`` (NeXus/HDF5 with standard names and the documents embedded),
``tiff`` (image fields as multi-page TIFF, metadata as JSON in the description) and ``package``
(a publication package: documents, data in a chosen format, RO-Crate and DataCite metadata).

Live: :class:`intake_broker.export.live.LiveExporter` is subscribed to a RunEngine and writes
each run in any of these formats when its stop document arrives.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Any

from intake_broker.errors import BrokerError, ExportError
from intake_broker.export.base import (
    MANIFEST,
    Destination,
    Exporter,
    FileRecord,
    Manifest,
    RunExport,
)

__all__ = [
    "FORMATS",
    "MANIFEST",
    "Destination",
    "Exporter",
    "FileRecord",
    "Manifest",
    "RunExport",
    "export_runs",
    "exporter",
]

#: Format name -> ``module:class`` of its exporter (modules load when the format is used).
FORMATS: dict[str, str] = {
    "jsonl": "intake_broker.export.documents:JSONLExporter",
    "msgpack": "intake_broker.export.documents:MsgpackExporter",
    "csv": "intake_broker.export.tables:CSVExporter",
    "tsv": "intake_broker.export.tables:TSVExporter",
    "parquet": "intake_broker.export.tables:ParquetExporter",
    "zarr": "intake_broker.export.zarrfmt:ZarrExporter",
    "nexus": "intake_broker.export.nexus:NexusExporter",
    "tiff": "intake_broker.export.tiff:TIFFExporter",
    "package": "intake_broker.export.package:PackageExporter",
}


def exporter(format: str, **options: Any) -> Exporter:
    """The exporter of ``format`` with its ``options`` (checked)."""
    target = FORMATS.get(format)
    if target is None:
        raise ExportError(
            f"unknown export format {format!r}; the formats: {', '.join(sorted(FORMATS))}"
        )
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(**options)


def _progress(total: int | None, enabled: bool | None):
    from intake_broker.progress import progress_bar

    return progress_bar(total=total, unit="run", desc="exporting", enabled=enabled, leave=True)


def _complete(dest: Destination, run: RunExport) -> bool:
    """Whether every file of a run in an earlier manifest is there with its size."""
    return bool(run.files) and all(dest.size(f.path) == f.bytes for f in run.files)


def export_runs(
    runs: Iterable[Any],
    format: str,
    dest: Any,
    *,
    streams: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    storage_options: dict | None = None,
    progress: bool | None = None,
    total: int | None = None,
    resume: bool = True,
    **options: Any,
) -> Manifest:
    """Write ``runs`` to ``dest`` in ``format``; returns the manifest (also written there).

    Parameters
    ----------
    runs : iterable of Run
        The runs (``cat.values()``, ``[run]``, a search's runs).
    format : str
        A name of :data:`FORMATS`.
    dest : str or path
        A folder or an fsspec URL (``s3://bucket/prefix``); created if missing.
    streams : list of str, optional
        Only these streams (table and array formats; runs lacking all of them are an error).
    fields : list of str, optional
        Only these data keys (of every stream that has them).
    storage_options : dict, optional
        fsspec options of ``dest`` (an S3 ``endpoint_url``, credentials, ...).
    progress : bool, optional
        A progress bar on stderr (default: when stderr is a terminal).
    total : int, optional
        How many runs there are, for the progress bar.
    resume : bool
        Skip the runs an earlier export of the same format and options to ``dest`` wrote whole
        (default). False writes them again.
    **options
        Options of the format (``arrays="json"`` for csv, ``mapping=...`` for nexus,
        ``per_frame=True`` for tiff, ``title=..., licence=..., data="parquet"`` for package,
        ...).

    Raises
    ------
    ExportError
        The destination is unwritable or full, holds an export of another format or other
        options, or an option is unknown. Runs written before the error stay in the manifest.
    """
    writer = exporter(format, **options)
    target = Destination(dest, storage_options)
    manifest = Manifest(format=format, options=_jsonable(writer.options))
    previous = target.read_text(MANIFEST)
    if previous is not None:
        old = Manifest.from_json(previous, target.path(MANIFEST))
        if old.format != format or old.options != manifest.options:
            raise ExportError(
                f"{target.url!r} holds an export in {old.format!r} with options {old.options}; "
                f"this one is {format!r} with {manifest.options}: export to another folder "
                "(or remove that one)"
            )
        manifest.created, manifest.runs, manifest.extra = old.created, old.runs, old.extra
    with _progress(total, progress) as bar:
        for run in runs:
            done = manifest.runs.get(run.uid)
            if resume and done is not None and _complete(target, done):
                bar.update(1)
                bar.set_postfix(skipped=run.uid[:8], refresh=False)
                continue
            try:
                record = writer.write_run(run, target, streams=streams, fields=fields)
            except BrokerError:
                raise
            except OSError as err:
                raise ExportError(f"exporting run {run.uid}: {err}") from err
            manifest.runs[run.uid] = record
            target.write_text(MANIFEST, manifest.to_json())
            bar.update(1)
    if previous is None and not manifest.runs:
        target.write_text(MANIFEST, manifest.to_json())
    writer.finish(target, manifest)
    return manifest


def _jsonable(value: Any) -> Any:
    import json

    from intake_broker.export.base import to_json

    return json.loads(to_json(value, default=str))
