"""databroker's *embedded* MongoDB layout (suitcase-mongo's ``mongo_embedded``), read-only.

One database, three collections:

``header``
    one document per run, keyed by ``run_id``: ``start`` and ``stop`` (each a one-element list),
    ``descriptors`` and ``resources`` (lists of the documents), ``count_<uid>`` (events or
    datums written) and ``event_count`` / ``datum_count``;
``event``
    event pages of up to a few MB: ``descriptor``, ``first_index``/``last_index`` (positions
    of the page's events in the stream) and the page's ``uid``, ``time``, ``seq_num``,
    ``data``, ``timestamps``, ``filled`` columns;
``datum``
    datum pages the same way, by ``resource``.

:class:`EmbeddedMongoStore` lists and searches runs from the headers' start and stop documents
(queries are evaluated by the core's generic evaluator over the headers, as the layout keeps
nothing else to index) and reads a run by loading its header and pages once into an in-memory
store (the last few runs are kept), through which every read of it is answered. The layout is
the one databroker 1.2.5 reads in ``databroker/_drivers/mongo_embedded.py``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pymongo
from pymongo.database import Database

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.errors import DescriptorNotFound, RunNotFound
from intake_broker.queries import Query
from intake_broker.store import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RunRecord
from intake_broker.store.memory import MemoryStore
from intake_broker.store.planning import select_runs
from intake_broker.views.catalog import BrokerCatalog

from .connection import DEFAULT_TIMEOUT, locate, make_client, translated_errors

#: The fields of a stored datum page that are the page's own (the rest is layout).
DATUM_PAGE_KEYS = ("resource", "datum_id", "datum_kwargs")
#: How many finished runs' descriptors and summaries (for queries on them) are kept.
KEPT_VALUES = 10_000


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _replay(
    header: Mapping[str, Any],
    datum_pages: Mapping[str, list[dict]],
    event_pages: Mapping[str, list[dict]],
) -> Iterator[tuple[str, dict]]:
    """A run's documents in the order it was written, as far as the layout keeps it: the
    start; each resource followed by its datums (the layout keeps no time for them); the
    descriptors and events merged by time (a descriptor before its first event; ties kept in
    stream order); the stop. Events come as pages of consecutive rows of one descriptor."""
    yield "start", _first(header["start"])
    for resource in header.get("resources") or []:
        yield "resource", resource
        for page in datum_pages.get(resource["uid"], []):
            yield "datum_page", {k: page[k] for k in DATUM_PAGE_KEYS if k in page}
    descriptors = list(header.get("descriptors") or [])
    pages = [_joined(event_pages.get(d["uid"], []), d["uid"]) for d in descriptors]
    times = np.concatenate(
        [np.array([float(d.get("time", 0.0)) for d in descriptors])]
        # events keep their stream order: a time earlier than the one before it sorts with it
        + [np.maximum.accumulate(np.asarray(p["time"], dtype=np.float64)) for p in pages]
    )
    owner = np.concatenate(
        [np.arange(len(descriptors))] + [np.full(len(p["time"]), i) for i, p in enumerate(pages)]
    )
    row = np.concatenate(
        [np.full(len(descriptors), -1)] + [np.arange(len(p["time"])) for p in pages]
    )
    is_event = row >= 0
    order = np.lexsort((row, owner, is_event, times))
    # groups of consecutive items: one descriptor, or events of one descriptor
    item_owner, item_event = owner[order], is_event[order]
    cuts = np.flatnonzero(
        (item_owner[1:] != item_owner[:-1]) | (item_event[1:] != item_event[:-1]) | ~item_event[1:]
    )
    bounds = [0, *(cuts + 1).tolist(), len(order)]
    emitted: set[int] = set()
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if lo == hi:
            continue
        i = int(item_owner[lo])
        if not item_event[lo]:
            if i not in emitted:
                emitted.add(i)
                yield "descriptor", descriptors[i]
            continue
        if i not in emitted:  # an event timed before its descriptor
            emitted.add(i)
            yield "descriptor", descriptors[i]
        yield "event_page", _rows(pages[i], row[order[lo:hi]])
    for i, descriptor in enumerate(descriptors):  # descriptors without events
        if i not in emitted:
            yield "descriptor", descriptor
    stop = _first(header.get("stop"))
    if stop is not None:
        yield "stop", stop


def _joined(pages: list[dict], descriptor_uid: str) -> dict:
    """A descriptor's stored pages as one page of columns (lists), in stream order."""
    joined: dict[str, Any] = {"descriptor": descriptor_uid, "uid": [], "time": [], "seq_num": []}
    for column in ("data", "timestamps", "filled"):
        joined[column] = {}
    for page in pages:
        for key in ("uid", "time", "seq_num"):
            joined[key].extend(page[key])
        for column in ("data", "timestamps", "filled"):
            for field, values in (page.get(column) or {}).items():
                joined[column].setdefault(field, []).extend(values)
    rows = len(joined["seq_num"])
    # 'filled' is optional per event: keep only fields every event states
    joined["filled"] = {f: v for f, v in joined["filled"].items() if len(v) == rows}
    return joined


