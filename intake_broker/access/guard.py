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
read). A new run's start document must itself pass the filter, and every label it carries must
be the writer's (the policy's ``start_refusal``: a start naming proposals ``["p-A", "p-B"]``
needs both), so a user cannot start runs in another proposal. Every other document is checked
against the run it joins: descriptors, stops and resources by ``run_start``, events by their
descriptor, datums by their resource, stream_datums by both their descriptor and their
stream_resource (which must be of one run). Write errors about runs the writer cannot see read
exactly like those about runs that do not exist, and a reused uid is reported without saying
how the stored document differs. A derived run's inputs that the principal may not see are
withheld from its start document, and searches on them are limited (see
:mod:`intake_broker.access.lineage`). Resources and stream_resources must name assets under the
guard's ``asset_roots`` (see :mod:`intake_broker.assets.roots`), which also confine reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from intake_broker.access.lineage import check_lineage_query, redact
from intake_broker.assets.roots import AssetRoots
from intake_broker.errors import (
    DescriptorNotFound,
    DocumentConflict,
    InvalidDocument,
    ResourceNotFound,
    RunNotFound,
    WriteDenied,
)
from intake_broker.queries import Comparison, In, KeyPresent, Or, Query, evaluate
from intake_broker.queries.annotations import Viewer, bind_viewer, visible
from intake_broker.queries.limits import MAX_VALUES
from intake_broker.store.abilities import DescriptorIndex, ResourceIndex
from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord
from intake_broker.store.documents import doc_label
from intake_broker.store.planning import run_matches
from intake_broker.store.wrapper import StoreWrapper

T = TypeVar("T")


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

    def start_refusal(self, principal: Principal, start: dict) -> str | None:
        """Why ``principal`` may not start a run labelled as ``start`` is (None: they may).

        Every proposal and beamtime a start names must be one of the writer's (a run naming
        ``["p-A", "p-B"]`` shows in both listings, so it needs both), unless the writer is an
        admin, or staff starting the run at one of their beamlines (staff measure for users).
        """
        if principal.is_admin:
            return None
        beamlines = _labels(start.get(self.beamline_key))
        if (
            "staff" in principal.roles
            and beamlines
            and all(b in principal.beamlines for b in beamlines)
        ):
            return None
        for key, held in (
            (self.proposal_key, principal.proposals),
            (self.beamtime_key, principal.beamtimes),
        ):
            foreign = [v for v in _labels(start.get(key)) if v not in held]
            if foreign:
                return (
                    f"its {key} names {foreign!r}, not theirs; a run may name several "
                    "proposals or beamtimes only when its writer holds every one of them"
                )
        return None


