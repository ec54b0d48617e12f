"""Finding runs: queries answered by ``run_start`` and ``run_stop``.

:func:`intake_broker_mongo.queries.plan` says which collection answers which part of a query;
:class:`RunFinder` runs the plan: a ``find`` on ``run_start`` (newest-first pages through
widening time windows), a semi-join through ``run_stop``, a ``$lookup`` join, or the candidates
the translatable part allows. It answers the store's
:class:`~intake_broker.store.abilities.QueryIndex` questions with
:class:`~intake_broker.store.Candidates`; the core's planner evaluates, sorts and pages the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, overload

import pymongo.errors
from pymongo.collection import Collection

from intake_broker.queries import Query
from intake_broker.store import NEWEST_FIRST, Candidates, RunRecord

from .layout import RUN_STOP
from .queries import STOP_FIELD, Plan, and_filters, flatten, plan

#: Most stop documents a stop-document filter may match for the store to fetch their runs by
#: uid; beyond that the stop documents are joined to the start documents in the server.
SEMI_JOIN_LIMIT = 20_000
#: Values per ``$in`` list: simple servers match ``$in`` in time proportional to its length.
IN_CHUNK = 64
#: Newest-first listings first look at the runs started in the last hour, then widen.
FIRST_WINDOW, MAX_WINDOW = 3600.0, 3600.0 * 24 * 365 * 200


@overload
def strip_id(doc: dict) -> dict: ...
@overload
def strip_id(doc: None) -> None: ...
@overload
def strip_id(doc: dict | None) -> dict | None: ...
def strip_id(doc: dict | None) -> dict | None:
    """``doc`` without MongoDB's ``_id``."""
    if doc is not None:
        doc.pop("_id", None)
    return doc


