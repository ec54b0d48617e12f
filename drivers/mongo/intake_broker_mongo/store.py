"""``MongoStore``: databroker's normalized MongoDB layout as an intake-broker store.

Reads databases written by suitcase-mongo / databroker in place, unchanged, and writes the same
layout (see :mod:`intake_broker_mongo.layout`). Runs are found by translating queries to
MongoDB filters (:mod:`intake_broker_mongo.queries`); streams are read in seq_num chunks as
columns (:mod:`intake_broker_mongo.events`); a run's documents are replayed in written order
(:mod:`intake_broker_mongo.replay`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import event_model
import pymongo
import pymongo.errors
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database

from intake_broker.errors import DescriptorNotFound, ResourceNotFound, RunNotFound
from intake_broker.queries import And, In, Query, documents_needed
from intake_broker.store import (
    NEWEST_FIRST,
    Candidates,
    Chunk,
    DocumentStore,
    EventColumns,
    RunRecord,
    plan_count,
    plan_runs,
)

from . import layout
from .annotations import (
    ANNOTATION_HISTORY,
    ANNOTATIONS,
    AnnotationCollections,
    annotated_runs,
    needs_annotations,
)
from .connection import DEFAULT_TIMEOUT, Location, locate, make_client, translated_errors
from .events import DEFAULT_CHUNK_BYTES, chunk_plan, read_columns, row_bytes, rows_per_chunk
from .layout import (
    DATABASE_OF,
    DESCRIPTOR,
    EVENT,
    RESOURCE,
    RUN_START,
    RUN_STOP,
    STREAM_RESOURCE,
    SUMMARY,
    SUMMARY_VALUES,
)
from .queries import conjuncts
from .readahead import ReadAhead, sliced
from .replay import asset_documents, replay
from .search import RunFinder, strip_id
from .summaries import Summaries
from .writer import NormalizedWriter

if TYPE_CHECKING:
    from intake_broker.assets import RunAssets

#: MongoDB's codes for a write the user may not make (Unauthorized, and the like).
_NOT_ALLOWED = frozenset({13, 8000})
_INCOMPLETE_TTL = 1.0  # seconds a chunk plan of a run still acquiring is reused
_CACHE_SIZE = 512
#: The parts of a run record the server's collections answer queries on (``summary.*``
#: through the summary-values index; ``descriptors.*`` is evaluated).
_INDEXED = frozenset({"start", "stop", "summary", "annotations"})


class _LRU(OrderedDict):
    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _CACHE_SIZE:
            self.popitem(last=False)


class MongoStore(DocumentStore):
    """Runs in MongoDB, in databroker's "normalized" layout (suitcase-mongo).

    Parameters
    ----------
    metadatastore_db : str or pymongo.database.Database
        A MongoDB URI naming the database (``mongodb://host:27017/metadatastore``) holding
        ``run_start``, ``run_stop``, ``event_descriptor`` and ``event``, or that database.
    asset_registry_db : str or pymongo.database.Database, optional
        The same for ``resource`` and ``datum``; by default the metadatastore database.
    validate : bool
        Check inserted documents against event-model's schemas.
    chunk_rows : int, optional
        Events per dask chunk; by default as many as make about ``chunk_bytes`` of values.
    chunk_bytes : int
        Target size of a chunk's decoded values when ``chunk_rows`` is not given.
    server_selection_timeout : float
        Seconds to wait for an unreachable server before raising
        :class:`~intake_broker_mongo.MongoConnectionError` (unless the URI sets
        ``serverSelectionTimeoutMS`` itself).
    create_indexes : bool
        Create the layout's indexes (suitcase-mongo's and ours) before the first write.
    recent_first : bool
        Answer newest-first listings by looking at recent time windows first (a few cheap
        indexed queries instead of sorting every run on servers that cannot stop early).
    read_ahead : int
        Bytes of values up to which a finished run's descriptor is read whole on its first read
        and its later reads are answered from memory (0: never); see
        :mod:`intake_broker_mongo.readahead`.
    """

    writable: ClassVar[bool] = True

    def __init__(
        self,
        metadatastore_db: str | Database,
        asset_registry_db: str | Database | None = None,
        *,
        validate: bool = True,
        chunk_rows: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        server_selection_timeout: float = DEFAULT_TIMEOUT,
        create_indexes: bool = True,
        recent_first: bool = True,
        read_ahead: int = DEFAULT_CHUNK_BYTES,
    ):
        self._targets = (
            metadatastore_db,
            metadatastore_db if asset_registry_db is None else asset_registry_db,
        )
        self.validate = validate
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.timeout = float(server_selection_timeout)
        self.create_indexes_on_write = create_indexes
        self._recent_first = recent_first  # the finder holds it once made
        self.read_ahead = read_ahead
        self._locations = (
            locate(self._targets[0], "metadatastore"),
            locate(self._targets[1], "asset registry"),
        )
        self._setup()

    def _setup(self) -> None:
        clients: dict[str | None, pymongo.MongoClient] = {}  # (a URI's key is never None)
        databases = []
        for target, location in zip(self._targets, self._locations, strict=True):
            if isinstance(target, Database):
                databases.append(target)
                continue
            key = location.client_key or location.uri
            if key not in clients:
                clients[key] = make_client(location, self.timeout)
            databases.append(clients[key][location.database])
        self._clients = list(clients.values())
        # the clients this store made are closed with it, or when it is garbage-collected (a
        # copy unpickled on a dask worker is never closed by hand)
        self._close_clients = weakref.finalize(self, _close_all, self._clients)
        self._databases = {"mds": databases[0], "assets": databases[1]}
        # what the clients wait for a server: ours, or what a URI or a given client says
        self.timeout = max(db.client.options.server_selection_timeout for db in databases)
        self._lock = threading.Lock()
        self._unique_ids: bool | None = None  # learned before the first write
        self._descriptor_docs: _LRU = _LRU()
        self._plans: _LRU = _LRU()
        self._read_ahead = ReadAhead(self.read_ahead, 4 * self.read_ahead)
        self._finder = RunFinder(
            self._collection(RUN_START), self._collection(RUN_STOP), self._recent_first
        )
        self._writer = NormalizedWriter(
            self._collection, self._descriptor_or_none, self._ensure_indexes
        )
        self._summaries = Summaries(
            self._collection(SUMMARY), self._collection(SUMMARY_VALUES), self._collection(RUN_START)
        )
        self._annotations = AnnotationCollections(
            self._collection(ANNOTATIONS), self._collection(ANNOTATION_HISTORY)
        )

    def __reduce__(self):
        if any(isinstance(t, Database) for t in self._targets):
            raise TypeError(
                "a MongoStore made from pymongo Database objects cannot be pickled;"
                " make it from URIs to send it to other processes"
            )
        options = {
            "validate": self.validate,
            "chunk_rows": self.chunk_rows,
            "chunk_bytes": self.chunk_bytes,
            "server_selection_timeout": self.timeout,
            "create_indexes": self.create_indexes_on_write,
            "recent_first": self.recent_first,
            "read_ahead": self.read_ahead,
        }
        return (_rebuild, (self._targets, options))

    def __repr__(self) -> str:
        mds, assets = self._locations
        extra = "" if mds == assets else f", {assets.label!r}"
        return f"{type(self).__name__}({mds.label!r}{extra})"

    # -- connection -----------------------------------------------------------------------

    @property
    def locations(self) -> tuple[Location, Location]:
        """The metadatastore and asset-registry databases (``label``: the URI without its
        password)."""
        return self._locations

    def _collection(self, name: str) -> Collection:
        return self._databases[DATABASE_OF[name]][name]

    def _guard(self, collection: str = RUN_START) -> contextlib.AbstractContextManager:
        location = self._locations[0 if DATABASE_OF[collection] == "mds" else 1]
        return translated_errors(location, self.timeout)

    def ping(self) -> None:
        """Check that both databases answer; raises ``MongoConnectionError`` if not."""
        for collection in (RUN_START, RESOURCE):
            with self._guard(collection):
                self._collection(collection).database.command("ping")

    def stats(self) -> dict[str, Any]:
        """MongoDB's storage statistics (the ``dbStats`` command) of the metadatastore
        database: collection, object and byte counts, as databroker's ``stats()`` returned."""
        with self._guard(RUN_START):
            return dict(self._databases["mds"].command("dbstats"))

    def create_indexes(self) -> list[str]:
        """Create suitcase-mongo's indexes and ours; returns those the server refused."""
        with self._guard(RUN_START):
            return layout.create_indexes(self._databases["mds"], self._databases["assets"])

    def _ensure_indexes(self) -> bool:
        """Create the indexes before the first write; whether the unique ones exist."""
        if self._unique_ids is None:
            if self.create_indexes_on_write:
                self.create_indexes()
            self._unique_ids = layout.has_unique_ids(
                self._databases["mds"], self._databases["assets"]
            )
        return self._unique_ids

    def close(self) -> None:
        self._close_clients()

    # -- writing --------------------------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        with self._guard(layout.COLLECTION_OF.get(kind, RUN_START)):
            self._writer.put(kind, doc)
        run_uid = doc.get("run_start")
        if kind == "event_page":
            self._read_ahead.forget(doc["descriptor"])
            descriptor = self._descriptor_or_none(doc["descriptor"])
            run_uid = descriptor["run_start"] if descriptor else None
        if kind in ("event_page", "descriptor", "stop") and run_uid is not None:
            with self._lock:  # what was planned for this run may have changed
                self._plans.pop(run_uid, None)
        if kind == "start":  # its summary is computed when first asked for, not at its stop:
            with self._guard(SUMMARY):  # reading a large run back would stall the RunEngine
                self._summaries.started(doc["uid"])

    # -- data summaries -------------------------------------------------------------------

    def summary(self, run_uid: str) -> dict[str, dict[str, dict]]:
        """Computed from the run's events; kept at its first use once the run has stopped
        (searches then read it from the index)."""
        summary, finished, kept = self._current_summary(run_uid)
        if finished and not kept:
            with self._guard(SUMMARY):
                try:  # kept for the next search; a user allowed only to read just computes it
                    self._summaries.write({run_uid: summary})
                except pymongo.errors.OperationFailure as err:
                    if err.code not in _NOT_ALLOWED:
                        raise
        return summary

    def set_summary(self, run_uid: str, stream: str, field: str, stats: dict) -> None:
        summary, finished, _ = self._current_summary(run_uid)
        summary.setdefault(stream, {})[field] = dict(stats)
        with self._guard(SUMMARY):
            self._summaries.write({run_uid: summary}, ready=finished)

    def _current_summary(self, run_uid: str) -> tuple[dict[str, dict[str, dict]], bool, bool]:
        """``(summary, finished, kept)``: a finished run's kept summary, else one computed
        from the events with what ``set_summary`` kept for the run."""
        with self._guard(SUMMARY):
            ready, kept = self._summaries.stored([run_uid]).get(run_uid, (False, None))
        if ready:
            assert kept is not None  # a ready summary is always written with its summary
            return kept, True, True
        finished = self.run(run_uid).stop is not None  # RunNotFound for an unknown run
        summary = super().summary(run_uid)  # from the events
        for stream, fields in (kept or {}).items():  # (statistics of asset data)
            for field, stats in fields.items():
                summary.setdefault(stream, {}).setdefault(field, stats)
        return summary, finished, False

    def index_summaries(self, summaries: dict[str, dict]) -> None:
        """Keep the data summaries ``{stream: {field: {stat: number}}}`` of many finished runs,
        keyed by run uid, replacing any they had (what a stop document does for its run);
        e.g. to make runs written by other tools searchable by their data at once."""
        with self._guard(RUN_START):
            known: set[str] = set()
            uids = list(summaries)
            for i in range(0, len(uids), 500):
                known.update(
                    d["uid"]
                    for d in self._collection(RUN_START).find(
                        {"uid": {"$in": uids[i : i + 500]}}, {"uid": 1, "_id": 0}
                    )
                )
        missing = [uid for uid in summaries if uid not in known]
        if missing:
            raise RunNotFound(
                f"no run with uid {missing[0]!r} in {self._locations[0].label}; "
                "no summary was changed"
            )
        with self._guard(SUMMARY):
            self._summaries.write(dict(summaries))

    # -- the Annotations ability: two collections of ours (see .annotations) --------------

    def annotations(self, run_uid: str) -> list[dict]:
        """Every annotation of a run, oldest first."""
        self.run(run_uid)  # RunNotFound for a run this database does not hold
        with self._guard(ANNOTATIONS):
            return self._annotations.of_run(run_uid)

    def annotation_history(self, run_uid: str) -> list[dict]:
        """Every change of a run's annotations, oldest first."""
        self.run(run_uid)
        with self._guard(ANNOTATIONS):
            return self._annotations.history_of(run_uid)

    def change_annotation(self, run_uid: str, change: Any) -> dict:
        """Apply one checked change atomically (a version claimed in the history, then an
        update conditional on the version read); return the annotation after it."""
        self.run(run_uid)
        with self._guard(ANNOTATIONS):
            return self._annotations.change(run_uid, change)

    # -- which runs -----------------------------------------------------------------------

    @property
    def recent_first(self) -> bool:
        """Whether newest-first pages look at recent time windows first."""
        return self._finder.recent_first

    @recent_first.setter
    def recent_first(self, value: bool) -> None:
        self._finder.recent_first = bool(value)

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return plan_runs(self, query, sort, skip, limit)

    def count(self, query: Query | None = None) -> int:
        return plan_count(self, query)

    # -- the QueryIndex ability: what the planner asks the server -------------------------

    def index_documents(self) -> frozenset[str]:
        """Start and stop documents, and data summaries (narrowed by the summary index)."""
        return _INDEXED

    def index_runs(
        self,
        query: Query | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int | None,
    ) -> Candidates:
        """The server's answer for start and stop keys (:class:`RunFinder`); with
        ``summary.*`` keys, the runs the summary index allows, each to be evaluated with the
        summaries kept for them (fetched at once)."""
        plain, other = _split_summaries(query)
        if not other:
            with self._guard(RUN_START):
                return self._finder.candidates(query, sort, skip, limit)
        keep: set[str] | None = None
        if any("summary" in documents_needed(part) for part in other):
            with self._guard(SUMMARY):
                keep = self._summaries.candidates(query)
        with_annotations = needs_annotations(other)
        if with_annotations:
            with self._guard(ANNOTATIONS):
                annotated = annotated_runs(self._annotations, query)
            if annotated is not None:
                keep = annotated if keep is None else set(keep) & annotated
        if keep is not None:  # only the runs the summary and annotation indexes allow
            allowed = In("uid", tuple(sorted(keep)))
            plain = allowed if plain is None else And((plain, allowed))
        with self._guard(RUN_START):
            found = self._finder.candidates(plain, sort)
        records = [record for record, _ in found.records]
        return Candidates(
            [(record, False) for record in records],
            ordered=found.ordered,
            parts=_FetchedParts(self, [r.uid for r in records], with_annotations),
        )

    def index_count(self, query: Query | None) -> Candidates:
        """Counted by the server for start and stop keys; listed for ``summary.*`` keys."""
        if _split_summaries(query)[1]:
            return self.index_runs(query, sort=(), skip=0, limit=None)
        with self._guard(RUN_START):
            return self._finder.count(query)

    def run(self, uid: str) -> RunRecord:
        with self._guard(RUN_START):
            start = strip_id(self._collection(RUN_START).find_one({"uid": uid}))
            if start is None:
                raise RunNotFound(f"no run with uid {uid!r} in {self._locations[0].label}")
            stop = strip_id(self._collection(RUN_STOP).find_one({"run_start": uid}))
        return RunRecord(start, stop)

    # -- what is in a run -----------------------------------------------------------------

    def _cache_descriptor(self, descriptor: dict) -> None:
        with self._lock:
            self._descriptor_docs.remember(descriptor["uid"], descriptor)

    def _descriptor_or_none(self, uid: str) -> dict | None:
        with self._lock:
            if uid in self._descriptor_docs:
                return self._descriptor_docs[uid]
        with self._guard(DESCRIPTOR):
            doc = strip_id(self._collection(DESCRIPTOR).find_one({"uid": uid}))
        if doc is not None:
            self._cache_descriptor(doc)
        return doc

    def _descriptor(self, uid: str) -> dict:
        doc = self._descriptor_or_none(uid)
        if doc is None:
            raise KeyError(f"no descriptor with uid {uid!r} in {self._locations[0].label}")
        return doc

    def descriptor_run(self, descriptor_uid: str) -> str:
        with self._guard(DESCRIPTOR):
            doc = self._collection(DESCRIPTOR).find_one({"uid": descriptor_uid}, {"run_start": 1})
        if doc is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r}")
        return doc["run_start"]

    def resource_run(self, resource_uid: str) -> str:
        for name in (RESOURCE, STREAM_RESOURCE):
            with self._guard(name):
                doc = self._collection(name).find_one({"uid": resource_uid}, {"run_start": 1})
            if doc is not None and isinstance(doc.get("run_start"), str):
                return doc["run_start"]
        raise ResourceNotFound(f"no resource with uid {resource_uid!r} of a run")

    def descriptors(self, run_uid: str) -> list[dict]:
        with self._guard(DESCRIPTOR):
            cursor = self._collection(DESCRIPTOR).find(
                {"run_start": run_uid}, sort=[("time", 1), ("_id", 1)]
            )
            found = [strip_id(doc) for doc in cursor]
        for doc in found:
            self._cache_descriptor(doc)
        return found

    def _chunk_plan(self, run_uid: str) -> dict[str, list[Chunk]]:
        with self._lock:
            cached = self._plans.get(run_uid)
        if cached is not None and (cached[0] is None or cached[0] > time.monotonic()):
            return cached[1]
        descriptors = self.descriptors(run_uid)
        with self._guard(EVENT):
            stop = self._collection(RUN_STOP).find_one({"run_start": run_uid}, {"num_events": 1})
            rows = {
                d["uid"]: rows_per_chunk(d, self.chunk_rows, self.chunk_bytes) for d in descriptors
            }
            chunks = chunk_plan(descriptors, stop, self._collection(EVENT), rows)
        expires = None if stop is not None else time.monotonic() + _INCOMPLETE_TTL
        with self._lock:
            self._plans.remember(run_uid, (expires, chunks))
        return chunks

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        descriptor = self._descriptor(descriptor_uid)
        return list(self._chunk_plan(descriptor["run_start"]).get(descriptor_uid, []))

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        descriptor = self._descriptor(descriptor_uid)
        if not uids and self._read_ahead.limit:
            whole = self._read_ahead.get(descriptor_uid)
            if whole is None and self._small_and_finished(descriptor):
                with self._guard(EVENT):
                    whole, _ = read_columns(
                        self._collection(EVENT), descriptor, fields=None, seq_range=None, uids=False
                    )
                self._read_ahead.put(descriptor_uid, whole)
            if whole is not None:
                return sliced(whole, fields, seq_range)
        with self._guard(EVENT):
            columns, _ = read_columns(
                self._collection(EVENT),
                descriptor,
                fields=fields,
                seq_range=seq_range,
                uids=uids,
                whole=self._covers_all(descriptor, seq_range),
            )
        return columns

    def _small_and_finished(self, descriptor: dict) -> bool:
        """Whether a descriptor is worth reading whole: its run has ended and its values
        (estimated from its data keys and its planned rows) fit the read-ahead limit."""
        with self._lock:
            cached = self._plans.get(descriptor["run_start"])
        if cached is None or cached[0] is not None:  # no plan yet, or the run is acquiring
            return False
        rows = sum(c.rows for c in cached[1].get(descriptor["uid"], ()))
        return 0 < rows * row_bytes(descriptor) <= self._read_ahead.limit

    def _covers_all(self, descriptor: dict, seq_range: tuple[int, int] | None) -> bool:
        """Whether ``seq_range`` spans every chunk of the (cached) plan of ``descriptor``."""
        if seq_range is None:
            return False
        with self._lock:
            cached = self._plans.get(descriptor["run_start"])
        chunks = cached[1].get(descriptor["uid"]) if cached is not None else None
        if not chunks:
            return False
        return seq_range[0] <= chunks[0].seq_start and seq_range[1] >= chunks[-1].seq_stop

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        return replay(self, run_uid)

    # -- assets ---------------------------------------------------------------------------

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        with self._guard(RESOURCE):
            doc = self._collection(RESOURCE).find_one({"uid": resource_uid})
            if doc is None and ObjectId.is_valid(resource_uid):  # old resources lack a uid
                doc = self._collection(RESOURCE).find_one({"_id": ObjectId(resource_uid)})
                if doc is not None:
                    doc["uid"] = resource_uid
        if doc is None:
            raise KeyError(f"run {run_uid!r} has no resource {resource_uid!r}")
        return strip_id(doc)

    def run_assets(self, run_uid: str) -> RunAssets:
        """The asset documents of a run from the asset collections (no event is read)."""
        from intake_broker.assets import RunAssets

        resources, datums, stream_resources, stream_datums = asset_documents(
            self, run_uid, self.descriptors(run_uid)
        )
        found = RunAssets()
        found.resources = {r["uid"]: strip_id(r) for r in resources}
        found.datums = {d["datum_id"]: (d["resource"], d.get("datum_kwargs", {})) for d in datums}
        found.stream_resources = {r["uid"]: strip_id(r) for r in stream_resources}
        found.stream_datums = [strip_id(d) for d in stream_datums]
        return found

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        _, datums, _, _ = asset_documents(self, run_uid, self.descriptors(run_uid))
        datums.sort(key=lambda d: (d["resource"], str(d.get("_id"))))
        datums = [strip_id(d) for d in datums]
        start = 0
        for i in range(1, len(datums) + 1):
            if i == len(datums) or datums[i]["resource"] != datums[start]["resource"]:
                # our datums are plain dicts, event-model's are its Datum TypedDict; the result
                # (a DatumPage TypedDict) is the dict DocumentStore.datum_pages yields
                yield event_model.pack_datum_page(*datums[start:i])  # type: ignore[arg-type,misc]
                start = i


