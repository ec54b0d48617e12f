"""Federation: one catalog over the runs of many stores, answering even when some are down.

``FederatedStore`` is a :class:`~intake_broker.store.DocumentStore` over named member stores
(or member catalogs, whose filters it keeps). Listing, counting and lookups ask every member in
parallel, each on a daemon thread, and wait at most ``timeout`` seconds; the answers are merged
in the requested order (newest first by default), and a run held by several members (a mirror)
appears once, with ``RunRecord.origin`` -- shown as ``run.metadata["origin"]`` -- naming every
member that holds it. A member that fails or does not answer in time is reported with a
:class:`MemberUnavailableWarning` and left out: the result is *partial*, and
:attr:`FederatedStore.partial_members` names what is missing. A member still busy with a
request that timed out is not asked again until that request ends, so a hung server costs one
timeout, not one per call; a timed-out thread is never waited for, and being a daemon it never
holds up the interpreter's exit.

Reads of one run (descriptors, events, documents, assets) go to the first member holding it
that answers, and to the next one if it fails. Event reads have no timeout: large reads may
legitimately take long.

``FederatedCatalog`` (intake driver ``bluesky-federation-catalog``) is a
:class:`~intake_broker.views.catalog.BrokerCatalog` over a ``FederatedStore``; ``cat[-1]``,
``cat[uid]``, ``cat.search(...)`` and the rest come from the core. Its members are named in
YAML; see :mod:`intake_broker.federation.members`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, wait
from types import FrameType
from typing import Any, TypeVar

from intake_broker.errors import (
    BadQuery,
    BrokerError,
    DescriptorNotFound,
    ReadOnlyStore,
    RunNotFound,
)
from intake_broker.federation.members import Member
from intake_broker.queries import Query
from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord
from intake_broker.store.planning import select_runs
from intake_broker.store.wrapper import StoreWrapper
from intake_broker.views.catalog import BrokerCatalog, Run

T = TypeVar("T")

#: How many run uids and descriptor uids a federation remembers the members of.
_REMEMBER = 100_000


class MemberUnavailableWarning(UserWarning):
    """A member of a federation failed or did not answer in time; results are partial."""


class MembersUnavailable(BrokerError, ConnectionError):
    """No member of a federation answered (or none that holds the run asked for)."""


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _warn(message: str) -> None:
    """Warn, pointing at the first caller outside intake_broker (the user's line)."""
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, MemberUnavailableWarning, stacklevel=level)


