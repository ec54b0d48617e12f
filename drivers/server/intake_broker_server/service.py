"""``Service``: what the HTTP layer asks of a catalog, in one place.

It wraps a :class:`~intake_broker.store.DocumentStore` with the catalog's filter (its
``query``) and its asset options, and applies the service's limits. With authentication, each
request is served by :meth:`Service.guarded`: the same service over
``GuardedStore(store, policy, principal)``, where the core applies the access policy.
It keeps no state that matters for correctness: every answer comes from the store, so any
number of workers or hosts serve the same store. The only thing kept between requests is a
small cache of asset readers (open handlers), which is rebuilt when it misses.

A served store reads external assets only under its asset roots (the ``asset_roots`` given,
those of the catalog, and the targets of its ``root_map``): none by default. A resource or
stream_resource naming anything else is refused when it is posted and again when it is read,
so the server never opens a file or fetches a URL that a client chose.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from intake_broker.access import AccessPolicy, GuardedStore, Principal
from intake_broker.assets import AssetReader, AssetReadError, check_asset_document
from intake_broker.assets.roots import AssetRoots
from intake_broker.errors import BrokerError, ResourceNotFound, RunNotFound, StreamNotFound
from intake_broker.queries import Eq, Query
from intake_broker.store import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RunRecord
from intake_broker.store.abilities import Annotations, DescriptorIndex, flush, require
from intake_broker.store.annotations import _labels, check_change, finish_change
from intake_broker.views.datakeys import field_dtype, field_shape
from intake_broker.views.stream import StreamLayout
from intake_broker_remote.errors import DescriptorNotFound, InvalidRequest, OversizedRequest


@dataclass(frozen=True)
class Limits:
    """How much one request may ask for; more is refused with a 4xx, never served slowly."""

    #: Runs, descriptors or chunks in one page.
    page: int = 1000
    #: Bytes of array data in one response (event columns, asset frames, a zarr chunk).
    response_bytes: int = 256 << 20
    #: Bytes of one request body (a document).
    body_bytes: int = 64 << 20
    #: Asset readers (open files) kept per process.
    readers: int = 32
    #: Guarded views (one per principal, with what it has seen) kept per process.
    views: int = 256
    #: Seconds a request may take to its first byte; past it, its work is stopped (where the
    #: store checks: the generic evaluator, SQLite, PostgreSQL) and it is answered with a 503
    #: ``DeadlineExceeded``. None: no deadline.
    deadline: float | None = 30.0
    #: Flush a buffering store (:class:`~intake_broker.store.abilities.Buffered`: files,
    #: native) after each write, so that every worker sees an acknowledged document at once:
    #: one run's documents may reach several workers. ``serve`` sets it with several workers.
    shared_writes: bool = False


def _and(a: Query | None, b: Query | None) -> Query | None:
    if a is None:
        return b
    return a if b is None else a & b


class Service:
    """A store as the service shows it.

    Parameters
    ----------
    store : DocumentStore
        Where the documents are.
    query : Query, optional
        Only runs matching this are served (a catalog's search; an access policy's filter).
    assets : dict, optional
        ``handler_registry``, ``root_map`` and ``storage_options`` for reading external assets
        on the server side (what the catalog was opened with).
    limits : Limits, optional
        Page and response sizes.
    asset_roots : AssetRoots, str or list of str, optional
        Folders and fsspec URL prefixes assets may be read from, besides those of ``assets``
        and the targets of its ``root_map``. A service is always confined: without roots it
        reads no external asset.
    """

    def __init__(
        self,
        store: DocumentStore,
        *,
        query: Query | None = None,
        assets: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        asset_roots: Any = None,
    ):
        self.store = store
        self.query = query
        self.assets = dict(assets or {})
        roots = AssetRoots.of(asset_roots).merged(AssetRoots.of(self.assets.get("asset_roots")))
        #: Where this service reads assets from (always confined).
        self.asset_roots = AssetRoots(roots.paths, roots.urls).with_root_map(
            self.assets.get("root_map")
        )
        self.assets["asset_roots"] = self.asset_roots
        self.limits = limits or Limits()
        self._readers: OrderedDict[Hashable, AssetReader] = OrderedDict()
        self._lock = threading.Lock()
        self._views: OrderedDict[Hashable, Service] = OrderedDict()
        #: Keeps the readers of views apart in the shared reader cache (None: this service).
        self._owner: Hashable = None

    @classmethod
    def from_catalog(cls, catalog: Any, **kwargs: Any) -> Service:
        """The service of a :class:`~intake_broker.views.catalog.BrokerCatalog` (its store, its
        filter and its asset options)."""
        store = getattr(catalog, "store", None)
        if not isinstance(store, DocumentStore):
            raise BrokerError(
                f"{type(catalog).__name__} is not a catalog of Bluesky runs "
                "(it has no DocumentStore); serve a bluesky-*-catalog entry"
            )
        assets = getattr(catalog, "asset_options", None) or getattr(catalog, "_assets", {})
        return cls(store, query=catalog.query, assets=assets, **kwargs)

    def guarded(self, policy: AccessPolicy, principal: Principal) -> Service:
        """This service as ``principal`` sees it under ``policy``: the same limits, assets and
        reader cache over ``GuardedStore(store, policy, principal)``, so that the core checks
        every read. Views are kept (least recently used first out) because a guarded store
        remembers the descriptors it has shown, which its event reads are checked against."""
        key = (id(policy), principal)  # the policy lives as long as the app; any may be used
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
        view = copy.copy(self)
        view.store = GuardedStore(self.store, policy, principal, asset_roots=self.asset_roots)
        view._owner = key
        view._views = OrderedDict()
        with self._lock:
            view = self._views.setdefault(key, view)
            while len(self._views) > self.limits.views:
                self._views.popitem(last=False)
        return view

    # -- writing ----------------------------------------------------------------------------

    def insert(self, name: str, doc: Any) -> None:
        """Store one posted document; a resource or stream_resource must name an asset under
        the asset roots."""
        check_asset_document(name, doc, self.asset_roots, self.store)
        self.store.insert(name, doc)
        if self.limits.shared_writes and name not in ("start", "stop", "descriptor"):
            flush(self.store)  # (start, stop and descriptors are committed as inserted)

    # -- runs -------------------------------------------------------------------------------

    def check_page(self, limit: int | None, what: str = "runs") -> int:
        """``limit`` checked against the page limit (None: the page limit)."""
        if limit is None:
            return self.limits.page
        if limit > self.limits.page:
            raise OversizedRequest(
                f"limit={limit} asks for more {what} than one page holds "
                f"(at most {self.limits.page}); page with skip and limit"
            )
        return limit

    def narrowed(self, query: Query | None) -> Query | None:
        """``query`` within what this service shows (its catalog's filter)."""
        return _and(self.query, query)

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """One page of the runs matching ``query``."""
        return self.store.runs(
            self.narrowed(query), sort=sort, skip=skip, limit=self.check_page(limit)
        )

    def count(self, query: Query | None = None) -> int:
        return self.store.count(self.narrowed(query))

    def hidden(self, query: Query | None = None) -> str | None:
        """Why no run matches ``query`` when the access policy hides runs that name no
        proposal (see :meth:`~intake_broker.access.GuardedStore.hidden_unlabelled`); None when
        that is not why, or this is not a guarded view."""
        if not isinstance(self.store, GuardedStore):
            return None
        return self.store.hidden_unlabelled(self.narrowed(query))

    def run(self, uid: str) -> RunRecord:
        if self.query is None:
            return self.store.run(uid)
        found = self.store.runs(_and(self.query, Eq("uid", uid)), limit=1)
        if not found:
            raise RunNotFound(f"no run with uid {uid!r} in this catalog")
        return found[0]

    def descriptors(self, run_uid: str) -> list[dict]:
        self.run(run_uid)
        return self.store.descriptors(run_uid)

    # -- annotations ------------------------------------------------------------------------

    def _annotations(self, run_uid: str) -> Any:
        self.run(run_uid)  # within this service's catalog (and, guarded, the principal's runs)
        return require(self.store, Annotations, "keep annotations")

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run (a guarded store shows only the principal's)."""
        return self._annotations(run_uid).annotations(run_uid)

    def annotation_history(self, run_uid: str) -> list[dict]:
        return self._annotations(run_uid).annotation_history(run_uid)

    def change_annotation(self, run_uid: str, change: Any) -> dict:
        """Apply a posted change: checked again here; a guarded store makes the principal its
        author and checks what they may see, an open service takes the author it names."""
        keeper = self._annotations(run_uid)
        if isinstance(self.store, GuardedStore):
            return keeper.change_annotation(run_uid, change)
        checked = check_change(change)
        if checked["visibility"] == "proposal":
            checked["proposals"] = _labels(self.run(run_uid).start.get("proposal_id"))
        else:
            checked["proposals"] = []
        return keeper.change_annotation(run_uid, finish_change(run_uid, checked))

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        """The run's documents; the run is looked up now, so a missing run fails early."""
        self.run(run_uid)
        return self.store.documents(run_uid)

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        self.run(run_uid)
        return self.store.datum_pages(run_uid)

    # -- events -----------------------------------------------------------------------------

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The run holding a descriptor, as the store says (through the guard: a descriptor
        of a run the principal may not see is as missing as one of no run)."""
        try:
            return require(self.store, DescriptorIndex, "look up descriptors").descriptor_run(
                descriptor_uid
            )
        except BrokerError:
            raise
        except KeyError:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r}") from None

    def chunks(self, descriptor_uid: str) -> list[Chunk]:
        try:
            return self.store.event_chunks(descriptor_uid)
        except BrokerError:
            raise
        except KeyError:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r}") from None

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        uids: bool,
    ) -> EventColumns:
        try:
            columns = self.store.read_events(
                descriptor_uid, fields=fields, seq_range=seq_range, uids=uids
            )
        except BrokerError:
            raise
        except KeyError:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r}") from None
        return columns

    def check_events_size(
        self,
        descriptor_uid: str,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        groups: Sequence[str],
    ) -> None:
        """Refuse, before reading anything, events that cannot fit in one response: a
        request over several chunks whose size, counted from the descriptor's declared shapes
        and dtypes (as the core reads them) over the rows of the chunks it wholly covers,
        exceeds the limit. A cheap 400, so that a client splitting its read by chunks has not
        waited for the whole to be read first. What this cannot tell is checked after the
        read (:meth:`check_size`)."""
        try:
            chunks = self.store.event_chunks(descriptor_uid)
            lo, hi = seq_range if seq_range is not None else (-1, 2**63)
            covered = [c for c in chunks if c.seq_stop > lo and c.seq_start < hi]
            if len(covered) < 2:
                return  # one chunk: what a store keeps together is read together
            rows = sum(c.rows for c in covered if c.seq_start >= lo and c.seq_stop <= hi)
            # (a store without a descriptor index raises here: the shortcut gives up)
            run_uid = cast(DescriptorIndex, self.store).descriptor_run(descriptor_uid)
            keys = next(d for d in self.store.descriptors(run_uid) if d["uid"] == descriptor_uid)[
                "data_keys"
            ]
            per_row = 16 if "index" in groups else 0
            for key in (k for k in (keys if fields is None else fields) if k in keys):
                dtype = field_dtype(keys[key])
                if "data" in groups and not keys[key].get("external") and not dtype.hasobject:
                    per_row += dtype.itemsize * int(np.prod(field_shape(keys[key])))
                if "timestamps" in groups:
                    per_row += 8
        except Exception:  # only a shortcut: the read that follows says what is wrong (a
            return  # denied descriptor's 404 included)
        self.check_size(rows * per_row, "the requested events")

    def check_size(self, nbytes: int, what: str) -> None:
        if nbytes > self.limits.response_bytes:
            raise OversizedRequest(
                f"{what} holds {nbytes / 1e6:.1f} MB, more than one response carries "
                f"({self.limits.response_bytes / 1e6:.0f} MB); ask for a smaller seq_num range "
                "or fewer fields"
            )

    # -- streams and assets -----------------------------------------------------------------

    def layout(self, run_uid: str, stream: str) -> StreamLayout:
        """The layout of one stream of a run (descriptors and chunks; no event values)."""
        descriptors = [d for d in self.descriptors(run_uid) if d.get("name", "primary") == stream]
        if not descriptors:
            names = sorted({d.get("name", "primary") for d in self.descriptors(run_uid)})
            raise StreamNotFound(f"run {run_uid!r} has no stream {stream!r}; it has {names}")
        return StreamLayout(self.store, descriptors, self.reader(run_uid))

    def reader(self, run_uid: str, *, fresh: bool = False) -> AssetReader:
        """An asset reader for a run, reused across requests while it stays in the cache."""
        key = run_uid if self._owner is None else (self._owner, run_uid)
        with self._lock:
            reader = None if fresh else self._readers.get(key)
            if reader is not None:
                self._readers.move_to_end(key)
                return reader
        reader = AssetReader(self.store, run_uid, **self.assets)
        with self._lock:
            self._readers[key] = reader
            while len(self._readers) > self.limits.readers:
                self._readers.popitem(last=False)
        return reader

    def data_key(self, run_uid: str, key: str) -> dict:
        for descriptor in self.descriptors(run_uid):
            if key in descriptor["data_keys"]:
                return descriptor["data_keys"][key]
        raise StreamNotFound(f"run {run_uid!r} has no data key {key!r} in any stream")

    def read_datums(self, run_uid: str, key: str, datum_ids: Sequence[str]) -> np.ndarray:
        """The frames of resource/datum-backed ``key`` for ``datum_ids``."""
        dk = self.data_key(run_uid, key)
        dtype, shape = field_dtype(dk), field_shape(dk)
        self.check_size(len(datum_ids) * dtype.itemsize * int(np.prod(shape)), "the request")
        self._check_datums(run_uid, datum_ids)
        try:
            return self.reader(run_uid).read_datums(key, list(datum_ids), dtype, shape)
        except AssetReadError:  # datums added since the reader was made: once more, anew
            return self.reader(run_uid, fresh=True).read_datums(key, list(datum_ids), dtype, shape)

    def _check_datums(self, run_uid: str, datum_ids: Sequence[str]) -> None:
        """A datum id the run does not hold is the client's mistake (a 404), not a failure to
        read an asset (once more with a fresh reader: datums may have been added since)."""
        for fresh in (False, True):
            known = self.reader(run_uid, fresh=fresh).datums
            missing = [d for d in datum_ids if d not in known]
            if not missing:
                return
        more = (
            f" (and {len(missing) - 1} more of the {len(datum_ids)} asked)" if missing[1:] else ""
        )
        raise ResourceNotFound(
            f"run {run_uid!r} has no datum {missing[0]!r}{more}; ask for the datum ids of the "
            "run's events"
        )

    def _check_stream(
        self, run_uid: str, key: str, descriptor_uid: str, seq_range: tuple[int, int]
    ) -> None:
        """A descriptor of another run, or seq_nums no stream_datum of the run covers, are the
        client's mistake (404 / 400), not a failure to read an asset."""
        if descriptor_uid not in {d["uid"] for d in self.descriptors(run_uid)}:
            raise DescriptorNotFound(f"run {run_uid!r} has no descriptor {descriptor_uid!r}")
        lo, hi = seq_range
        covered = np.zeros(hi - lo, dtype=bool)
        for fresh in (False, True):
            assets = self.reader(run_uid, fresh=fresh).assets
            for sd in assets.stream_datums:
                ref: Any = sd.get("stream_resource")  # None (no such field) finds nothing
                resource = assets.stream_resources.get(ref)
                if sd.get("descriptor") != descriptor_uid or resource is None:
                    continue
                if resource.get("data_key") != key:
                    continue
                first = max(lo, sd["seq_nums"]["start"])
                last = min(hi, sd["seq_nums"]["stop"])
                if first < last:
                    covered[first - lo : last - lo] = True
            if covered.all():
                return
        missing = lo + int(np.flatnonzero(~covered)[0])
        raise InvalidRequest(
            f"no stream_datum of run {run_uid!r} holds {key!r} at seq_num {missing} of "
            f"descriptor {descriptor_uid!r}; ask for the seq_nums its events have"
        )

    def read_stream_asset(
        self, run_uid: str, key: str, descriptor_uid: str, seq_range: tuple[int, int]
    ) -> np.ndarray:
        """Rows of stream_resource-backed ``key`` (ophyd-async) for a seq_num range."""
        dk = self.data_key(run_uid, key)
        dtype, shape = field_dtype(dk), field_shape(dk)
        rows = seq_range[1] - seq_range[0]
        self.check_size(rows * dtype.itemsize * int(np.prod(shape)), "the request")
        self._check_stream(run_uid, key, descriptor_uid, seq_range)
        try:
            return self.reader(run_uid).read_stream(key, descriptor_uid, seq_range, dtype, shape)
        except AssetReadError:
            return self.reader(run_uid, fresh=True).read_stream(
                key, descriptor_uid, seq_range, dtype, shape
            )
