"""Query planning: the one planner of stores with an index, and the helpers of stores without.

A store with a run index (:class:`~intake_broker.store.abilities.QueryIndex`: native, mongo)
answers ``runs``/``count`` with :func:`plan_runs` / :func:`plan_count`: the planner splits the
query into what the index answers (:func:`split_for_index`) and the rest, asks the store once for
the candidates of the first part (:class:`Candidates`, each sure or to be checked), evaluates the
unsure ones and the rest with the generic evaluator (:func:`run_matches`), sorts in Python only
when the store could not, and pages. A store without an index answers over run records in
memory with :func:`select_runs`, keeping recent answers in :class:`RecentMatches`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from intake_broker import deadline
from intake_broker.queries import And, Query, documents_needed, evaluate, resolve_key
from intake_broker.store.abilities import QueryIndex, require
from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord

# -- helpers for stores that evaluate queries in memory ------------------------------------


def _sort_value(record: Mapping[str, Any], path: tuple[str, ...]) -> tuple:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return (0, 0)  # missing sorts first ascending, last descending
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return (1, str(value))
    return (2, value) if isinstance(value, int | float) else (3, value)


def split_for_index(
    query: Query | None, indexed: frozenset[str] = frozenset({"start", "stop"})
) -> tuple[Query | None, Query | None]:
    """``(index_part, rest)``: the part of a query on the ``indexed`` documents (by default start
    and stop: what a run index answers natively) and the rest, e.g. ``descriptors.*`` (None if
    nothing is left).

    A store answers ``rest`` with :func:`select_runs` (``store=self``) over the candidates of
    ``index_part``: correct for every query, fast when the index narrows the candidates.
    """
    if query is None or documents_needed(query) <= indexed:
        return query, None
    parts = query.queries if isinstance(query, And) else (query,)
    index = [q for q in parts if documents_needed(q) <= indexed]
    rest = [q for q in parts if q not in index]

    def combine(queries: list[Query]) -> Query | None:
        return None if not queries else queries[0] if len(queries) == 1 else And(tuple(queries))

    return combine(index), combine(rest)


class RecentMatches:
    """The ordered matches of the last few ``(query, sort)`` a store answered with
    :func:`select_runs`, kept while the store is unchanged.

    A catalog asks the same question several times: ``len`` then the pages of a listing, 500
    runs at a time. Without this, every page of a store that searches in Python evaluates and
    sorts every run again (a listing of 10,000 runs would cost 20 full passes). ``version`` is
    anything that changes whenever the store's runs may have (a counter of inserts, say).
    """

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict[Any, tuple[Any, list[RunRecord]]] = OrderedDict()
        self._lock = threading.Lock()

    def select(
        self,
        version: Any,
        records: Callable[[], Iterable[RunRecord]],
        query: Query | None,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int | None,
        store: DocumentStore | None = None,
    ) -> list[RunRecord]:
        """``select_runs(records(), query, sort, skip, limit, store)``, from the ordered
        matches kept for ``(query, sort)`` if the store's ``version`` is unchanged."""
        try:  # by its JSON: Eq("flag", True) == Eq("flag", 1) as objects, not as queries
            key = (
                None if query is None else json.dumps(query.encode(), sort_keys=True),
                tuple(map(tuple, sort)),
            )
        except (TypeError, ValueError):  # not representable as JSON: not kept
            return select_runs(records(), query, sort, skip, limit, store=store)
        with self._lock:
            kept = self._items.get(key)
            if kept is not None and kept[0] == version:
                self._items.move_to_end(key)
        if kept is None or kept[0] != version:
            kept = (version, select_runs(records(), query, sort, store=store))
            with self._lock:
                self._items[key] = kept
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return kept[1][skip : None if limit is None else skip + limit]


def run_matches(query: Query, record: RunRecord, store: Any, extra: set[str] | None = None) -> bool:
    """Whether the run of ``record`` matches ``query`` (the generic evaluator), with the parts
    of the run beyond its start and stop documents (``descriptors``, ``summary``) that
    ``store.record_parts`` gives; ``extra``: those parts, when already known."""
    deadline.check("the search")  # a long scan stops at the request's deadline
    if extra is None:
        extra = documents_needed(query) - {"start", "stop"}
    parts = store.record_parts(record.uid, extra) if extra else {}
    return evaluate(query, {**record.as_record(), **parts})


