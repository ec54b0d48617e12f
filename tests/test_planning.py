"""The core's query planner (``store.planning.plan_runs`` / ``plan_count``) over the answers a
:class:`QueryIndex` may give: sure or unsure candidates, sorted or not, paged or not, with
parts fetched by the store or not. Whatever the store answers, the planner must return what
the generic evaluator returns (the conformance data of ``QueryTests``, 200 runs, every case).

The stores here are memory stores whose "index" answers from the memory store's own search
and then deliberately weakens its answer (decoys flagged unsure, matches flagged unsure, the
order dropped), so that each branch of the planner is exercised on real documents; the native
and mongo stores run the same cases through ``QueryTests``.
"""

from __future__ import annotations

import random

import pytest

from intake_broker import MemoryStore
from intake_broker.access import GuardedStore, Principal, ProposalPolicy
from intake_broker.errors import NotSupported
from intake_broker.queries import And, Comparison, Eq, Query, documents_needed
from intake_broker.store import Candidates, plan_count, plan_runs, split_for_index
from intake_broker.store.abilities import QueryIndex, abilities
from intake_broker.testing.queries import CASES, expected_uids, generate_runs, reference_records


class IndexedMemory(MemoryStore):
    """A memory store with a toy run index over start and stop documents.

    ``sure``: flag the matches sure (else every candidate is unsure); ``decoys``: add runs
    that do not match, flagged unsure; ``ordered``: keep the order asked; ``page``: page exact
    answers itself.
    """

    def __init__(self, *, sure=True, decoys=False, ordered=True, page=True, parts=False):
        super().__init__(validate=False)
        self.sure, self.decoys, self.ordered, self.page = sure, decoys, ordered, page
        self.parts = parts
        self.asked: list[tuple] = []
        self.streams: list[Stream] = []
        self.parts_asked: list[str] = []

    def runs(self, query=None, *, sort=(("time", -1),), skip=0, limit=None):
        return plan_runs(self, query, sort, skip, limit)

    def count(self, query=None):
        return plan_count(self, query)

    def index_documents(self):
        return frozenset({"start", "stop"})

    def _answer(self, query: Query | None, sort) -> list[tuple]:
        assert query is None or documents_needed(query) <= {"start", "stop"}
        matches = MemoryStore.runs(self, query, sort=sort)
        found = [(r, self.sure) for r in matches]
        if self.decoys:  # every third run that does not match, to be evaluated away
            uids = {r.uid for r in matches}
            others = [r for r in MemoryStore.runs(self, None, sort=sort) if r.uid not in uids]
            found += [(r, False) for r in others[::3]]
            if self.ordered:  # decoys in their place among the matches
                order = {r.uid: i for i, r in enumerate(MemoryStore.runs(self, None, sort=sort))}
                found.sort(key=lambda pair: order[pair[0].uid])
        if not self.ordered:
            random.Random(len(found)).shuffle(found)
        return found

    def index_runs(self, query, *, sort, skip, limit):
        self.asked.append(("runs", query, tuple(sort), skip, limit))
        found = self._answer(query, sort)
        exact = self.sure and not self.decoys and self.ordered
        if exact and self.page:
            stop = None if limit is None else skip + limit
            return Candidates(found[skip:stop], paged=True)
        stream = Stream(found)
        self.streams.append(stream)
        return Candidates(stream, ordered=self.ordered, parts=self if self.parts else None)

    def index_count(self, query):
        self.asked.append(("count", query))
        found = self._answer(query, ())
        counted = sum(sure for _, sure in found)
        return Candidates([(r, s) for r, s in found if not s], counted=counted)

    def record_parts(self, run_uid, parts):
        self.parts_asked.append(run_uid)
        return super().record_parts(run_uid, parts)


class Stream:
    """Candidates as a store streams them from a cursor: counts what was read, and closes."""

    def __init__(self, items):
        self.items, self.read, self.closed = iter(items), 0, False

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.items)
        self.read += 1
        return item

    def close(self):
        self.closed = True


MODES = {
    "exact, paged by the store": {},
    "sure, not paged": {"page": False},
    "every candidate unsure": {"sure": False},
    "unsure decoys among sure matches": {"decoys": True},
    "unordered, with decoys": {"ordered": False, "decoys": True},
    "unordered, unsure, store's parts": {"ordered": False, "sure": False, "parts": True},
}


@pytest.fixture(scope="module")
def runs():
    return generate_runs()