class FederatedStore(StoreWrapper):
    """The runs of several member stores as one read-only store.

    Parameters
    ----------
    members : mapping of str to DocumentStore, BrokerCatalog or callable
        The members by name, in order of preference for reading a run several hold.
    timeout : float or None
        Seconds to wait for each member's answer to a listing, count or lookup (None: wait
        as long as it takes).
    exact_count_limit : int
        :meth:`count` removes mirrored runs by fetching the uids of the matching runs when the
        members hold at most this many together; above it, the count is the sum of the
        members' counts (a mirrored run counted once per member) and
        :attr:`count_exact` is False.
    name : str
        How warnings name the federation.

    Notes
    -----
    ``partial_members`` and ``member_errors`` describe the most recent listing, count or
    lookup made **by the calling thread** (each thread sees its own), so concurrent callers
    do not see each other's outcome.
    """

    writable = False
    validate = True

    def __init__(
        self,
        members: Mapping[str, Any],
        *,
        timeout: float | None = 10.0,
        exact_count_limit: int = 10_000,
        name: str = "federation",
    ):
        if not members:
            raise BrokerError(f"federation {name!r} has no members; give at least one store")
        self.members = {n: m if isinstance(m, Member) else Member(n, m) for n, m in members.items()}
        self.timeout = timeout
        self.exact_count_limit = exact_count_limit
        self.name = name
        #: Members left out when the federation was made, with why (e.g. a missing driver).
        self.skipped_members: dict[str, str] = {}
        self._holders: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._descriptor_holders: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._busy: dict[str, Future] = {}
        self._frontier: OrderedDict[Any, tuple[float, dict[str, int]]] = OrderedDict()

    def __getstate__(self) -> dict:
        # the uid -> member caches stay behind (a pickled run must stay small); a copy finds
        # holders again by asking the members
        skip = {"_lock", "_local", "_busy", "_frontier", "_holders", "_descriptor_holders"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._holders, self._descriptor_holders = OrderedDict(), OrderedDict()
        self._init_runtime()

    # -- the outcome of the last call -------------------------------------------------------

    @property
    def partial_members(self) -> tuple[str, ...]:
        """Members that failed or timed out in this thread's most recent listing call."""
        return tuple(getattr(self._local, "errors", {}))

    @property
    def member_errors(self) -> dict[str, str]:
        """Why each of :attr:`partial_members` is missing."""
        return dict(getattr(self._local, "errors", {}))

    @property
    def partial(self) -> bool:
        """Whether this thread's most recent listing call lacks some members' answers."""
        return bool(getattr(self._local, "errors", {}))

    @property
    def count_exact(self) -> bool:
        """Whether this thread's most recent :meth:`count` removed every mirrored run."""
        return getattr(self._local, "count_exact", True)

    # -- asking members in parallel ---------------------------------------------------------

    def _work(self, future: Future, member: Member, call: Callable[[Member], Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call(member))
        except BaseException as err:  # delivered to the caller, never raised on this thread
            future.set_exception(err)
        finally:
            with self._lock:
                if self._busy.get(member.name) is future:
                    del self._busy[member.name]

    def _ask(
        self, names: Sequence[str], call: Callable[[Member], Any]
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        """``call(member)`` for each named member at once: (answers, errors) by name.

        A member that does not answer within the timeout gets a ``TimeoutError``; its thread
        is left to finish on its own, and the member is not asked again until it does.
        """
        answers: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        futures: dict[Future, str] = {}
        for name in names:
            with self._lock:
                busy = self._busy.get(name)
            if busy is not None and not busy.done():
                errors[name] = TimeoutError(
                    "still busy with an earlier request that did not "
                    f"answer within {self.timeout:g} s"
                )
                continue
            future: Future = Future()
            thread = threading.Thread(
                target=self._work,
                args=(future, self.members[name], call),
                name=f"federation-{name}",
                daemon=True,
            )
            thread.start()
            futures[future] = name
        wait(futures, timeout=self.timeout)
        for future, name in futures.items():
            with self._lock:
                if not future.done():
                    self._busy[name] = future
                    errors[name] = TimeoutError(f"no answer within {self.timeout:g} s")
                    continue
            err = future.exception()
            if err is None:
                answers[name] = future.result()
            elif isinstance(err, BadQuery):
                raise err  # the question is wrong, not the member
            else:
                errors[name] = err
        return answers, errors

    def _report(self, answers: dict, errors: dict[str, BaseException], what: str) -> None:
        self._local.errors = {n: _describe(e) for n, e in errors.items()}
        if not errors:
            return
        details = "; ".join(f"{n}: {_describe(e)}" for n, e in errors.items())
        if not answers:
            raise MembersUnavailable(
                f"federation {self.name!r}: no member answered ({what}): {details}"
            )
        _warn(
            f"federation {self.name!r}: {len(errors)} of {len(self.members)} members did not "
            f"answer ({what}), results are partial: {details}"
        )

    # -- which runs -------------------------------------------------------------------------

    def _merge(self, answers: dict[str, list[RunRecord]]) -> list[RunRecord]:
        merged: dict[str, RunRecord] = {}
        holders: dict[str, list[str]] = {}
        for name in self.members:
            for record in answers.get(name, ()):
                origin = tuple(f"{name}/{o}" for o in record.origin) if record.origin else (name,)
                have = merged.get(record.uid)
                if have is None:
                    merged[record.uid] = RunRecord(record.start, record.stop, origin)
                    holders[record.uid] = [name]
                else:  # a mirror: keep the complete copy, list every origin
                    best = have if have.stop is not None or record.stop is None else record
                    merged[record.uid] = RunRecord(best.start, best.stop, have.origin + origin)
                    holders[record.uid].append(name)
        with self._lock:
            for uid, names in holders.items():
                self._remember(self._holders, uid, tuple(names))
        return list(merged.values())

    @staticmethod
    def _remember(cache: OrderedDict, key: str, value: tuple[str, ...]) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > _REMEMBER:
            cache.popitem(last=False)

    def _frontier_key(self, query: Query | None, sort: tuple, position: int) -> Any:
        try:
            key = (query, sort, position)
            hash(key)
        except TypeError:
            return None
        return key

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs of every member, merged in ``sort`` order, a mirrored run once.

        Each member is asked for its first ``skip + limit`` runs, which is enough: a run's
        position in one member is never after its position in the merged list. When the page
        follows one this federation served (iterating a catalog), members are asked only for
        the runs after those already served.
        """
        sort = tuple((str(k), int(d)) for k, d in sort)
        names = list(self.members)
        key = self._frontier_key(query, sort, skip) if limit is not None and skip else None
        offsets = None
        if key is not None:
            with self._lock:
                found = self._frontier.get(key)
            if (
                found is not None
                and time.monotonic() - found[0] < 60
                and set(found[1]) == set(names)
            ):
                offsets = found[1]
        if offsets is not None:
            base, served_before = 0, offsets
            answers, errors = self._ask(
                names, lambda m: m.runs(query, sort=sort, skip=served_before[m.name], limit=limit)
            )
        else:
            base, offsets = skip, dict.fromkeys(names, 0)
            answers, errors = self._ask(
                names,
                lambda m: m.runs(query, sort=sort, limit=None if limit is None else skip + limit),
            )
        self._report(answers, errors, "listing runs")
        merged = self._merge(answers)
        top = select_runs(merged, None, sort, 0, None if limit is None else base + limit)
        if limit is not None and not errors:
            served = {r.uid for r in top}
            after = {n: offsets[n] + sum(r.uid in served for r in answers[n]) for n in names}
            end = self._frontier_key(query, sort, skip + limit)
            if end is not None:
                with self._lock:
                    self._frontier[end] = (time.monotonic(), after)
                    while len(self._frontier) > 64:
                        self._frontier.popitem(last=False)
        return top[base:]

    def count(self, query: Query | None = None) -> int:
        """How many distinct runs match: exact (mirrors counted once) up to
        ``exact_count_limit`` runs in all members together, the members' sum above it."""
        answers, errors = self._ask(list(self.members), lambda m: m.count(query))
        self._report(answers, errors, "counting runs")
        self._local.count_exact = True
        holding = [n for n, c in answers.items() if c]
        total = sum(answers.values())
        if len(holding) <= 1:
            return total
        if total > self.exact_count_limit:
            self._local.count_exact = False
            return total
        uids, more = self._ask(holding, lambda m: [r.uid for r in m.runs(query)])
        self._report(uids, {**errors, **more}, "counting runs")
        distinct = set().union(*uids.values())
        return len(distinct) + sum(answers[n] for n in more)

    def run(self, uid: str) -> RunRecord:
        answers, errors = self._ask(list(self.members), lambda m: m.find(uid))
        self._report(answers, errors, f"looking up run {uid}")
        found = {n: [r] for n, r in answers.items() if r is not None}
        if not found:
            missing = f" ({', '.join(errors)} did not answer)" if errors else ""
            raise RunNotFound(f"no run with uid {uid!r} in federation {self.name!r}{missing}")
        return self._merge(found)[0]

    # -- what is in a run: the first member holding it that answers ---------------------------

    def _holders_of(self, run_uid: str) -> tuple[str, ...]:
        with self._lock:
            holders = self._holders.get(run_uid)
        if holders is None:
            self.run(run_uid)
            with self._lock:
                holders = self._holders.get(run_uid, ())
        return holders

    def _from_holders(
        self, holders: Sequence[str], call: Callable[[Member], Any], what: str, timeout: bool = True
    ) -> tuple[str, Any]:
        """The answer of the first of ``holders`` that gives one; a failing holder is
        reported and the next one asked. ``timeout=False`` calls on this thread, unbounded."""
        errors: dict[str, BaseException] = {}
        not_found: KeyError | None = None
        for name in holders:
            if timeout:
                answers, failed = self._ask([name], call)
                if name in answers:
                    found = name, answers[name]
                    break
                err = failed[name]
            else:
                try:
                    found = name, call(self.members[name])
                    break
                except Exception as caught:
                    err = caught
            if isinstance(err, KeyError):
                not_found = err
            else:
                errors[name] = err
        else:
            if errors:
                details = "; ".join(f"{n}: {_describe(e)}" for n, e in errors.items())
                raise MembersUnavailable(
                    f"federation {self.name!r}: no member holding it answered ({what}): {details}"
                )
            raise not_found or KeyError(f"{what}: no member of federation {self.name!r} holds it")
        if errors:
            details = "; ".join(f"{n}: {_describe(e)}" for n, e in errors.items())
            _warn(f"federation {self.name!r}: read {what} from {found[0]!r} because {details}")
        return found

    def descriptors(self, run_uid: str) -> list[dict]:
        holders = self._holders_of(run_uid)
        name, found = self._from_holders(
            holders, lambda m: m.open().descriptors(run_uid), f"descriptors of run {run_uid}"
        )
        order = (name, *(h for h in holders if h != name))
        with self._lock:
            for descriptor in found:
                self._remember(self._descriptor_holders, descriptor["uid"], order)
        return found

    def _descriptor_members(self, descriptor_uid: str) -> tuple[str, ...]:
        with self._lock:
            return self._descriptor_holders.get(descriptor_uid) or tuple(self.members)

    # -- routes: a run's (a descriptor's) questions go to the first holder that answers ------

    def _on_run(self, run_uid: str, call: Callable[[DocumentStore], T], what: str) -> T:
        return self._from_holders(
            self._holders_of(run_uid), lambda m: call(m.open()), what, timeout=False
        )[1]

    def _on_descriptor(
        self, descriptor_uid: str, call: Callable[[DocumentStore], T], what: str
    ) -> T:
        return self._from_holders(
            self._descriptor_members(descriptor_uid), lambda m: call(m.open()), what, timeout=False
        )[1]

    def supports(self, ability: type) -> bool:
        """A federation is read-only and keeps no index of its own: no optional ability but
        annotations, which follow each run to the member holding it (a member without the
        ability refuses with NotSupported), and the descriptor index, asked of each member
        that has one (:meth:`descriptor_run`)."""
        from intake_broker.store.abilities import Annotations, DescriptorIndex

        return ability is Annotations or ability is DescriptorIndex

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The run holding ``descriptor_uid``: the members that listed it first, then every
        member with a descriptor index, in order (``DescriptorNotFound`` when none holds it,
        ``MembersUnavailable`` when none holding it answered). What lets a service over a
        federation answer an event read on a worker that never listed the run."""
        from intake_broker.store.abilities import DescriptorIndex

        with self._lock:
            known = self._descriptor_holders.get(descriptor_uid, ())
        order = (*known, *(n for n in self.members if n not in known))

        def ask(member: Member) -> str:
            store = member.open()
            if not store.supports(DescriptorIndex):
                raise DescriptorNotFound(f"member {member.name!r} has no descriptor index")
            return store.descriptor_run(descriptor_uid)  # type: ignore[attr-defined]

        try:
            name, run_uid = self._from_holders(
                order, ask, f"run of descriptor {descriptor_uid}", timeout=False
            )
        except KeyError:  # DescriptorNotFound is one
            raise DescriptorNotFound(
                f"no member of federation {self.name!r} holds descriptor {descriptor_uid!r}"
            ) from None
        with self._lock:
            if descriptor_uid not in self._descriptor_holders:
                self._remember(self._descriptor_holders, descriptor_uid, (name,))
        return run_uid

    def put(self, kind: str, doc: dict) -> None:
        raise ReadOnlyStore(
            f"federation {self.name!r} is read-only; insert into one of its members instead"
        )

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        def first(member: Member) -> tuple[Iterator, Any]:
            documents = iter(member.open().documents(run_uid))
            return documents, next(documents)

        _, (rest, head) = self._from_holders(
            self._holders_of(run_uid), first, f"documents of run {run_uid}", timeout=False
        )
        yield head
        yield from rest

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        # read whole inside the route, so a failing holder is passed over, not raised later
        return iter(self._on_run(run_uid, lambda s: list(s.datum_pages(run_uid)), "datums"))

    def member_of(self, record: RunRecord) -> Member:
        """The member a run is read from (the first of its holders)."""
        holders = self._holders_of(record.uid)
        return self.members[holders[0]] if holders else next(iter(self.members.values()))

    def close(self) -> None:
        """Close the opened members, in parallel and under the timeout (a hung member is
        left to its daemon thread)."""
        opened = [name for name, member in self.members.items() if member.store is not None]

        def close(member: Member) -> None:
            if member.store is not None:  # (it is: only opened members are asked)
                member.store.close()

        if opened:
            self._ask(opened, close)


class FederatedCatalog(BrokerCatalog):
    """The runs of several catalogs as one catalog; intake driver ``bluesky-federation-catalog``.

    Parameters
    ----------
    members : list or mapping
        The members: YAML catalog files (``nsls2.yml``: every store entry of it, named
        ``nsls2/<entry>``), entries of them (``nsls2.yml#csx``), names found by
        :mod:`intake_broker.catalogs.discovery` (``csx``), mappings (``{catalog: file.yml,
        entry: csx, name: CSX}`` or an inline ``{name: scratch, driver: ..., args: ...}``), or
        catalogs and stores. A mapping of name to any of these names them. Relative paths are
        relative to the YAML file's folder (``metadata["catalog_dir"]``, which intake passes).
    timeout : float or None
        Seconds to wait for each member (see :class:`FederatedStore`).
    exact_count_limit : int
        See :class:`FederatedStore`.
    handler_registry, root_map, asset_storage_options
        Asset options for every member; a member catalog's own options take precedence.
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``, ``name``, ...).
    """

    merges_members = True
    _store: FederatedStore

    #: Members are resolved by the federation itself (a name is not a path).
    path_arguments: tuple[str, ...] = ()

    def __init__(
        self,
        members: Sequence[str | Mapping[str, Any]] | Mapping[str, Any],
        *,
        timeout: float | None = 10.0,
        exact_count_limit: int = 10_000,
        metadata: Mapping[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        from intake_broker.federation.members import resolve_members

        metadata = dict(metadata or {})
        resolved = resolve_members(members, metadata.get("catalog_dir"))
        store = FederatedStore(
            {m.name: m.source for m in resolved.members},
            timeout=timeout,
            exact_count_limit=exact_count_limit,
            name=name or "federation",
        )
        store.skipped_members = dict(resolved.skipped)
        for member, why in resolved.skipped.items():
            _warn(f"federation {name or 'federation'!r}: member {member!r} is left out: {why}")
        metadata["members"] = list(store.members)
        super().__init__(store, metadata=metadata, name=name or "federation", **kwargs)

    @property
    def name(self) -> str:
        return self.__dict__.get("_name") or "federation"

    @name.setter
    def name(self, value: str) -> None:
        # intake names a source after it is made; the store's warnings use the first name
        self.__dict__["_name"] = value
        store = self.__dict__.get("_store")
        if isinstance(store, FederatedStore) and value and store.name == "federation":
            store.name = value

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        name = state.pop("name", None)
        super().__setstate__(state)
        if name is not None:
            self.name = name

    @classmethod
    def check_catalog_entry(cls, spec: Any, name: str, chain: tuple) -> None:
        """Check a YAML entry's members without opening them: files and entries exist,
        no federation contains itself (a cycle is an error naming the chain)."""
        from intake_broker.federation.members import check_members

        check_members(spec, name, chain)

    @property
    def partial(self) -> bool:
        """Whether the most recent listing, count or lookup (in this thread) lacked members."""
        return self._store.partial

    @property
    def partial_members(self) -> tuple[str, ...]:
        """The members missing from the most recent listing, count or lookup (this thread)."""
        return self._store.partial_members

    def _make_run(self, record: RunRecord) -> Run:
        member = self._store.member_of(record)
        assets = {}
        for key, value in (getattr(self, "_assets", None) or {}).items():
            own = member.assets.get(key)
            assets[key] = {**value, **own} if isinstance(value, dict) and own else value
        return Run(self._store, record, assets=assets, timezone=self.metadata.get("timezone"))