class RunFinder:
    """Answers ``runs`` and ``count`` from the ``run_start`` and ``run_stop`` collections.

    Parameters
    ----------
    starts, stops : pymongo.collection.Collection
        ``run_start`` and ``run_stop``.
    recent_first : bool
        Page newest-first listings through widening time windows.
    """

    def __init__(self, starts: Collection, stops: Collection, recent_first: bool = True):
        self.starts = starts
        self.stops = stops
        self.recent_first = recent_first

    def candidates(
        self,
        query: Query | None,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> Candidates:
        """What the server answers of ``query`` (start and stop keys only): a sure, sorted
        page when the plan translates it all, else candidates for the evaluator."""
        found = self._plan(query, sort)
        if found.residual is None and found.needs_join:
            return self._joined(found, skip, limit)
        if found.residual is not None:
            return self._evaluated(found)
        if found.stop_filter is not None:  # semi-join through the matching stop documents
            return self._semi_joined(found, skip, limit)
        starts = self._find_starts(found, skip, limit)
        stops = self._stops_of([s["uid"] for s in starts])
        return _sure([RunRecord(s, stops.get(s["uid"])) for s in starts], paged=True)

    def count(self, query: Query | None = None) -> Candidates:
        """How many runs match ``query`` (start and stop keys only): counted by the server
        when the plan translates it all, else candidates for the evaluator."""
        found = self._plan(query, ())
        if found.residual is None and found.needs_join:
            return self._count_joined(found)
        if found.residual is not None:
            return self._evaluated(found)
        if found.stop_filter is not None:
            stops = self._stops_matching(found.stop_filter)
            if stops is None:
                return self._count_joined(self._as_join(found))
            starts = self._starts_by_uid(found.start_filter, list(stops), {"_id": 1})
            return Candidates((), counted=len(starts))
        return Candidates((), counted=self.starts.count_documents(found.start_filter))

    def _count_joined(self, found: Plan) -> Candidates:
        try:
            result = list(self.starts.aggregate(self._join_pipeline(found) + [{"$count": "n"}]))
        except pymongo.errors.OperationFailure:  # no $lookup here: evaluate in Python
            return self._evaluated(found)
        return Candidates((), counted=result[0]["n"] if result else 0)

    def _plan(self, query: Query | None, sort: Sequence[tuple[str, int]]) -> Plan:
        return plan(query, sort)

    def _stops_matching(
        self, stop_filter: dict, since: float | None = None
    ) -> dict[str, dict] | None:
        """The stop documents matching ``stop_filter`` (and ended at ``since`` or later) by
        run_start uid; None when there are more than :data:`SEMI_JOIN_LIMIT`."""
        if since is not None:
            stop_filter = flatten({"$and": [stop_filter, {"time": {"$gte": since}}]})
        stops = list(self.stops.find(stop_filter, limit=SEMI_JOIN_LIMIT + 1))
        if len(stops) > SEMI_JOIN_LIMIT:
            return None
        return {s["run_start"]: strip_id(s) for s in stops}

    @staticmethod
    def _as_join(found: Plan) -> Plan:
        """The same plan with the stop filter matched in a server-side join."""
        found.joined_filter = and_filters([found.joined_filter or {}, found.stop_as_join or {}])
        found.stop_filter = None
        return found

    def _semi_joined(self, found: Plan, skip: int, limit: int | None) -> Candidates:
        """Runs of the matching stop documents (unsorted: the planner sorts and pages them);
        newest-first pages look at recent stops first.

        A run that started at ``t`` or later stopped at ``t`` or later, so once the runs whose
        stops ended after ``now - width`` include a page of runs that started after it, no
        other run can be on that page.
        """
        stop_filter = found.stop_filter
        assert stop_filter is not None  # candidates() semi-joins only plans with a stop filter
        wanted = None if limit is None else skip + limit
        windows = (
            self.recent_first
            and wanted is not None
            and wanted <= 10_000
            and found.sort == [("time", -1), ("uid", 1)]
            and "time" not in stop_filter
        )
        now, width, attempts = time.time(), FIRST_WINDOW, 0
        while True:  # at most three windows, then every matching stop
            since = now - width if windows and attempts < 3 else None
            attempts += 1
            stops = self._stops_matching(stop_filter, since)
            if stops is None:  # too many to list: join them in the server instead
                return self._joined(self._as_join(found), skip, limit)
            starts = self._starts_by_uid(found.start_filter, list(stops))
            records = [RunRecord(s, stops[s["uid"]]) for s in starts]
            recent = since is not None and sum(
                isinstance(t := r.start.get("time"), int | float) and t >= since for r in records
            )
            if since is None or wanted is None or recent >= wanted:  # (windows need wanted)
                return _sure(records, ordered=False)
            width *= min(64.0, max(2.0, 1.5 * wanted / max(recent, 1)))

    def _find_starts(self, found: Plan, skip: int, limit: int | None) -> list[dict]:
        """A page of start documents; newest-first pages look at recent runs first.

        A server that sorts by walking an index stops after the page either way; one that
        fetches every match before sorting (SecantusDB) is spared most of them: a time window
        ending now (or at the query's own upper time bound) widens, by the density of matches
        seen so far, until it holds the page or covers the query's whole time range.
        """
        wanted = None if limit is None else skip + limit
        bounds = time_bounds(found.start_filter.get("time"))
        keys = set(found.start_filter) - {"time"}
        narrowed = bool(keys & {"uid", "scan_id"}) or any(k.startswith("$") for k in keys)
        if (
            self.recent_first
            and wanted is not None
            and wanted <= 10_000
            and not narrowed
            and bounds is not None
            and found.sort == [("time", -1), ("uid", 1)]
        ):
            lower, upper = bounds
            anchor = min(time.time(), upper if upper is not None else math.inf)
            width = FIRST_WINDOW
            while width < MAX_WINDOW and (lower is None or anchor - width > lower):
                spec = dict(found.start_filter.get("time") or {})
                spec["$gte"] = max(anchor - width, spec.get("$gte", -math.inf))
                starts = list(
                    self.starts.find(
                        {**found.start_filter, "time": spec}, sort=found.sort, limit=wanted
                    )
                )
                if len(starts) >= wanted:
                    return [strip_id(s) for s in starts[skip:]]
                growth = 1.5 * wanted / len(starts) if starts else 16.0
                width *= min(64.0, max(2.0, growth))
        cursor = self.starts.find(found.start_filter, sort=found.sort, skip=skip, limit=limit or 0)
        return [strip_id(s) for s in cursor]

    def _starts_by_uid(
        self, start_filter: dict, uids: list[str], projection: dict | None = None
    ) -> list[dict]:
        starts: list[dict] = []
        for lo in range(0, len(uids), IN_CHUNK):
            chunk = {"uid": {"$in": uids[lo : lo + IN_CHUNK]}}
            starts += self.starts.find(flatten({"$and": [start_filter, chunk]}), projection)
        return [strip_id(s) for s in starts]

    def _stops_of(self, uids: list[str]) -> dict[str, dict]:
        stops: dict[str, dict] = {}
        for lo in range(0, len(uids), IN_CHUNK):
            for stop in self.stops.find({"run_start": {"$in": uids[lo : lo + IN_CHUNK]}}):
                stops[stop["run_start"]] = strip_id(stop)
        return stops

    def _join_pipeline(self, found: Plan) -> list[dict]:
        pipeline: list[dict] = [{"$match": found.start_filter}] if found.start_filter else []
        pipeline += [
            {
                "$lookup": {
                    "from": RUN_STOP,
                    "localField": "uid",
                    "foreignField": "run_start",
                    "as": STOP_FIELD,
                }
            },
            {"$addFields": {STOP_FIELD: {"$arrayElemAt": ["$" + STOP_FIELD, 0]}}},
        ]
        if found.joined_filter:
            pipeline.append({"$match": found.joined_filter})
        return pipeline

    def _joined(self, found: Plan, skip: int, limit: int | None) -> Candidates:
        pipeline = self._join_pipeline(found) + [{"$sort": dict(found.sort)}]
        pipeline += [{"$skip": skip}] if skip else []
        pipeline += [{"$limit": limit}] if limit is not None else []
        try:
            docs = list(self.starts.aggregate(pipeline))
        except pymongo.errors.OperationFailure:  # no $lookup here: evaluate in Python
            return self._evaluated(found)
        records = []
        for doc in docs:
            stop = strip_id(doc.pop(STOP_FIELD, None))
            records.append(RunRecord(strip_id(doc), stop))
        return _sure(records, paged=True)

    def _evaluated(self, found: Plan) -> Candidates:
        """The runs the translatable part of the query allows, for the generic evaluator."""
        starts = [strip_id(s) for s in self.starts.find(found.start_filter)]
        stops = self._stops_of([s["uid"] for s in starts])
        records = [RunRecord(s, stops.get(s["uid"])) for s in starts]
        return Candidates([(r, False) for r in records], ordered=False)


def _sure(records: list[RunRecord], *, paged: bool = False, ordered: bool = True) -> Candidates:
    """Candidates the server matched exactly."""
    return Candidates([(r, True) for r in records], ordered=ordered, paged=paged)


def time_bounds(spec: Any) -> tuple[float | None, float | None] | None:
    """``(lower, upper)`` of a ``time`` condition made of number bounds (None: unbounded);
    None when the condition is anything else."""
    if spec is None:
        return None, None
    if (
        not isinstance(spec, dict)
        or not set(spec) <= {"$gte", "$gt", "$lt", "$lte"}
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec.values())
    ):
        return None
    lower = max((spec[k] for k in ("$gte", "$gt") if k in spec), default=None)
    upper = min((spec[k] for k in ("$lt", "$lte") if k in spec), default=None)
    return lower, upper
