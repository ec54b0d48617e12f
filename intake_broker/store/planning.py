"""Query planning helpers: answering a query over run records in memory with the generic
evaluator (:func:`select_runs`, :func:`run_matches`), splitting a query into what a run index
answers and the rest (:func:`split_for_index`), and keeping recent answers of stores that search
in Python (:class:`RecentMatches`)."""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from intake_broker import deadline
from intake_broker.queries import And, Query, documents_needed, evaluate, resolve_key
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
