"""The store contract: what every backend implements, and the small value types it returns.

A store keeps the documents of many runs and answers three kinds of question: *which runs*
(:meth:`DocumentStore.runs`, :meth:`DocumentStore.count`), *what is in a run*
(:meth:`DocumentStore.descriptors`, :meth:`DocumentStore.documents`) and *what are the values of
a stream* (:meth:`DocumentStore.event_chunks`, :meth:`DocumentStore.read_events`). Everything a
user sees -- catalogs, runs, lazy xarray streams, queries, access filters -- is built once on top
of these methods, in the core.

Writing goes through :meth:`DocumentStore.insert`, which validates and normalises each document
(events and datums become one-row pages) and hands it to the store's :meth:`DocumentStore.put`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from intake_broker.errors import ReadOnlyStore, ResourceNotFound, RunNotFound
from intake_broker.queries import Eq, Query
from intake_broker.store import validation

if TYPE_CHECKING:
    from intake_broker.assets import AssetReader, RunAssets

#: How runs are ordered when nobody says otherwise: newest first.
NEWEST_FIRST: tuple[tuple[str, int], ...] = (("time", -1),)


@dataclass(frozen=True)
class RunRecord:
    """The start and (if the run has ended) stop document of one run."""

    start: dict
    stop: dict | None = None
    #: Where the run came from when a catalog merges several stores (a federation member).
    origin: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        return self.start["uid"]

    @property
    def complete(self) -> bool:
        """False while a run is acquiring, or if its writer died before the stop document."""
        return self.stop is not None

    def as_record(self) -> dict:
        """The mapping that queries are evaluated against (``start.*``, ``stop.*``)."""
        return {"start": self.start, "stop": self.stop}


@dataclass(frozen=True)
class Chunk:
    """A stored page of one descriptor's events: ``rows`` events with ``seq_start <= seq_num <
    seq_stop``. A stream's dask chunks follow these."""

    descriptor: str
    seq_start: int
    seq_stop: int
    rows: int


@dataclass
class EventColumns:
    """Events of one descriptor as columns, ordered by ``seq_num``.

    ``data`` and ``timestamps`` map a data key to an array with one row per event; ``uid`` is
    present when asked for.
    """

    seq_num: np.ndarray
    time: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)
    timestamps: dict[str, np.ndarray] = field(default_factory=dict)
    filled: dict[str, np.ndarray] = field(default_factory=dict)
    uid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seq_num)


