"""Data summaries kept beside databroker's layout, and searched with an index.

Two collections of ours in the metadatastore database (databroker does not read them):

``intake_broker_summary``
    One document per run: ``{"run_start": uid, "ready": bool, "summary": {...}}``. A run is
    not ready from its start document until its summary is first asked for after its stop (a
    search, ``store.summary(uid)``): computing it reads the run's events back, which the stop
    document must not wait for while a RunEngine records. ``set_summary`` (asset data,
    ``intake-broker summarize``) and ``index_summaries`` write it too.
``intake_broker_summary_values``
    ``{"run_start": uid, "path": "stream.field.stat", "value": number}`` for each number a
    ``summary.*`` comparison sees (:func:`intake_broker.store.summary.searchable_numbers`), indexed
    by ``(path, value)``; ``value: None`` for a number a float cannot hold exactly, and a row
    ``path: "*"`` for each run not ready.

A query whose top-level conjunction compares summary numbers is narrowed by the index to the
runs that may match, plus those the index cannot speak for: runs not ready, and runs with no
summary document at all (written by another tool; noticed when ``run_start`` holds more
documents than ``intake_broker_summary``, by MongoDB's O(1) estimated counts). The generic
evaluator then decides on those few runs, so answers are exact; a finished run's summary
computed for it is kept, so runs (ours, or a database written by databroker) become fast to
search by their data after their first such search (or at once with ``index_summaries``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection

from intake_broker.queries import Comparison, Eq, In, Query
from intake_broker.store.summary import searchable_numbers, summary_path

from .queries import conjuncts

_OPS = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
#: The path of the row marking a run the index cannot speak for yet (acquiring).
WAITING = "*"
_BATCH = 500


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _number_test(query: Query) -> tuple[str, dict] | None:
    """``(path, MongoDB condition on value)`` of a comparison with summary numbers."""
    key = getattr(query, "key", None)
    path = summary_path(key) if isinstance(key, str) else None
    if path is None:
        return None
    if isinstance(query, Comparison) and _is_number(query.value):
        return path, {_OPS[query.operator]: float(query.value)}
    values = (
        [query.value]
        if isinstance(query, Eq)
        else (list(query.values) if isinstance(query, In) else [])
    )
    if values and all(_is_number(v) for v in values):
        return path, {"$in": [float(v) for v in values]}
    return None


class Summaries:
    """The two summary collections of one metadatastore database."""

    def __init__(self, summaries: Collection, values: Collection, starts: Collection):
        self.summaries = summaries
        self.values = values
        self.starts = starts

    def started(self, run_uid: str) -> None:
        """A run began: its summary is not known until it stops."""
        self._mark_waiting([run_uid])

    def _mark_waiting(self, uids: list[str]) -> None:
        self.summaries.bulk_write(
            [
                UpdateOne(
                    {"run_start": uid},
                    {"$set": {"ready": False}, "$setOnInsert": {"summary": None}},
                    upsert=True,
                )
                for uid in uids
            ]
        )
        self.values.bulk_write(
            [
                UpdateOne(
                    {"run_start": uid, "path": WAITING}, {"$set": {"value": None}}, upsert=True
                )
                for uid in uids
            ]
        )

    def write(self, summaries: dict[str, dict], *, ready: bool = True) -> None:
        """Keep the summaries of runs (by run uid; ``ready``: the runs are finished) and index
        their numbers. The runs are marked waiting until the last step, so that an
        interrupted write leaves them to the evaluator."""
        uids = list(summaries)
        for i in range(0, len(uids), _BATCH):
            some = uids[i : i + _BATCH]
            self._mark_waiting(some)
            self.values.delete_many({"run_start": {"$in": some}, "path": {"$ne": WAITING}})
        rows = [
            {"run_start": uid, "path": path, "value": value}
            for uid, summary in summaries.items()
            for path, value in searchable_numbers(summary)
        ]
        if rows and ready:
            self.values.insert_many(rows, ordered=False)
        for i in range(0, len(uids), _BATCH):
            some = uids[i : i + _BATCH]
            self.summaries.bulk_write(
                [
                    UpdateOne(
                        {"run_start": uid}, {"$set": {"ready": ready, "summary": summaries[uid]}}
                    )
                    for uid in some
                ]
            )
            if ready:
                self.values.delete_many({"run_start": {"$in": some}, "path": WAITING})

    def stored(self, uids: Iterable[str]) -> dict[str, tuple[bool, dict | None]]:
        """``(ready, summary)`` of these runs, by run uid (a summary not ready holds only what
        ``set_summary`` was given while the run was acquiring)."""
        uids = list(uids)
        found: dict[str, tuple[bool, dict | None]] = {}
        for i in range(0, len(uids), _BATCH):
            for doc in self.summaries.find(
                {"run_start": {"$in": uids[i : i + _BATCH]}}, {"_id": 0}
            ):
                found[doc["run_start"]] = (doc.get("ready", False), doc.get("summary"))
        return found

    def candidates(self, query: Query | None) -> set[str] | None:
        """The runs that may match the summary comparisons of ``query``'s top-level
        conjunction (a superset of its matches), or None when it has none to narrow by."""
        tests: dict[str, list[dict]] = {}
        for part in conjuncts(query):
            found = _number_test(part)
            if found is not None:
                tests.setdefault(found[0], []).append(found[1])
        if not tests:
            return None
        keep: set[str] | None = None
        for path, conditions in tests.items():
            merged = {op: bound for c in conditions for op, bound in c.items()}
            if len(merged) == sum(map(len, conditions)):  # bounds of one range
                where = {"path": path, "value": merged}
            else:  # an operator twice: every condition apart
                where = {"path": path, "$and": [{"value": c} for c in conditions]}
            # with the numbers the index cannot compare exactly (value None)
            uids = self._runs_where(where) | self._runs_where({"path": path, "value": None})
            keep = uids if keep is None else keep & uids
        return (keep or set()) | self._runs_where({"path": WAITING}) | self._unlisted()

    def _runs_where(self, where: dict) -> set[str]:
        # one equality on path per query: simple servers scan the collection for an $in
        return {d["run_start"] for d in self.values.find(where, {"_id": 0, "run_start": 1})}

    def _unlisted(self) -> set[str]:
        """Runs with no summary document (written by another tool), found when the run count
        exceeds the summary count (estimated counts: metadata MongoDB keeps, O(1))."""
        if self.summaries.estimated_document_count() >= self.starts.estimated_document_count():
            return set()
        kept = set(self.summaries.distinct("run_start"))
        return {uid for uid in self.starts.distinct("uid") if uid not in kept}
