"""``StoreWrapper``: the one base of stores that stand in front of other stores.

The access guard (:class:`~intake_broker.access.GuardedStore`) and a federation
(:class:`~intake_broker.federation.FederatedStore`) answer the store contract by asking the
store(s) behind them. Forwarding by hand, method by method, is how a forgotten method (say
``asset_reader``) silently falls back to a default that reads on the wrong side. Here every
method of the contract and of every ability is forwarded once, through two routes a wrapper may
override:

``_on_run(run_uid, call, what)``
    every question about one run (its descriptors, documents, assets, summary, ...): ``call``
    is applied to the store that holds the run;
``_on_descriptor(descriptor_uid, call, what)``
    every question about one descriptor's events.

A wrapper overrides a route to check or to choose a store, and a method only where it changes
what the method does. Abilities are those of the store behind (:meth:`supports`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from intake_broker.store.abilities import (
    Annotations,
    DescriptorIndex,
    QueryIndex,
    ResourceIndex,
    SummaryKeeper,
    flush,
    require,
)
from intake_broker.store.contract import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RunRecord

if TYPE_CHECKING:
    from intake_broker.assets import AssetReader, RunAssets
    from intake_broker.queries import Query

T = TypeVar("T")


class StoreWrapper(DocumentStore):
    """A store answering through ``self.store`` (a single store behind it).

    Subclasses set ``store`` and override :meth:`_on_run` / :meth:`_on_descriptor` (and, for
    several stores behind, :meth:`supports` and the listing methods).
    """

    store: DocumentStore

    # -- routes -----------------------------------------------------------------------------

    def _on_run(self, run_uid: str, call: Callable[[DocumentStore], T], what: str) -> T:
        """``call(store holding run_uid)``; ``what`` names the question for messages."""
        return call(self.store)

    def _on_descriptor(
        self, descriptor_uid: str, call: Callable[[DocumentStore], T], what: str
    ) -> T:
        """``call(store holding descriptor_uid)``."""
        return call(self.store)

    # -- abilities ----------------------------------------------------------------------------

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return self.store.writable

    @property
    def validate(self) -> bool:  # type: ignore[override]
        return self.store.validate

    def supports(self, ability: type) -> bool:
        """The abilities of the store behind, but for its :class:`QueryIndex`: a wrapper
        searches through the store's ``runs``/``count`` (which plan their own queries), so
        nothing reaches the index behind it past what the wrapper adds (the guard's filter)."""
        return ability is not QueryIndex and self.store.supports(ability)

    # -- the contract, forwarded ----------------------------------------------------------

    def put(self, kind: str, doc: dict) -> None:
        self.store.put(kind, doc)

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return self.store.runs(query, sort=sort, skip=skip, limit=limit)

    def count(self, query: Query | None = None) -> int:
        return self.store.count(query)

    def run(self, uid: str) -> RunRecord:
        return self.store.run(uid)

    def descriptors(self, run_uid: str) -> list[dict]:
        return self._on_run(run_uid, lambda s: s.descriptors(run_uid), f"descriptors of {run_uid}")

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The run of a descriptor, as the store behind says (when it has a descriptor index)."""
        return self._on_descriptor(
            descriptor_uid,
            lambda s: require(s, DescriptorIndex, "look up descriptors").descriptor_run(
                descriptor_uid
            ),
            f"run of descriptor {descriptor_uid}",
        )

    def resource_run(self, resource_uid: str) -> str:
        """The run of a resource, as the store behind says (when it has a resource index)."""
        return require(self.store, ResourceIndex, "look up resources").resource_run(resource_uid)

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        return self._on_descriptor(
            descriptor_uid, lambda s: s.event_chunks(descriptor_uid), f"descriptor {descriptor_uid}"
        )

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        return self._on_descriptor(
            descriptor_uid,
            lambda s: s.read_events(descriptor_uid, fields=fields, seq_range=seq_range, uids=uids),
            f"descriptor {descriptor_uid}",
        )

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        return self._on_run(run_uid, lambda s: s.documents(run_uid), f"documents of {run_uid}")

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        return self._on_run(
            run_uid, lambda s: s.resource(run_uid, resource_uid), f"resource {resource_uid}"
        )

    def asset_reader(self, run_uid: str, **options: Any) -> AssetReader:
        return self._on_run(
            run_uid, lambda s: s.asset_reader(run_uid, **options), f"assets of {run_uid}"
        )

    def run_assets(self, run_uid: str) -> RunAssets:
        return self._on_run(run_uid, lambda s: s.run_assets(run_uid), f"assets of {run_uid}")

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        return self._on_run(run_uid, lambda s: s.datum_pages(run_uid), f"datums of {run_uid}")

    def summary(self, run_uid: str) -> dict[str, dict[str, dict[str, Any]]]:
        return self._on_run(run_uid, lambda s: s.summary(run_uid), f"summary of {run_uid}")

    def set_summary(self, run_uid: str, stream: str, field: str, stats: dict) -> None:
        self._on_run(
            run_uid,
            lambda s: require(s, SummaryKeeper, "keep summaries").set_summary(
                run_uid, stream, field, stats
            ),
            f"summary of {run_uid}",
        )

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        return self._on_run(
            run_uid, lambda s: s.record_parts(run_uid, parts), f"parts of {run_uid}"
        )

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run, from the store holding it."""
        return self._on_run(
            run_uid,
            lambda s: require(s, Annotations, "keep annotations").annotations(run_uid),
            f"annotations of {run_uid}",
        )

    def annotation_history(self, run_uid: str) -> list[dict]:
        """The history of a run's annotations, from the store holding it."""
        return self._on_run(
            run_uid,
            lambda s: require(s, Annotations, "keep annotations").annotation_history(run_uid),
            f"annotation history of {run_uid}",
        )

    def change_annotation(self, run_uid: str, change: Any) -> dict:
        """Change an annotation of a run, in the store holding it."""
        return self._on_run(
            run_uid,
            lambda s: require(s, Annotations, "keep annotations").change_annotation(
                run_uid, change
            ),
            f"annotations of {run_uid}",
        )

    def flush(self) -> None:
        flush(self.store)

    def close(self) -> None:
        self.store.close()
