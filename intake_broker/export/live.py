"""Live export: ``RE.subscribe(LiveExporter("csv", "out/"))`` writes each run as it completes.

A :class:`LiveExporter` is an event-model ``DocumentRouter``: a callable taking ``(name, doc)``.
It keeps the documents of each open run in a private in-memory catalog (routed by ``run_start``,
descriptor and resource uids, so nested or interleaved runs stay apart) and, when the run's
``stop`` document arrives, exports that run with the same exporter as ``run.export`` -- any
format of :data:`~intake_broker.export.FORMATS` (jsonl, msgpack, csv, tsv, parquet, zarr, nexus,
tiff, package) -- into the one destination, adding it to the destination's ``manifest.json``.
The file of a live export is therefore the file a later ``run.export`` of the same run writes.

Memory: the documents of an open run (frames written by detectors to files stay there, as
references, until the export reads them at the stop). A run that never stops is never written;
:meth:`LiveExporter.pending` lists such runs.

Detector files still open at the stop: bluesky emits a run's ``stop`` before the detectors are
unstaged, and some detectors (ophyd-async's HDF5 writers, area detectors) close their files only
then, so a format that reads frames (tiff, csv with arrays, parquet, zarr, nexus) may find them
unreadable at the stop. Such a run is not an error: it is kept and written when the next run
starts, or by :meth:`LiveExporter.flush` (call it after ``RE(...)`` returns, when the detectors
are unstaged). Any other failure at a stop (a full disk) raises to the RunEngine as a suitcase
serializer would, and keeps the run for :meth:`LiveExporter.flush`.

The exporter reads nothing but the documents it is given and the asset files their resources
name (the RunEngine's own detectors, in this process), and writes only to its destination.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import event_model

from intake_broker.assets.reader import AssetNotFound, AssetReadError
from intake_broker.export.base import Destination, Manifest

logger = logging.getLogger(__name__)


class LiveExporter(event_model.DocumentRouter):
    """Export runs as a RunEngine finishes them: ``RE.subscribe(LiveExporter(format, dest))``.

    Parameters
    ----------
    format : str
        A name of :data:`~intake_broker.export.FORMATS`.
    dest : str or path
        A folder or an fsspec URL; checked (created, writable) when the exporter is made.
    streams, fields : list of str, optional
        As for :func:`~intake_broker.export.export_runs`.
    storage_options : dict, optional
        fsspec options of ``dest``.
    **options
        The format's options (checked when the exporter is made).

    Attributes
    ----------
    manifest : Manifest or None
        The destination's manifest after the last run written.
    """

    def __init__(
        self,
        format: str,
        dest: Any,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        storage_options: dict | None = None,
        **options: Any,
    ):
        super().__init__()
        from intake_broker.export import exporter

        exporter(format, **options)  # unknown formats and bad options fail here, not at a stop
        Destination(dest, storage_options)  # so does an unwritable destination
        self.format, self.dest = format, dest
        self.streams = list(streams) if streams is not None else None
        self.fields = list(fields) if fields is not None else None
        self.storage_options = storage_options
        self.options = options
        self.manifest: Manifest | None = None
        self._runs: dict[str, Any] = {}  # run uid -> the catalog holding its documents
        self._owner: dict[str, str] = {}  # descriptor / resource uid -> run uid
        self._failed: dict[str, Any] = {}  # run uid -> its catalog, stopped, not yet written
        self._deferred: set[str] = set()  # of those, the runs whose files were still open

    # -- routing ----------------------------------------------------------------------------------

    def _put(self, run_uid: str | None, name: str, doc: dict) -> None:
        if run_uid is None and len(self._runs) == 1:
            run_uid = next(iter(self._runs))  # an old resource without run_start
        catalog = self._runs.get(run_uid) if run_uid is not None else None
        if catalog is None:
            logger.warning(
                "live export: a %s of a run whose start this exporter did not see is ignored "
                "(subscribe the exporter before the run starts)",
                name,
            )
            return
        catalog.insert(name, doc)

    def start(self, doc: Any) -> Any:
        from intake_broker.store.memory import MemoryStore
        from intake_broker.views.catalog import BrokerCatalog

        for uid in list(self._deferred):  # the runs whose files were still open at their stop
            self._write(uid)
        self._runs[doc["uid"]] = BrokerCatalog(MemoryStore())
        self._put(doc["uid"], "start", doc)
        return doc

    def descriptor(self, doc: Any) -> Any:
        self._owner[doc["uid"]] = doc["run_start"]
        self._put(doc["run_start"], "descriptor", doc)
        return doc

    def resource(self, doc: Any) -> Any:
        run = doc.get("run_start") or (next(iter(self._runs)) if len(self._runs) == 1 else None)
        if run is not None:
            self._owner[doc["uid"]] = run
        self._put(run, "resource", doc)
        return doc

    def stream_resource(self, doc: Any) -> Any:
        run = doc.get("run_start") or (next(iter(self._runs)) if len(self._runs) == 1 else None)
        if run is not None:
            self._owner[doc["uid"]] = run
        self._put(run, "stream_resource", doc)
        return doc

    def event(self, doc: Any) -> Any:
        self._put(self._owner.get(doc["descriptor"]), "event", doc)
        return doc

    def event_page(self, doc: Any) -> Any:
        self._put(self._owner.get(doc["descriptor"]), "event_page", doc)
        return doc

    def datum(self, doc: Any) -> Any:
        self._put(self._owner.get(doc["resource"]), "datum", doc)
        return doc

    def datum_page(self, doc: Any) -> Any:
        self._put(self._owner.get(doc["resource"]), "datum_page", doc)
        return doc

    def stream_datum(self, doc: Any) -> Any:
        self._put(self._owner.get(doc["descriptor"]), "stream_datum", doc)
        return doc

    def stop(self, doc: Any) -> Any:
        uid = doc["run_start"]
        self._put(uid, "stop", doc)
        catalog = self._runs.pop(uid, None)
        self._owner = {k: v for k, v in self._owner.items() if v != uid}
        if catalog is not None:
            self._failed[uid] = catalog
            try:
                self._write(uid)
            except (AssetNotFound, AssetReadError) as err:
                self._deferred.add(uid)
                logger.info(
                    "live export: run %s waits for its detector files (%s); written when the "
                    "next run starts or by flush()",
                    uid[:8],
                    err,
                )
        return doc

    # -- writing ----------------------------------------------------------------------------------

    def _write(self, uid: str) -> None:
        from intake_broker.export import export_runs

        catalog = self._failed[uid]
        self.manifest = export_runs(
            [catalog[uid]],
            self.format,
            self.dest,
            streams=self.streams,
            fields=self.fields,
            storage_options=self.storage_options,
            progress=False,
            total=1,
            **self.options,
        )
        del self._failed[uid]
        self._deferred.discard(uid)
        catalog.store.close()

    def pending(self) -> list[str]:
        """Uids of runs started and not yet written (open, waiting for their detector files,
        or failed at their stop)."""
        return [*self._runs, *self._failed]

    def flush(self) -> Manifest | None:
        """Write the runs that stopped and are not written yet (their detector files were
        still open at the stop, or the export failed); the manifest after. Errors raise."""
        for uid in list(self._failed):
            self._write(uid)
        return self.manifest

    #: The same as :meth:`flush` (after a failure, e.g. a full disk made room).
    retry = flush