def _rows(page: dict, rows: np.ndarray) -> dict:
    take = rows.tolist()
    out: dict[str, Any] = {"descriptor": page["descriptor"]}
    for key in ("uid", "time", "seq_num"):
        out[key] = [page[key][r] for r in take]
    for column in ("data", "timestamps", "filled"):
        out[column] = {f: [v[r] for r in take] for f, v in page[column].items()}
    return out


class EmbeddedMongoStore(DocumentStore):
    """Runs in databroker's embedded MongoDB layout (see the module), read-only.

    Parameters
    ----------
    datastore_db : str or pymongo.database.Database
        URI with the database name (``mongodb://host/db``), or the database.
    server_selection_timeout : float
        Seconds before an unreachable server raises ``MongoConnectionError``.
    cached_runs : int
        How many runs' documents are kept in memory once read.
    """

    writable: ClassVar[bool] = False

    def __init__(
        self,
        datastore_db: str | Database,
        *,
        server_selection_timeout: float = DEFAULT_TIMEOUT,
        cached_runs: int = 4,
    ):
        self.validate = False
        self._target = datastore_db
        self._location = locate(datastore_db, "datastore")
        self.timeout = float(server_selection_timeout)
        self.cached_runs = max(1, int(cached_runs))
        self._client: pymongo.MongoClient | None = None
        if isinstance(datastore_db, Database):
            self._db = datastore_db
        else:
            assert self._location.database is not None
            self._client = make_client(self._location, self.timeout)
            self._db = self._client[self._location.database]
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, MemoryStore] = OrderedDict()
        self._kept_values: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def __reduce__(self):
        if isinstance(self._target, Database):
            raise TypeError(
                "an EmbeddedMongoStore made from a pymongo Database cannot be pickled; make it "
                "from a URI to send it to other processes"
            )
        options = {"server_selection_timeout": self.timeout, "cached_runs": self.cached_runs}
        return (_rebuild, (self._target, options))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._location.label!r})"

    def _guard(self) -> Any:
        return translated_errors(self._location, self.timeout)

    def stats(self) -> dict[str, Any]:
        """MongoDB's storage statistics (``dbStats``) of the database."""
        with self._guard():
            return dict(self._db.command("dbstats"))

    # -- runs ---------------------------------------------------------------------------------

    @staticmethod
    def _record(header: Mapping[str, Any]) -> RunRecord:
        return RunRecord(start=_first(header["start"]), stop=_first(header.get("stop")))

    def _records(self) -> list[RunRecord]:
        with self._guard():
            headers = self._db.header.find({"start": {"$exists": True}}, {"start": 1, "stop": 1})
            return [self._record(h) for h in headers if _first(h.get("start"))]

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return select_runs(self._records(), query, sort, skip, limit, store=self)

    def count(self, query: Query | None = None) -> int:
        if query is None:
            with self._guard():
                return self._db.header.count_documents({"start": {"$exists": True}})
        return len(self.runs(query))

    def run(self, uid: str) -> RunRecord:
        with self._guard():
            header = self._db.header.find_one({"start.uid": uid}, {"start": 1, "stop": 1})
        if header is None:
            raise RunNotFound(f"no run with uid {uid!r} in {self._location.label}")
        return self._record(header)

    # -- one run, read once -----------------------------------------------------------------

    def _run_store(self, run_uid: str) -> MemoryStore:
        with self._lock:
            found = self._loaded.get(run_uid)
            if found is not None:
                self._loaded.move_to_end(run_uid)
                return found
        with self._guard():
            header = self._db.header.find_one({"start.uid": run_uid}, {"_id": 0})
            if header is None:
                raise RunNotFound(f"no run with uid {run_uid!r} in {self._location.label}")
            resources = header.get("resources") or []
            datum_pages: dict[str, list[dict]] = {}
            if resources:
                found_pages = self._db.datum.find(
                    {"resource": {"$in": [r["uid"] for r in resources]}},
                    sort=[("resource", 1), ("first_index", 1)],
                )
                for page in found_pages:
                    datum_pages.setdefault(page["resource"], []).append(page)
            descriptors = header.get("descriptors") or []
            event_pages = {
                d["uid"]: list(
                    self._db.event.find({"descriptor": d["uid"]}, sort=[("first_index", 1)])
                )
                for d in descriptors
            }
        store = MemoryStore(validate=False)
        for name, doc in _replay(header, datum_pages, event_pages):
            store.insert(name, doc)
        with self._lock:
            self._loaded[run_uid] = store
            while len(self._loaded) > self.cached_runs:
                self._loaded.popitem(last=False)
        return store

    def _descriptor_run(self, descriptor_uid: str) -> str:
        with self._lock:
            for uid, store in self._loaded.items():
                if any(d["uid"] == descriptor_uid for d in store.descriptors(uid)):
                    return uid
        with self._guard():
            header = self._db.header.find_one({"descriptors.uid": descriptor_uid}, {"start": 1})
        if header is None:
            raise DescriptorNotFound(f"no descriptor {descriptor_uid!r} in {self._location.label}")
        return _first(header["start"])["uid"]

    def _descriptor_store(self, descriptor_uid: str) -> MemoryStore:
        return self._run_store(self._descriptor_run(descriptor_uid))

    def descriptors(self, run_uid: str) -> list[dict]:
        with self._lock:
            loaded = self._loaded.get(run_uid)
        if loaded is not None:
            return loaded.descriptors(run_uid)
        return self._kept(("descriptors", run_uid), lambda: self._header_descriptors(run_uid))

    def _header_descriptors(self, run_uid: str) -> list[dict]:
        with self._guard():  # the header alone: no events read
            header = self._db.header.find_one({"start.uid": run_uid}, {"descriptors": 1})
        if header is None:
            raise RunNotFound(f"no run with uid {run_uid!r} in {self._location.label}")
        return list(header.get("descriptors") or [])

    def summary(self, run_uid: str) -> dict[str, dict[str, dict[str, Any]]]:
        """As every store's, computed once per finished run (queries on summaries ask it of
        every run; the layout keeps none)."""
        return self._kept(
            ("summary", run_uid), lambda: super(EmbeddedMongoStore, self).summary(run_uid)
        )

    def _kept(self, key: tuple[str, str], compute: Any) -> Any:
        """``compute()``, kept for a finished run (whose documents no longer change)."""
        with self._lock:
            if key in self._kept_values:
                self._kept_values.move_to_end(key)
                return self._kept_values[key]
        value = compute()
        if self.run(key[1]).stop is not None:
            with self._lock:
                self._kept_values[key] = value
                while len(self._kept_values) > KEPT_VALUES:
                    self._kept_values.popitem(last=False)
        return value

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        return self._descriptor_store(descriptor_uid).event_chunks(descriptor_uid)

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        return self._descriptor_store(descriptor_uid).read_events(
            descriptor_uid, fields=fields, seq_range=seq_range, uids=uids
        )

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        return self._run_store(run_uid).documents(run_uid)

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        return self._run_store(run_uid).resource(run_uid, resource_uid)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _rebuild(target: str, options: dict[str, Any]) -> EmbeddedMongoStore:
    return EmbeddedMongoStore(target, **options)


