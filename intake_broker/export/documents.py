"""The documents formats: suitcase-jsonl and suitcase-msgpack, one file per run.

Both are written by the suitcase packages themselves (``suitcase.jsonl.Serializer``,
``suitcase.msgpack.Serializer``), given a manager that opens our temporary file, so the files
are what suitcase writes and what ``intake-broker ingest`` and the files driver read.
suitcase-msgpack 0.3 has no ``stream_resource`` / ``stream_datum`` methods and would drop those
documents silently (the assets of ophyd-async detectors): :class:`_MsgpackSerializer` adds them
with suitcase's own encoder. The whole run is written, exactly as stored (unfilled: assets stay
references), so ``streams`` / ``fields`` do not apply.

Which suitcase packages are used, and why not the others (checked against their last releases):

* used: **suitcase-jsonl** 0.2 and **suitcase-msgpack** 0.3 -- small, correct, the formats the
  files driver and ``ingest`` read; msgpack's two missing documents are added here.
* not used: **suitcase-csv** 0.3 (2021) is a one-shot ``export(gen, ...)`` function, not a
  serializer one can subscribe; it refuses unfilled events (every detector writing to files),
  writes one file per descriptor and has no rule for array fields (``tables.py`` does);
  **suitcase-tiff** 0.4 (2022) ignores everything that is not 2-D, writes no metadata (its own
  docstring says so) and calls ``TiffWriter.save``, which current tifffile no longer has
  (``tiff.py`` writes through ``tifffile.imwrite``, metadata in the description);
  **suitcase-nxsas** (NXsas for one beamline) and suitcase-hdf5 are not on PyPI, and NeXus here
  follows a configurable mapping (``nexus.py``); **suitcase-specfile** writes SPEC files (not a
  format asked for); **suitcase-json-metadata** writes the start and stop documents only (every
  table format here writes them, with the descriptors, as ``metadata.json``);
  **suitcase-mongo** is a store, not an export (the mongo driver and ``copy_runs`` do that).
* live export (``RE.subscribe``), which suitcase serializers offer, is
  :class:`~intake_broker.export.live.LiveExporter` for every format here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from intake_broker.errors import ExportError
from intake_broker.export.base import Destination, Exporter, RunExport, safe_name


class _OneFile:
    """The part of suitcase's manager interface its serializers use: ``open`` the file we
    chose, whatever the postfix (suitcase names it ``<uid>.<ext>``; so do we)."""

    def __init__(self, path: Path):
        self.path = path
        self.handles: list[IO] = []

    def open(self, label: str, postfix: str, mode: str, encoding=None, errors=None) -> IO:
        handle = open(self.path, mode.replace("x", "w"), encoding=encoding, errors=errors)
        self.handles.append(handle)
        return handle

    @property
    def artifacts(self) -> dict:
        return {"all": [self.path]}

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


def _msgpack_serializer(manager: _OneFile) -> Any:
    import suitcase.msgpack as sm

    class _MsgpackSerializer(sm.Serializer):
        """suitcase-msgpack with the two documents it lacks."""

        def _write(self, name: str, doc: dict) -> None:
            self._buffer.write(sm._encode((name, doc), **self._kwargs))

        def stream_resource(self, doc: dict) -> dict:
            self._write("stream_resource", doc)
            return doc

        def stream_datum(self, doc: dict) -> dict:
            self._write("stream_datum", doc)
            return doc

    return _MsgpackSerializer(manager)


class DocumentsExporter(Exporter):
    """Every document of each run, in one suitcase file per run (exact round trip)."""

    carries_documents = True
    suffix = ""

    def serializer(self, manager: _OneFile) -> Any:
        raise NotImplementedError

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        if streams is not None or fields is not None:
            raise ExportError(
                f"the {self.name} format writes every document of a run exactly as stored; "
                "streams= and fields= choose data for the table and array formats (csv, "
                "parquet, zarr, nexus, tiff)"
            )
        record = self.new_record(run)
        rel = f"{safe_name(run.uid)}{self.suffix}"
        with dest.writing(rel) as (path, files):
            manager = _OneFile(path)
            serializer = self.serializer(manager)
            try:
                for name, doc in run.documents():
                    serializer(name, doc)
            finally:
                serializer.close()
                manager.close()
        record.files.extend(files)
        return record


class JSONLExporter(DocumentsExporter):
    """``<uid>.jsonl``: ``[name, doc]`` per line (suitcase-jsonl)."""

    name = "jsonl"
    suffix = ".jsonl"

    def serializer(self, manager: _OneFile) -> Any:
        import suitcase.jsonl

        return suitcase.jsonl.Serializer(manager)


class MsgpackExporter(DocumentsExporter):
    """``<uid>.msgpack``: a stream of msgpack ``[name, doc]`` arrays (suitcase-msgpack)."""

    name = "msgpack"
    suffix = ".msgpack"

    def serializer(self, manager: _OneFile) -> Any:
        return _msgpack_serializer(manager)