@pytest.fixture(scope="module")
def records(runs):
    return reference_records(runs)


@pytest.fixture(scope="module", params=list(MODES))
def store(request, runs):
    store = IndexedMemory(**MODES[request.param])
    for docs in runs:
        for name, doc in docs:
            store.insert(name, doc)
    return store


@pytest.mark.parametrize("name", list(CASES))
def test_the_planner_answers_as_the_evaluator(store, records, name):
    query = CASES[name]
    expected = expected_uids(records, query)
    assert [r.uid for r in store.runs(query)] == expected
    assert store.count(query) == len(expected)
    assert [r.uid for r in store.runs(query, skip=1, limit=3)] == expected[1:4]
    ascending = [r.uid for r in store.runs(query, sort=[("scan_id", 1)])]
    assert ascending == [r.uid for r in MemoryStore.runs(store, query, sort=[("scan_id", 1)])]
    assert all(s.closed for s in store.streams)  # every cursor released, read to the end or not


def test_the_index_is_asked_once_with_its_part_and_the_page_when_nothing_is_left():
    store = IndexedMemory()
    for docs in generate_runs(40):
        for name, doc in docs:
            store.insert(name, doc)
    plan = Eq("plan_name", "scan")
    store.runs(plan, skip=2, limit=5)
    assert store.asked == [("runs", plan, (("time", -1),), 2, 5)]
    store.asked.clear()
    on_descriptors = Eq("descriptors.name", "baseline")
    store.runs(plan & on_descriptors, skip=2, limit=5)  # the rest is the planner's: no paging
    assert store.asked == [("runs", plan, (("time", -1),), 0, None)]
    store.asked.clear()
    assert store.count(plan & on_descriptors) == len(MemoryStore.runs(store, plan & on_descriptors))
    assert [a[:2] for a in store.asked] == [("runs", plan)]
    store.asked.clear()
    store.count(plan)
    assert store.asked == [("count", plan)]


def test_an_ordered_stream_is_read_only_to_the_end_of_the_page():
    store = IndexedMemory(page=False)
    for docs in generate_runs(60):
        for name, doc in docs:
            store.insert(name, doc)
    found = store.runs(None, skip=4, limit=3)
    assert [r.uid for r in found] == [r.uid for r in MemoryStore.runs(store, None)][4:7]
    assert store.streams[-1].read == 7 and store.streams[-1].closed


def test_the_rest_is_evaluated_on_the_candidates_only_with_the_stores_parts():
    store = IndexedMemory(ordered=False, sure=False, parts=True)
    for docs in generate_runs(40):
        for name, doc in docs:
            store.insert(name, doc)
    narrow = Comparison("ge", "scan_id", 4010)
    query = narrow & Eq("descriptors.name", "baseline")
    index_part, rest = split_for_index(query, store.index_documents())
    assert index_part == narrow and rest is not None
    expected = [r.uid for r in MemoryStore.runs(store, query)]
    candidates = {r.uid for r in MemoryStore.runs(store, narrow)}
    assert 0 < len(expected) < len(candidates) < 40
    store.parts_asked.clear()
    assert [r.uid for r in store.runs(query)] == expected
    assert set(store.parts_asked) == candidates  # each candidate's descriptors, no other run's


def test_a_candidate_listing_of_an_unknown_shape_still_pages(records):
    """A store may answer with a plain list, unordered and unsure, for a query it cannot
    translate at all: the planner evaluates, sorts and pages."""
    store = IndexedMemory(ordered=False, sure=False)
    for docs in generate_runs():
        for name, doc in docs:
            store.insert(name, doc)
    query = And((CASES["or"], CASES["time range"]))
    expected = expected_uids(records, query)
    assert [r.uid for r in store.runs(query, skip=2, limit=4)] == expected[2:6]


def test_wrappers_do_not_expose_the_index_behind_them():
    store = IndexedMemory()
    for docs in generate_runs(20):
        for name, doc in docs:
            store.insert(name, doc)
    assert "QueryIndex" in abilities(store) and store.supports(QueryIndex)
    guarded = GuardedStore(store, ProposalPolicy(), Principal("alice", proposals={"p-1"}))
    assert not guarded.supports(QueryIndex) and "QueryIndex" not in abilities(guarded)
    with pytest.raises(NotSupported, match="QueryIndex"):
        plan_runs(guarded, None)
    with pytest.raises(NotSupported, match="QueryIndex"):
        plan_count(MemoryStore(), None)