class DocumentStore(ABC):
    """A backend that keeps Bluesky documents and answers queries about them.

    Subclasses implement :meth:`put` (unless read-only), :meth:`runs`, :meth:`count`,
    :meth:`descriptors`, :meth:`event_chunks`, :meth:`read_events` and :meth:`documents`, and
    prove it by passing :class:`intake_broker.testing.DocumentStoreTests`. The other methods
    here have working defaults built on those, which stores with an index override.

    ``writable`` says whether :meth:`insert` works. Every other optional ability (a descriptor
    index, keeping summaries, buffering, living in a folder) is a protocol of
    :mod:`intake_broker.store.abilities` that a store states by having its methods; the core asks
    :meth:`supports`, never tries.
    """

    writable: ClassVar[bool] = True
    #: Validate documents against event-model's schemas on insert (turn off for bulk import).
    validate: bool = True

    # -- writing --------------------------------------------------------------------------

    def insert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Store one document; the signature of a RunEngine subscriber.

        Every document is checked first, the same way for every store (see
        :mod:`intake_broker.store.validation`): its structure, uids, times and values on its own,
        and an event against its descriptor's data keys and its run (no new event after the
        run's stop). ``validate=False`` skips only the event-model JSON schemas of start,
        stop, descriptor and asset documents. Re-inserting an identical document does nothing;
        a different document with a stored uid raises
        :class:`~intake_broker.errors.DocumentConflict` and changes nothing.

        Raises
        ------
        InvalidDocument
            Naming the document and the field that is wrong, and what would be right.
        """
        if not self.writable:
            raise ReadOnlyStore(
                f"{type(self).__name__} is read-only; insert into a writable store instead"
            )
        kind, doc = validation.checked(name, doc, schema=self.validate)
        self.check_write(kind, doc)
        checks = self.document_checks()
        token = checks.before(self, kind, doc)
        self.put(kind, doc)
        checks.after(kind, doc, token)

    def check_write(self, kind: str, doc: dict) -> None:  # noqa: B027 (optional hook)
        """Refuse a document its writer may not write, before it is checked against its run
        (so that an access guard's refusal, not a description of the run, is what a writer
        of another proposal hears). A no-op here; an access guard overrides it."""

    def document_checks(self) -> validation.DocumentChecks:
        """What :meth:`insert` knows of this store's runs to check documents in them (made on
        first use; a store that wraps another keeps its own, as it may show less)."""
        checks = self.__dict__.get("_document_checks")
        if checks is None:
            checks = self.__dict__.setdefault("_document_checks", validation.DocumentChecks())
        return checks

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        self.insert(name, doc)

    def put(self, kind: str, doc: dict) -> None:
        """Store one normalised document (``kind`` is one of ``documents.STORED_KINDS``).

        Stores must refuse a document that refers to something they do not hold (an event page
        of an unknown descriptor, a descriptor of an unknown run) with
        :class:`~intake_broker.errors.InvalidDocument`, and apply
        :func:`intake_broker.store.documents.check_reinsert` to a uid they already hold.
        """
        raise ReadOnlyStore(f"{type(self).__name__} is read-only")

    # -- which runs -----------------------------------------------------------------------

    @abstractmethod
    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """The runs matching ``query`` ordered by ``sort`` (keys as in queries, ``1`` ascending,
        ``-1`` descending; ties broken by uid), from ``skip`` on, at most ``limit`` of them."""

    @abstractmethod
    def count(self, query: Query | None = None) -> int:
        """How many runs match ``query``."""

    def run(self, uid: str) -> RunRecord:
        """The run whose start document has this full ``uid``."""
        found = self.runs(Eq("uid", uid), limit=1)
        if not found:
            raise RunNotFound(f"no run with uid {uid!r}")
        return found[0]

    # -- what is in a run -----------------------------------------------------------------

    @abstractmethod
    def descriptors(self, run_uid: str) -> list[dict]:
        """The descriptors of a run, oldest first."""

    @abstractmethod
    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        """How the events of a descriptor are stored, as :class:`Chunk` s ordered by seq_num.

        Must not read event values; these become a stream's dask chunks.
        """

    @abstractmethod
    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        """Events of one descriptor with ``seq_range[0] <= seq_num < seq_range[1]`` (all when
        None), holding only ``fields`` (all data keys when None; ``[]`` for time and seq_num
        only), ordered by seq_num."""

    @abstractmethod
    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        """Every stored document of a run as ``(kind, doc)``, events and datums as pages.

        Order: start first, stop last, and every document after those it refers to (a
        descriptor before its events, a resource before its datums), otherwise by time.
        """

    # -- assets ---------------------------------------------------------------------------

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        """A resource document of a run (stores with an index override this scan)."""
        for kind, doc in self.documents(run_uid):
            if kind in ("resource", "stream_resource") and doc["uid"] == resource_uid:
                return doc
        raise ResourceNotFound(f"run {run_uid!r} has no resource {resource_uid!r}")

    def asset_reader(self, run_uid: str, **options: Any) -> AssetReader:
        """What reads this run's external assets; stores that read them elsewhere (a remote
        store, on its server) override it. ``options``: ``handler_registry``, ``root_map``,
        ``storage_options`` of the catalog."""
        from intake_broker.assets import AssetReader

        return AssetReader(self, run_uid, **options)

    def run_assets(self, run_uid: str) -> RunAssets:
        """The resources, datums, stream_resources and stream_datums of a run, indexed
        (stores with an index override this scan of :meth:`documents`)."""
        from intake_broker.assets import RunAssets

        return RunAssets.from_documents(self.documents(run_uid))

    # -- what a run's data showed ----------------------------------------------------------

    def summary(self, run_uid: str) -> dict[str, dict[str, dict[str, Any]]]:
        """``{stream: {field: {min, max, mean, sum, count}}}`` of a run (see
        :mod:`intake_broker.store.summary`); stores that index summaries override this."""
        from intake_broker.store.summary import run_summary

        return run_summary(self, run_uid)

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        """The ``descriptors``, ``summary`` and/or ``annotations`` of a run, for evaluating
        queries on them."""
        out: dict[str, Any] = {}
        if "annotations" in parts:
            from intake_broker.store.abilities import Annotations

            out["annotations"] = self.annotations(run_uid) if self.supports(Annotations) else []  # type: ignore[attr-defined]
        if "descriptors" in parts:
            out["descriptors"] = self.descriptors(run_uid)
        if "summary" in parts:
            out["summary"] = self.summary(run_uid)
        return out

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        """The datum pages of a run (stores with an index override this scan)."""
        return (doc for kind, doc in self.documents(run_uid) if kind == "datum_page")

    def supports(self, ability: type) -> bool:
        """Whether this store has an optional ability of :mod:`intake_broker.store.abilities`
        (``store.supports(SummaryKeeper)``); wrappers answer for the store behind them."""
        return isinstance(self, ability)

    def close(self) -> None:  # noqa: B027 (optional, with a do-nothing default)
        """Release connections or files; the default has nothing to release."""
