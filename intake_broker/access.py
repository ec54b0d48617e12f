"""Access control: who may see which runs, applied in one place for every path.

An :class:`AccessPolicy` turns a :class:`Principal` (a user with groups, proposals, beamtimes
and roles) into a query filter. :class:`GuardedStore` wraps any store with a policy and a
principal: listing and search get the filter ANDed in (so stores answer it natively, from their
indexes), and every read of a run -- by uid, prefix or scan_id, its descriptors, event columns,
documents, assets and summaries -- is checked against it. A catalog over a guarded store gives
every user exactly their runs, whichever way they ask::

    policy = ProposalPolicy()
    cat = BrokerCatalog(GuardedStore(store, policy, Principal("ada", proposals=("p-101",))))

Denied and missing runs look the same (``RunNotFound``), so uids of other proposals do not leak.
A guarded store pickles with its principal and keeps checking in the process that unpickles it.

Writes are checked too: a document goes in only when its run is one the principal may write
(the policy's ``write_filter``; a policy without one lets a principal write the runs it may
read). A new run's start document must itself pass the filter, so a user cannot start runs in
another proposal, and descriptors, events, stops and stream resources go only into such runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .errors import DescriptorNotFound, InvalidDocument, RunNotFound, WriteDenied
from .queries import Comparison, In, KeyPresent, Or, Query, evaluate
from .store import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RunRecord, run_matches


@dataclass(frozen=True)
class Principal:
    """Who is asking.

    ``roles`` holds ``"admin"`` (sees everything) and/or ``"staff"`` (sees the runs of the
    ``beamlines`` they work at); every user sees the runs of their ``proposals`` and
    ``beamtimes``.
    """

    name: str
    groups: tuple[str, ...] = ()
    proposals: tuple[str, ...] = ()
    beamtimes: tuple[str, ...] = ()
    beamlines: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("user",)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@runtime_checkable
class AccessPolicy(Protocol):
    """Turns a principal into the filter of the runs it may see (None: every run).

    A policy may also have ``write_filter(principal) -> Query | None``: the runs the principal
    may write into (see :class:`GuardedStore`); without it, those it may see.
    """

    def filter(self, principal: Principal) -> Query | None: ...


@dataclass(frozen=True)
class ProposalPolicy:
    """Runs belong to a proposal and a beamtime named by start-document keys.

    A user sees runs of their proposals and beamtimes; staff also those of their beamlines;
    admins all; everyone sees runs whose embargo (``public_key``, epoch seconds) has passed.
    Runs without a proposal key are seen only by admins, unless ``deny_unlabelled`` is False.
    """

    proposal_key: str = "proposal_id"
    beamtime_key: str = "beamtime_id"
    beamline_key: str = "beamline_id"
    public_key: str = "embargo_until"
    deny_unlabelled: bool = True

    def filter(self, principal: Principal) -> Query | None:
        allowed = self.write_filter(principal)
        if allowed is None:
            return None
        return allowed | Comparison("lt", self.public_key, time.time())

    def write_filter(self, principal: Principal) -> Query | None:
        """The runs ``principal`` may write: those of their proposals, beamtimes and (staff)
        beamlines, and unlabelled ones when those are not denied -- not public ones."""
        if principal.is_admin:
            return None
        allowed: list[Query] = [
            In(self.proposal_key, tuple(principal.proposals)),
            In(self.beamtime_key, tuple(principal.beamtimes)),
        ]
        if "staff" in principal.roles and principal.beamlines:
            allowed.append(In(self.beamline_key, tuple(principal.beamlines)))
        if not self.deny_unlabelled:
            allowed.append(KeyPresent(self.proposal_key, present=False))
        return Or(tuple(allowed))


@dataclass
class GuardedStore(DocumentStore):
    """``store`` as ``principal`` may see it under ``policy``: the one place access is checked.

    Reads see only the runs the policy's filter allows. A written document must belong to a
    run the policy lets the principal write (:meth:`put`); a datum or datum page, which names
    only its resource, is not checked (it is read only through events, which are).
    """

    store: DocumentStore
    policy: AccessPolicy
    principal: Principal
    _descriptors: dict[str, str] = field(default_factory=dict, repr=False)  # uid -> run uid
    _writable: set[str] = field(default_factory=set, repr=False)  # runs checked for writing
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return self.store.writable

    @property
    def validate(self) -> bool:  # type: ignore[override]
        return self.store.validate

    def _filter(self, query: Query | None) -> Query | None:
        allowed = self.policy.filter(self.principal)
        if allowed is None:
            return query
        return allowed if query is None else allowed & query

    def _check(self, run_uid: str) -> RunRecord:
        """The run, if the principal may see it; else the same error as for a missing run."""
        try:
            record = self.store.run(run_uid)
        except RunNotFound:  # the same words as a denial: a missing uid must not differ
            raise RunNotFound(f"no run with uid {run_uid!r} in this catalog") from None
        if not self._passes(self.policy.filter(self.principal), record):
            raise RunNotFound(f"no run with uid {run_uid!r} in this catalog")
        return record

    def _passes(self, allowed: Query | None, record: RunRecord) -> bool:
        """Whether the run of ``record`` matches the filter ``allowed`` (None: any run)."""
        return allowed is None or run_matches(allowed, record, self.store)

    def _run_of(self, descriptor_uid: str) -> str | None:
        """The run a descriptor belongs to, as listed here or as the store says (None when
        neither knows)."""
        with self._lock:
            run_uid = self._descriptors.get(descriptor_uid)
        if run_uid is None:
            try:  # stores that index descriptors answer this without a listing first
                run_uid = self.store.descriptor_run(descriptor_uid)
            except DescriptorNotFound:
                return None
            with self._lock:
                self._descriptors[descriptor_uid] = run_uid
        return run_uid

    def _check_descriptor(self, descriptor_uid: str) -> None:
        """Refuse a descriptor of a run the principal may not see, in the same words as a
        missing one (and without naming its run)."""
        run_uid = self._run_of(descriptor_uid)
        if run_uid is not None:
            try:
                self._check(run_uid)  # on every read: a revoked grant takes effect at once
                return
            except RunNotFound:
                pass
        raise DescriptorNotFound(
            f"descriptor {descriptor_uid!r} is not part of any run this catalog shows"
        )

    # -- the contract, guarded ------------------------------------------------------------

    def _check_write(self, kind: str, doc: dict) -> None:
        """Refuse ``doc`` unless it goes into a run the principal may write."""
        allowed = self._write_filter()
        if allowed is None:
            return
        if kind == "start":
            if not evaluate(allowed, RunRecord(doc).as_record()):
                raise WriteDenied(
                    f"{self.principal.name!r} may not start this run: its "
                    "proposal, beamtime or beamline is not one of theirs"
                )
            return
        if kind in ("stop", "descriptor", "stream_resource", "resource"):
            run_uid = doc.get("run_start")
            if kind == "resource" and run_uid is None:
                return  # an old-style resource of no run: read only through checked events
        elif kind in ("event_page", "stream_datum"):
            descriptor = doc.get("descriptor")
            if not isinstance(descriptor, str):
                return  # malformed: the store refuses it
            run_uid = self._run_of(descriptor)
            if run_uid is None:  # fail closed: events of no run we can name
                raise InvalidDocument(
                    f"descriptor {descriptor!r} is not part of any run "
                    "this catalog shows; insert the descriptor (and its "
                    "run's start) first"
                )
        else:  # datum pages name only their resource, and are read only through events
            return
        if not isinstance(run_uid, str):
            return  # malformed: the store refuses it
        with self._lock:
            if run_uid in self._writable:
                return
        try:
            record = self.store.run(run_uid)
        except RunNotFound:
            return  # nothing to write into: the store refuses the document and says why
        if not self._passes(allowed, record):
            self._check(run_uid)  # a run the principal may not see looks missing
            raise WriteDenied(
                f"{self.principal.name!r} may read run {run_uid!r} but not write "
                f"into it: a {kind} goes only into runs of their own proposals"
            )
        with self._lock:
            self._writable.add(run_uid)

    check_write = _check_write  # the hook DocumentStore.insert calls before its run checks

    def _write_filter(self) -> Query | None:
        write_filter = getattr(self.policy, "write_filter", None)
        return (write_filter or self.policy.filter)(self.principal)

    def put(self, kind: str, doc: dict) -> None:
        """Store ``doc`` if its run is one the principal may write, else raise
        :class:`~intake_broker.errors.WriteDenied` (``RunNotFound`` for a run the principal
        may not see) and store nothing."""
        self._check_write(kind, doc)
        self.store.put(kind, doc)
        if kind == "descriptor" and isinstance(doc.get("run_start"), str):
            with self._lock:
                self._descriptors[doc["uid"]] = doc["run_start"]

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return self.store.runs(self._filter(query), sort=sort, skip=skip, limit=limit)

    def count(self, query: Query | None = None) -> int:
        return self.store.count(self._filter(query))

    def run(self, uid: str) -> RunRecord:
        return self._check(uid)

    def descriptors(self, run_uid: str) -> list[dict]:
        self._check(run_uid)
        found = self.store.descriptors(run_uid)
        with self._lock:
            self._descriptors.update({d["uid"]: run_uid for d in found})
        return found

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        self._check_descriptor(descriptor_uid)
        return self.store.event_chunks(descriptor_uid)

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        self._check_descriptor(descriptor_uid)
        return self.store.read_events(descriptor_uid, fields=fields, seq_range=seq_range, uids=uids)

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        self._check(run_uid)
        return self.store.documents(run_uid)

    def run_assets(self, run_uid: str):
        self._check(run_uid)
        return self.store.run_assets(run_uid)

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        self._check(run_uid)
        return self.store.resource(run_uid, resource_uid)

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        self._check(run_uid)
        return self.store.datum_pages(run_uid)

    def summary(self, run_uid: str) -> dict:
        self._check(run_uid)
        return self.store.summary(run_uid)

    def set_summary(self, run_uid: str, stream: str, field_: str, stats: dict) -> None:
        self._check(run_uid)
        self.store.set_summary(run_uid, stream, field_, stats)

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        self._check(run_uid)
        return self.store.record_parts(run_uid, parts)

    def flush(self) -> None:
        self.store.flush()

    def close(self) -> None:
        self.store.close()