def _labels(value: Any) -> list:
    """The labels of a start key: none, one, or each of a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass
class GuardedStore(StoreWrapper):
    """``store`` as ``principal`` may see it under ``policy``: the one place access is checked.

    Reads see only the runs the policy's filter allows. A written document must belong to a
    run the policy lets the principal write (:meth:`put`). ``asset_roots`` (an
    :class:`~intake_broker.assets.roots.AssetRoots` or what :meth:`AssetRoots.of` takes) says
    where assets may be: resources elsewhere are refused at insert, and the asset readers of
    this store read nowhere else. By default nowhere: configure the roots to read assets.
    """

    store: DocumentStore
    policy: AccessPolicy
    principal: Principal
    asset_roots: Any = None
    _descriptors: dict[str, str] = field(default_factory=dict, repr=False)  # uid -> run uid
    _resources: dict[str, str] = field(default_factory=dict, repr=False)  # uid -> run uid
    _writable: set[str] = field(default_factory=set, repr=False)  # runs checked for writing
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __post_init__(self) -> None:
        self.asset_roots = AssetRoots.of(self.asset_roots)

    @property
    def viewer(self) -> Viewer:
        """Whose annotations queries and reads show: this principal's."""
        return Viewer.of_principal(self.principal)

    def _filter(self, query: Query | None) -> Query | None:
        # annotation queries answer for this principal, whatever viewer they arrived with
        query = bind_viewer(query, self.viewer)
        allowed = self.policy.filter(self.principal)
        if allowed is None:
            return query
        check_lineage_query(query, self._visible)
        return allowed if query is None else allowed & query

    def _visible(self, uids: set[str]) -> set[str]:
        """Which of ``uids`` are runs this principal may see (one query per
        :data:`~intake_broker.queries.limits.MAX_VALUES` uids)."""
        allowed = self.policy.filter(self.principal)
        if allowed is None:
            return set(uids)
        found: set[str] = set()
        ordered = sorted(uids)
        for lo in range(0, len(ordered), MAX_VALUES):
            batch = In("uid", tuple(ordered[lo : lo + MAX_VALUES]))
            found.update(r.uid for r in self.store.runs(allowed & batch))
        return found & uids

    def _shown(self, records: list[RunRecord]) -> list[RunRecord]:
        """``records`` as this principal may see them: derived runs' inputs they may not see
        withheld."""
        if self.policy.filter(self.principal) is None:
            return records
        return redact(records, self._visible)

    def hidden_unlabelled(self, query: Query | None = None) -> str | None:
        """Why an empty answer to ``query`` is empty, when the policy hides runs only because
        they name no proposal: ``"5 runs are hidden: they name no proposal (proposal_id);
        only admins see them"``. None otherwise (some runs match, the principal is an admin, or
        the policy is not a :class:`ProposalPolicy` denying unlabelled runs).

        Say it only after an empty answer: then every matching run without a proposal is one
        this principal cannot see, and the count reveals nothing about other proposals' runs.
        """
        policy = self.policy
        if not (isinstance(policy, ProposalPolicy) and policy.deny_unlabelled):
            return None
        if self.principal.is_admin or self.count(query):
            return None
        unlabelled = KeyPresent(policy.proposal_key, present=False)
        query = bind_viewer(query, self.viewer)
        hidden = self.store.count(unlabelled if query is None else query & unlabelled)
        if not hidden:
            return None
        return (
            f"{hidden} {'run is' if hidden == 1 else 'runs are'} hidden: "
            f"{'it names' if hidden == 1 else 'they name'} no proposal ({policy.proposal_key}); "
            "only admins see them"
        )

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

    def _run_of(self, descriptor_uid: Any) -> str | None:
        """The run a descriptor belongs to, as listed here or as the store says (None when
        neither knows)."""
        if not isinstance(descriptor_uid, str):
            return None
        with self._lock:
            run_uid = self._descriptors.get(descriptor_uid)
        if run_uid is None:
            if not self.store.supports(DescriptorIndex):
                return None
            try:  # stores that index descriptors answer this without a listing first
                run_uid = self.store.descriptor_run(descriptor_uid)  # type: ignore[attr-defined]
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
        """Refuse ``doc`` unless it goes into a run the principal may write (and, for a
        resource, names an asset under the asset roots)."""
        allowed = self._write_filter()
        self._check_write_run(kind, doc, allowed)
        if kind in ("resource", "stream_resource"):
            from intake_broker.assets import check_asset_document

            # admins too: these are the server's files; roots naming start keys are expanded
            # with the start of the (now checked) run the resource joins
            check_asset_document(kind, doc, self.asset_roots, self.store)

    def _check_write_run(self, kind: str, doc: dict, allowed: Query | None) -> None:
        """Refuse ``doc`` unless the run it joins is one the principal may write."""
        if allowed is None:
            return
        if kind == "start":
            self._check_start(doc, allowed)
            return
        if kind in ("stop", "descriptor", "stream_resource", "resource"):
            run_uid = doc.get("run_start")
            if run_uid is None and kind in ("resource", "stream_resource"):
                raise WriteDenied(
                    f"{doc_label(kind, doc)} names no run_start; only admins write resources "
                    "of no run (old-style): give it the uid of the run it belongs to"
                )
            if not isinstance(run_uid, str):
                return  # malformed: the store refuses it
            self._check_run_writable(kind, doc, run_uid, allowed, "run_start")
            if kind == "descriptor":
                self._check_uid_free(kind, doc, self._run_of(doc.get("uid")), run_uid)
            elif kind != "stop":
                self._check_uid_free(kind, doc, self._resource_run(doc.get("uid")), run_uid)
        elif kind in ("event_page", "stream_datum"):
            descriptor = doc.get("descriptor")
            if not isinstance(descriptor, str):
                return  # malformed: the store refuses it
            run_uid = self._run_of(descriptor)
            self._check_run_writable(kind, doc, run_uid, allowed, "descriptor", descriptor)
            if kind == "stream_datum":
                resource = doc.get("stream_resource")
                if not isinstance(resource, str):
                    return  # malformed: the store refuses it
                holder = self._resource_run(resource)
                self._check_run_writable(kind, doc, holder, allowed, "stream_resource", resource)
                if holder != run_uid:
                    raise InvalidDocument(
                        f"{doc_label(kind, doc)} joins descriptor {descriptor!r} and "
                        f"stream_resource {resource!r} of two different runs; a stream_datum "
                        "refers only to documents of its own run"
                    )
        elif kind == "datum_page":
            resource = doc.get("resource")
            if not isinstance(resource, str):
                return  # malformed: the store refuses it
            holder = self._resource_run(resource)
            self._check_run_writable(kind, doc, holder, allowed, "resource", resource)

    def _check_start(self, doc: dict, allowed: Query) -> None:
        refusal = getattr(self.policy, "start_refusal", None)
        reason = refusal(self.principal, doc) if refusal is not None else None
        if reason is None and not evaluate(allowed, RunRecord(doc).as_record()):
            reason = "its proposal, beamtime or beamline is not one of theirs"
        if reason is not None:
            raise WriteDenied(f"{self.principal.name!r} may not start this run: {reason}")

    def _unknown(self, kind: str, doc: dict, field_: str, ref: str | None) -> InvalidDocument:
        """The one error for a reference to something missing or not shown to the writer."""
        if field_ == "run_start":
            return InvalidDocument(
                f"{doc_label(kind, doc)} refers to run_start {ref!r}, which is not a run this "
                "catalog shows; insert the run's start document first"
            )
        parent = "resource" if field_ == "stream_resource" else field_
        return InvalidDocument(
            f"{doc_label(kind, doc)} refers to {field_} {ref!r}, which is not part of any run "
            f"this catalog shows; insert the {parent} (and its run's start) first"
        )

    def _check_run_writable(
        self,
        kind: str,
        doc: dict,
        run_uid: str | None,
        allowed: Query,
        field_: str,
        ref: str | None = None,
    ) -> None:
        """Refuse a document joining run ``run_uid`` (found through its ``field_``, whose value
        is ``ref``) unless the principal may write it; a run that is missing or that the
        principal may not see gives the same error, which names only ``ref``."""
        ref = run_uid if ref is None else ref
        if run_uid is None:
            raise self._unknown(kind, doc, field_, ref)
        with self._lock:
            if run_uid in self._writable:
                return
        try:
            record = self.store.run(run_uid)
        except RunNotFound:
            raise self._unknown(kind, doc, field_, ref) from None
        if not self._passes(allowed, record):
            if not self._passes(self.policy.filter(self.principal), record):
                raise self._unknown(kind, doc, field_, ref)
            raise WriteDenied(
                f"{self.principal.name!r} may read run {run_uid!r} but not write "
                f"into it: a {kind} goes only into runs of their own proposals"
            )
        with self._lock:
            self._writable.add(run_uid)

    def _check_uid_free(self, kind: str, doc: dict, holder: str | None, run_uid: str) -> None:
        """Refuse a descriptor or resource whose uid another run holds (which would re-route
        that run's documents), in the words of any reused uid."""
        if holder is not None and holder != run_uid:
            raise self._conflict(kind, doc)

    @staticmethod
    def _conflict(kind: str, doc: dict) -> DocumentConflict:
        return DocumentConflict(
            f"{doc_label(kind, doc)} reuses the uid of a stored document and differs from it; "
            "stored documents are never overwritten: give the new document its own uid"
        )

    def _resource_run(self, resource_uid: Any) -> str | None:
        """The run holding a resource or stream_resource, as written here or as the store
        says (None when neither knows, or the store cannot say)."""
        if not isinstance(resource_uid, str):
            return None
        with self._lock:
            run_uid = self._resources.get(resource_uid)
        if run_uid is None:
            if not self.store.supports(ResourceIndex):
                return None
            try:
                run_uid = self.store.resource_run(resource_uid)  # type: ignore[attr-defined]
            except (ResourceNotFound, KeyError):
                return None
            with self._lock:
                self._resources[resource_uid] = run_uid
        return run_uid

    check_write = _check_write  # the hook DocumentStore.insert calls before its run checks

    def _write_filter(self) -> Query | None:
        write_filter = getattr(self.policy, "write_filter", None)
        return (write_filter or self.policy.filter)(self.principal)

    def put(self, kind: str, doc: dict) -> None:
        """Store ``doc`` if its run is one the principal may write, else raise
        :class:`~intake_broker.errors.WriteDenied` (``RunNotFound`` for a run the principal
        may not see) and store nothing."""
        self._check_write(kind, doc)
        try:
            self.store.put(kind, doc)
        except DocumentConflict:
            if self._write_filter() is None:
                raise
            # the stored document may be another proposal's: never say how it differs
            raise self._conflict(kind, doc) from None
        if kind in ("descriptor", "resource", "stream_resource") and isinstance(
            doc.get("run_start"), str
        ):
            with self._lock:
                known = self._descriptors if kind == "descriptor" else self._resources
                known[doc["uid"]] = doc["run_start"]

    # -- routes: every read of a run or a descriptor is checked first ----------------------

    def _on_run(self, run_uid: str, call: Callable[[DocumentStore], T], what: str) -> T:
        self._check(run_uid)  # on every read: a revoked grant takes effect at once
        return call(self.store)

    def _on_descriptor(
        self, descriptor_uid: str, call: Callable[[DocumentStore], T], what: str
    ) -> T:
        self._check_descriptor(descriptor_uid)
        return call(self.store)

    def asset_reader(self, run_uid: str, **options: Any) -> Any:
        """The reader of the store behind, confined to this guard's asset roots whatever the
        catalog's options say."""
        options = {**options, "asset_roots": self.asset_roots}
        return self._on_run(
            run_uid, lambda s: s.asset_reader(run_uid, **options), f"assets of {run_uid}"
        )

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return self._shown(self.store.runs(self._filter(query), sort=sort, skip=skip, limit=limit))

    def count(self, query: Query | None = None) -> int:
        return self.store.count(self._filter(query))

    def run(self, uid: str) -> RunRecord:
        return self._shown([self._check(uid)])[0]

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        """The run's documents, its start as :meth:`run` shows it."""
        start = self.run(run_uid).start  # checked now, not at the first document

        def shown() -> Iterator[tuple[str, dict]]:
            for kind, doc in self.store.documents(run_uid):
                yield kind, (start if kind == "start" else doc)

        return shown()

    # -- annotations: the run must be visible, and only visible annotations show -----------

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run this principal may see (RunNotFound for a run they may
        not see)."""
        viewer = self.viewer
        return [a for a in super().annotations(run_uid) if visible(a, viewer)]

    def annotation_history(self, run_uid: str) -> list[dict]:
        """The changes of the annotations of a run this principal may see."""
        viewer = self.viewer
        return [e for e in super().annotation_history(run_uid) if visible(e["after"], viewer)]

    def change_annotation(self, run_uid: str, change: Any) -> dict:
        """Apply a change as this principal: its author is the principal (whatever it says),
        the run must be one they may see, and an existing annotation one they may see; a
        proposal annotation is shared with the proposals the run's start names."""
        from intake_broker.errors import BadAnnotation
        from intake_broker.store.annotations import _labels, check_change, finish_change

        record = self._check(run_uid)
        change = check_change(change)
        change["author"] = self.principal.name
        change["viewer"] = self.viewer.encode()
        key = getattr(self.policy, "proposal_key", "proposal")
        if change["visibility"] == "proposal":
            change["proposals"] = _labels(record.start.get(key))
            if not change["proposals"]:
                raise BadAnnotation(
                    f"run {run_uid!r} names no {key}; share the annotation with groups, make it "
                    "public or private"
                )
        else:
            change["proposals"] = []
        return super().change_annotation(run_uid, finish_change(run_uid, change))

    def descriptors(self, run_uid: str) -> list[dict]:
        found = super().descriptors(run_uid)
        with self._lock:
            self._descriptors.update({d["uid"]: run_uid for d in found})
        return found