def _split_summaries(query: Query | None) -> tuple[Query | None, list[Query]]:
    """``(conjuncts on start and stop keys, as one query or None; the other conjuncts)``:
    what the run collections answer, and what needs the summaries."""
    plain: list[Query] = []
    other: list[Query] = []
    for part in conjuncts(query):
        (plain if documents_needed(part) <= {"start", "stop"} else other).append(part)
    if not other:
        return query, []
    return (None if not plain else plain[0] if len(plain) == 1 else And(tuple(plain))), other


class _FetchedParts:
    """The parts of many runs for the evaluator, their kept summaries (and annotations)
    fetched at once."""

    def __init__(self, store: MongoStore, uids: list[str], annotations: bool = False):
        self.store = store
        self.annotations: dict[str, list[dict]] | None = None
        if annotations:
            with store._guard(ANNOTATIONS):
                self.annotations = store._annotations.of_runs(uids)
        with store._guard(SUMMARY):
            self.kept = {
                uid: summary
                for uid, (ready, summary) in store._summaries.stored(uids).items()
                if ready
            }

    def record_parts(self, run_uid: str, parts) -> dict[str, Any]:
        parts = set(parts)
        out: dict[str, Any] = {}
        if "summary" in parts and run_uid in self.kept:
            out["summary"] = self.kept[run_uid]
            parts.discard("summary")
        if "annotations" in parts and self.annotations is not None:
            out["annotations"] = self.annotations.get(run_uid, [])
            parts.discard("annotations")
        if parts:
            out.update(self.store.record_parts(run_uid, parts))
        return out


def _close_all(clients: list[pymongo.MongoClient]) -> None:
    for client in clients:
        client.close()


def _rebuild(targets: tuple[str, str], options: dict[str, Any]) -> MongoStore:
    return MongoStore(*targets, **options)
