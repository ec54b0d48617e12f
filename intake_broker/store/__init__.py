"""The store layer: the contract every backend implements and what the core builds on it.

========================  ==================================================================
module                    what it holds
========================  ==================================================================
``contract``              :class:`DocumentStore` and its value types (``RunRecord``, ``Chunk``,
                          ``EventColumns``)
``abilities``             the optional abilities, as protocols (``store.supports(...)``)
``wrapper``               :class:`StoreWrapper`, the base of the guard and the federation
``planning``              the query planner of stores with an index (``plan_runs``); evaluating,
                          sorting and paging queries over run records in memory
``documents``             the document model: normalising and re-insert rules
``validation``            the one validation every insert passes
``memory``                :class:`MemoryStore`, the reference store
``summary``               data summaries (``summary.*`` queries)
========================  ==================================================================

The names a driver needs are importable from here: ``from intake_broker.store import
DocumentStore, RunRecord, Chunk, EventColumns, Candidates, plan_runs, select_runs``.
"""

from intake_broker.store.contract import (
    NEWEST_FIRST,
    Chunk,
    DocumentStore,
    EventColumns,
    RunRecord,
)
from intake_broker.store.planning import (
    Candidates,
    RecentMatches,
    plan_count,
    plan_runs,
    run_matches,
    select_runs,
    split_for_index,
)

__all__ = [
    "NEWEST_FIRST",
    "Candidates",
    "Chunk",
    "DocumentStore",
    "EventColumns",
    "RecentMatches",
    "RunRecord",
    "plan_count",
    "plan_runs",
    "run_matches",
    "select_runs",
    "split_for_index",
]
