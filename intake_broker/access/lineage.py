"""What a guard does about start-document keys that name other runs (a derived run's inputs).

A derived run's start lists its inputs' uids (``derived_from``) and what was read of each
(``provenance.inputs``: uid, scan_id, streams...). A reader allowed to see the derived run may
not be allowed to see every input, so a :class:`~intake_broker.access.GuardedStore`

- shows such an input as withheld (:func:`redact`): ``None`` in ``derived_from`` and
  ``{"withheld": true}`` in ``provenance.inputs``, no uid, no metadata;
- accepts queries on these keys only when they cannot probe hidden values
  (:func:`check_lineage_query`): presence, or ``contains`` / ``==`` / ``in`` with uids of runs
  the reader can see. A uid the reader cannot see and a uid that does not exist are refused in
  the same words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from intake_broker.errors import BadQuery
from intake_broker.provenance.record import DERIVED_FROM_KEY, PROVENANCE_KEY
from intake_broker.queries import Contains, Eq, In, KeyPresent, Query
from intake_broker.queries.base import resolve_key
from intake_broker.store.contract import RunRecord

#: Paths (under ``start``) naming other runs.
LINEAGE_PATHS = (("start", DERIVED_FROM_KEY), ("start", PROVENANCE_KEY, "inputs"))
#: What an input a reader may not see is shown as in ``provenance.inputs``.
WITHHELD = {"withheld": True}

#: ``visible(uids) -> the subset of uids the reader may see``
Visible = Callable[[set[str]], set[str]]


def _names_runs(key: str) -> bool:
    path = resolve_key(key)
    if path[:2] == ("start", PROVENANCE_KEY) and len(path) == 2:
        return True  # the whole provenance mapping holds the inputs
    return any(path[: len(p)] == p for p in LINEAGE_PATHS)


def _leaves(query: Query) -> Iterable[Query]:
    fields = getattr(query, "_query_fields", ())
    if not fields:
        yield query
        return
    for name in fields:
        value = getattr(query, name)
        for part in (value,) if isinstance(value, Query) else value:
            yield from _leaves(part)


def check_lineage_query(query: Query | None, visible: Visible) -> None:
    """Refuse ``query`` if a part of it on ``derived_from`` / ``provenance.inputs`` could tell
    something about runs the reader may not see."""
    if query is None:
        return
    for leaf in _leaves(query):
        key = getattr(leaf, "key", None)
        if not isinstance(key, str) or not _names_runs(key):
            continue
        if isinstance(leaf, KeyPresent):
            continue
        values: Sequence[Any] = ()
        if isinstance(leaf, Contains | Eq):
            values = (leaf.value,)
        elif isinstance(leaf, In):
            values = tuple(leaf.values)
        uids = {v for v in values if isinstance(v, str)}
        if (
            not isinstance(leaf, Contains | Eq | In)
            or not uids
            or len(uids) != len(values)
            or resolve_key(key) != ("start", DERIVED_FROM_KEY)
            or visible(uids) != uids
        ):
            raise BadQuery(
                f"a search on {key!r} may only ask for runs derived from runs you can see: "
                f'use derived_from contains "<uid>" (or == / in) with the uids of such runs'
            )


def _input_uids(record: RunRecord) -> list[str]:
    uids = record.start.get(DERIVED_FROM_KEY)
    found = [u for u in uids if isinstance(u, str)] if isinstance(uids, list) else []
    inputs = (record.start.get(PROVENANCE_KEY) or {}).get("inputs")
    if isinstance(inputs, list):
        found += [i["uid"] for i in inputs if isinstance(i, dict) and isinstance(i.get("uid"), str)]
    return found


def redact(records: list[RunRecord], visible: Visible) -> list[RunRecord]:
    """``records`` with every input the reader may not see withheld (copies; the records
    given are never changed). One ``visible`` call for the whole list."""
    named = {u for r in records for u in _input_uids(r)}
    if not named:
        return records
    seen = visible(named)
    if seen >= named:
        return records
    return [_redacted(r, seen) if set(_input_uids(r)) - seen else r for r in records]


def _redacted(record: RunRecord, seen: set[str]) -> RunRecord:
    start = dict(record.start)
    uids = start.get(DERIVED_FROM_KEY)
    if isinstance(uids, list):
        start[DERIVED_FROM_KEY] = [u if u in seen else None for u in uids]
    prov = start.get(PROVENANCE_KEY)
    if isinstance(prov, dict):
        prov = dict(prov)
        inputs = prov.get("inputs")
        if isinstance(inputs, list):
            prov["inputs"] = [
                i if isinstance(i, dict) and i.get("uid") in seen else dict(WITHHELD)
                for i in inputs
            ]
        start[PROVENANCE_KEY] = prov
    return dataclasses.replace(record, start=start)