def select_runs(
    records: Iterable[RunRecord],
    query: Query | None,
    sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
    skip: int = 0,
    limit: int | None = None,
    store: DocumentStore | None = None,
) -> list[RunRecord]:
    """Filter, sort and page run records in memory with the generic query evaluator.

    For stores whose run index is small enough to hold in memory (the memory store, the index
    of a folder of files), and as the fallback of stores that translate queries. A query on
    ``descriptors.*`` or ``summary.*`` asks ``store`` for those parts of each candidate run.
    """
    if query is not None:
        extra = documents_needed(query) - {"start", "stop"}
        if extra and store is None:
            raise ValueError(f"select_runs needs the store to evaluate {sorted(extra)} keys")

        records = [r for r in records if run_matches(query, r, store, extra)]
    ordered = sorted(records, key=lambda r: r.uid)
    for key, direction in reversed(tuple(sort)):
        path = resolve_key(key)
        ordered.sort(key=lambda r: _sort_value(r.as_record(), path), reverse=direction < 0)
    stop = None if limit is None else skip + limit
    return list(itertools.islice(ordered, skip, stop))


# -- the planner of stores with an index ---------------------------------------------------


class PartsSource(Protocol):
    """What gives the parts of a run beyond its start and stop documents (``descriptors``,
    ``summary``) to the evaluator: a store, or what a store fetched for many runs at once."""

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        """The ``parts`` of run ``run_uid`` as a run record holds them."""
        ...


@dataclass
class Candidates:
    """A store's answer to :meth:`~intake_broker.store.abilities.QueryIndex.index_runs` (or
    ``index_count``): the runs that may match the query it was asked.

    Attributes
    ----------
    records : iterable of (RunRecord, bool)
        Each candidate run and whether the index is sure it matches (False: the generic
        evaluator decides). May be a generator: the planner stops reading it at the page's
        end and closes it, so a store may stream rows from an open cursor.
    ordered : bool
        The records come in the order asked (else the planner sorts the matches).
    paged : bool
        The store applied ``skip`` and ``limit`` itself: every record is sure and ordered.
    counted : int
        Matches counted by the index and not listed in ``records`` (``index_count``).
    parts : PartsSource or None
        Where the evaluator takes the runs' other parts from (a store may fetch those of all
        its candidates at once); None: the store's ``record_parts``.
    """

    records: Iterable[tuple[RunRecord, bool]]
    ordered: bool = True
    paged: bool = False
    counted: int = 0
    parts: PartsSource | None = None


def _matches(
    found: Candidates, query: Query | None, rest: Query | None, store: Any
) -> Generator[RunRecord, None, None]:
    """The candidates that match: the unsure ones checked against the whole ``query``, the
    sure ones against ``rest`` (what the index was not asked), in the order found."""
    source = found.parts if found.parts is not None else store
    whole = None if query is None else documents_needed(query) - {"start", "stop"}
    extra = None if rest is None else documents_needed(rest) - {"start", "stop"}
    records = iter(found.records)
    try:
        for record, sure in records:
            if sure:
                if rest is None or run_matches(rest, record, source, extra):
                    yield record
            elif query is None or run_matches(query, record, source, whole):
                yield record
    finally:  # a store streaming rows from a cursor releases it
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _index_of(store: Any) -> tuple[QueryIndex, frozenset[str]]:
    index = require(store, QueryIndex, "plan queries over a run index")
    return index, index.index_documents()


def plan_runs(
    store: Any,
    query: Query | None = None,
    sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
    skip: int = 0,
    limit: int | None = None,
) -> list[RunRecord]:
    """:meth:`DocumentStore.runs` of a store with a :class:`QueryIndex`.

    The part of ``query`` on the documents the store indexes goes down once (with the page,
    when nothing is left to evaluate here); unsure candidates and the rest (``descriptors.*``,
    say) are evaluated with :func:`run_matches`; the matches are sorted here only if the store
    could not sort them, and paged (an ordered answer is read only up to the page's end).
    """
    if limit is not None and limit <= 0:
        return []
    index, indexed = _index_of(store)
    index_part, rest = split_for_index(query, indexed)
    found = index.index_runs(
        index_part,
        sort=sort,
        skip=skip if rest is None else 0,
        limit=limit if rest is None else None,
    )
    if found.paged and rest is None:  # every candidate sure, ordered and on the page
        return [record for record, _ in found.records]
    matched = _matches(found, query, rest, store)
    if not found.ordered:
        return select_runs(matched, None, sort, skip, limit)
    stop = None if limit is None else skip + limit
    try:
        return list(itertools.islice(matched, skip, stop))
    finally:
        matched.close()


def plan_count(store: Any, query: Query | None = None) -> int:
    """:meth:`DocumentStore.count` of a store with a :class:`QueryIndex`: the matches the
    index counts, plus the candidates the evaluator confirms."""
    index, indexed = _index_of(store)
    index_part, rest = split_for_index(query, indexed)
    if rest is None:
        found = index.index_count(index_part)
    else:  # every candidate is listed, to be checked against the rest
        found = index.index_runs(index_part, sort=(), skip=0, limit=None)
    return found.counted + sum(1 for _ in _matches(found, query, rest, store))