class MongoEmbeddedCatalog(BrokerCatalog):
    """Runs in databroker's embedded MongoDB layout, as an intake catalog (read-only).

    Registered for intake as ``bluesky-mongo-embedded-catalog``, with databroker's arguments::

        sources:
          old:
            driver: bluesky-mongo-embedded-catalog
            args:
              datastore_db: mongodb://db.example:27017/embedded

    Parameters
    ----------
    datastore_db : str or pymongo.database.Database
        URI (with the database name) or database holding ``header``, ``event``, ``datum``.
    handler_registry, root_map, transforms
        As for every catalog (:class:`~intake_broker.views.catalog.BrokerCatalog`).
    server_selection_timeout : float
        Seconds before an unreachable server raises ``MongoConnectionError``.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog`.
    """

    reads_yaml_arguments = True

    def __init__(
        self,
        datastore_db: str | Database,
        *,
        handler_registry: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        server_selection_timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ):
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        datastore_db = yaml.value(datastore_db, "datastore_db")
        store = EmbeddedMongoStore(datastore_db, server_selection_timeout=server_selection_timeout)
        super().__init__(
            store, handler_registry=handler_registry, root_map=yaml.path(root_map), **kwargs
        )

    def stats(self) -> dict[str, Any]:
        """MongoDB's storage statistics (``dbStats``) of the database, as databroker gave."""
        stats = getattr(self.store, "stats", None)
        if stats is None:
            from intake_broker.errors import NotSupported

            raise NotSupported(
                "stats() needs the catalog's own store; this one is behind an access guard"
            )
        return stats()
