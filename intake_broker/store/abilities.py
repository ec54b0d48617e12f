"""The optional abilities of a store, each a small protocol that a store states by having it.

:class:`~intake_broker.store.DocumentStore` is the small contract every store keeps (the read
methods and ``put``). Whatever else a store can do is one of the protocols below. The core never
finds an ability by trial: it asks ``store.supports(Ability)`` (or :func:`require`, which raises
the one "not supported" error, :class:`~intake_broker.errors.NotSupported`).

A plain store supports an ability when it has the ability's methods (the protocols are
runtime-checkable). A wrapper (:class:`~intake_broker.store.wrapper.StoreWrapper`: the access guard,
a federation) supports what the store behind it supports, whatever methods it forwards.

==========================  ==========================================================
ability                     what the store can do
==========================  ==========================================================
:class:`DescriptorIndex`    name the run of a descriptor uid (stateless access checks)
:class:`ResourceIndex`      name the run of a resource uid (checks of datums written)
:class:`QueryIndex`         answer the part of a query its run index covers (the planner)
:class:`SummaryKeeper`      keep statistics computed elsewhere (``intake-broker summarize``)
:class:`Buffered`           hold written events in buffers that :meth:`~Buffered.flush` writes
:class:`FolderStore`        live in one local folder (what the default catalog uses)
:class:`DocumentFiles`      read files of documents (what ``intake-broker ingest`` reads)
:class:`Annotations`        keep annotations of runs: tags, fields, notes, with history
==========================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from intake_broker.errors import NotSupported

if TYPE_CHECKING:  # planning imports this module
    from intake_broker.queries import Query
    from intake_broker.store.planning import Candidates

__all__ = [
    "ABILITIES",
    "Annotations",
    "Buffered",
    "DescriptorIndex",
    "DocumentFiles",
    "ResourceIndex",
    "FolderStore",
    "QueryIndex",
    "SummaryKeeper",
    "abilities",
    "flush",
    "require",
]


@runtime_checkable
class DescriptorIndex(Protocol):
    """The store names the run of any descriptor it holds, without listing runs first."""

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The uid of the run holding ``descriptor_uid`` (``DescriptorNotFound`` if none)."""
        ...


@runtime_checkable
class ResourceIndex(Protocol):
    """The store names the run of any resource or stream_resource it holds (what lets a
    guarded store check a datum against the run it joins)."""

    def resource_run(self, resource_uid: str) -> str:
        """The uid of the run holding ``resource_uid`` (``ResourceNotFound`` if none)."""
        ...


@runtime_checkable
class QueryIndex(Protocol):
    """The store has a run index that answers queries: the core's planner
    (:func:`~intake_broker.store.planning.plan_runs`, ``plan_count``) asks it for the part of a
    query on the documents it indexes and evaluates the rest; the store's ``runs`` and
    ``count`` are then one call to the planner.

    Only the store that owns the index has this ability: a wrapper (the access guard, a
    federation) answers ``runs``/``count`` through the store behind it, which plans its own
    queries, so no caller reaches an index past the guard's filter.
    """

    def index_documents(self) -> frozenset[str]:
        """The parts of a run record the index answers queries on (``"start"``, ``"stop"``,
        ``"summary"``); a query on any other part (``descriptors.*``) is evaluated."""
        ...

    def index_runs(
        self,
        query: Query | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int | None,
    ) -> Candidates:
        """The candidates of ``query`` (on the indexed documents only), in ``sort`` order if
        the index can sort by those keys, each flagged sure or unsure. The store may apply
        ``skip``/``limit`` only when every candidate is sure and ordered (``paged``)."""
        ...

    def index_count(self, query: Query | None) -> Candidates:
        """How many runs match ``query`` (on the indexed documents only): the sure matches
        counted (``counted``) and the unsure candidates listed for the evaluator."""
        ...


@runtime_checkable
class SummaryKeeper(Protocol):
    """The store keeps data summaries given to it (of asset data, computed by a reader)."""

    def set_summary(self, run_uid: str, stream: str, field: str, stats: dict) -> None:
        """Keep ``stats`` as the summary of ``stream.field`` of a run."""
        ...


@runtime_checkable
class Buffered(Protocol):
    """Written events may wait in buffers; :meth:`flush` writes them out."""

    def flush(self) -> None:
        """Write out every buffered document."""
        ...


@runtime_checkable
class FolderStore(Protocol):
    """The store can keep everything in one local folder."""

    @classmethod
    def in_folder(cls, folder: str, **kwargs: Any) -> Any:
        """A store keeping its index and data in ``folder``."""
        ...


@runtime_checkable
class DocumentFiles(Protocol):
    """The store's class reads files of documents (suitcase JSONL / msgpack) one by one."""

    @classmethod
    def parse_documents(cls, data: bytes, label: str) -> Any:
        """``(where, name, doc)`` triples of one file's ``[name, doc]`` pairs."""
        ...


@runtime_checkable
class Annotations(Protocol):
    """The store keeps annotations of its runs (see :mod:`intake_broker.store.annotations`):
    tags, fields and notes beside the documents, each change kept in a history."""

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run (as its reader may see them), oldest first."""
        ...

    def annotation_history(self, run_uid: str) -> list[dict]:
        """Every change of the run's annotations (who, when, before, after), oldest first."""
        ...

    def change_annotation(self, run_uid: str, change: Any) -> dict:
        """Apply one change (:func:`~intake_broker.store.annotations.annotation_change`)
        atomically with :func:`~intake_broker.store.annotations.apply_change`; return the
        annotation after it."""
        ...


#: Every optional ability, in the order :func:`abilities` lists them.
ABILITIES: tuple[type, ...] = (
    DescriptorIndex,
    ResourceIndex,
    QueryIndex,
    SummaryKeeper,
    Buffered,
    FolderStore,
    DocumentFiles,
    Annotations,
)

A = TypeVar("A")


def require(store: Any, ability: Callable[..., A], doing: str) -> A:
    """``store`` if it supports ``ability``, else :class:`~intake_broker.errors.NotSupported`
    saying which store cannot do what (``doing``: e.g. "keep summaries of asset data").

    Typed as the ability, so that its methods type-check on the result. ``ability`` is one of
    the protocol classes above: mypy refuses a protocol as a ``type[A]`` argument
    (python/mypy#4717) but takes it as a ``Callable[..., A]``, so callers need no ignore."""
    if not store.supports(ability):
        raise NotSupported(
            f"{type(store).__name__} cannot {doing}: it does not have the "
            f"{ability.__name__} ability (see intake_broker.store.abilities)"
        )
    return store


def flush(store: Any) -> None:
    """Write out what ``store`` buffers, if it buffers anything (:class:`Buffered`)."""
    if store.supports(Buffered):
        store.flush()


def abilities(store: Any) -> list[str]:
    """The names of the optional abilities ``store`` supports (for ``describe`` and docs)."""
    return [a.__name__ for a in ABILITIES if store.supports(a)]
