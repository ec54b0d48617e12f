"""Query types for finding runs the way scientists ask: by scan id, by words, despite typos.

``ScanID(*ids)`` and ``ScanIDRange(start, stop)`` look at ``start.scan_id``; ``FullText`` looks
for words across every string of the start document; ``Fuzzy`` matches a string field within a
few edits (a misspelt sample name). Stores without a native form evaluate them in Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadQuery
from .base import Query, _candidates, _values, register_query, resolve_key
from .limits import (
    MAX_FUZZY_EDITS,
    MAX_FUZZY_LENGTH,
    MAX_TEXT_LENGTH,
    check_count,
    check_integer,
    check_string,
)

#: Most words a FullText query looks for.
MAX_WORDS = 32

_WORD = re.compile(r"\w+", re.UNICODE)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@register_query("scan_id")
@dataclass(frozen=True, init=False)
class ScanID(Query):
    """The run's ``scan_id`` is one of ``ids``: ``ScanID(4000, 4002)``."""

    ids: tuple[int, ...]

    def __init__(self, *ids: int, **kwargs: Any):
        if "ids" in kwargs:  # ScanID(ids=[...]), as decode() calls it
            more = kwargs.pop("ids")
            if not isinstance(more, (list, tuple)):
                raise BadQuery(f"ScanID ids must be a list of integers, got {type(more).__name__}")
            ids = (*ids, *more)
        if kwargs:
            raise BadQuery(f"ScanID takes scan ids only, not {sorted(map(str, kwargs))}")
        check_count(len(ids), "a ScanID list")
        if not ids or not all(_is_int(i) for i in ids):
            raise BadQuery(f"ScanID needs one or more integer scan ids, got {list(ids)!r:.200}")
        object.__setattr__(self, "ids", tuple(check_integer(i, "a scan id") for i in ids))

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(_is_int(v) and v in self.ids for v in _values(record, "start.scan_id"))


@register_query("scan_id_range")
@dataclass(frozen=True)
class ScanIDRange(Query):
    """``start <= scan_id < stop`` (like ``range``)."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if not (_is_int(self.start) and _is_int(self.stop)) or self.start > self.stop:
            raise BadQuery(
                f"ScanIDRange needs integers start <= stop, got "
                f"({self.start!r:.60}, {self.stop!r:.60})"
            )
        check_integer(self.start, "ScanIDRange start")
        check_integer(self.stop, "ScanIDRange stop")

    def match(self, record: Mapping[str, Any]) -> bool:
        return any(
            _is_int(v) and self.start <= v < self.stop for v in _values(record, "start.scan_id")
        )


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)


def words(text: str) -> set[str]:
    """The case-folded words of a text, as :class:`FullText` compares them."""
    return {w.casefold() for w in _WORD.findall(text)}


@register_query("full_text")
@dataclass(frozen=True)
class FullText(Query):
    """Every word of ``text`` appears (case-insensitively, as a whole word) among the string
    values of the start document: ``FullText("LaB6 calibration")``."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise BadQuery(f"FullText needs a text, got {type(self.text).__name__}")
        check_string(self.text, "a FullText text", MAX_TEXT_LENGTH)
        found = words(self.text)
        if not found:
            raise BadQuery(f"FullText needs some words to look for, got {self.text!r}")
        if len(found) > MAX_WORDS:
            raise BadQuery(
                f"FullText looks for at most {MAX_WORDS} words, got {len(found)}; "
                "combine several FullText queries with & if you need more"
            )

    def match(self, record: Mapping[str, Any]) -> bool:
        start = record.get("start") or {}
        found: set[str] = set()
        for value in _strings(start):
            found |= words(value)
        return words(self.text) <= found


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``.

    Only the diagonal band of width ``2 * limit + 1`` is computed (a path leaving it costs
    more than ``limit`` edits), so the cost is ``O(len(a) * limit)``, not ``len(a) * len(b)``.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    over = limit + 1
    previous = [j if j <= limit else over for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        low, high = max(1, i - limit), min(len(b), i + limit)
        current = [over] * (len(b) + 1)
        current[0] = i if i <= limit else over
        for j in range(low, high + 1):
            cost = previous[j - 1] + (ca != b[j - 1])
            current[j] = min(previous[j] + 1, current[j - 1] + 1, cost, over)
        if min(current[max(0, low - 1) : high + 1]) > limit:
            return over
        previous = current
    return min(previous[-1], over)


@register_query("fuzzy")
@dataclass(frozen=True)
class Fuzzy(Query):
    """The string at ``key`` is within ``max_edits`` insertions, deletions or substitutions of
    ``text``, ignoring case: ``Fuzzy("sample.name", "LaB6", 1)`` finds ``"LAB6"``, ``"LaB66"``."""

    key: str
    text: str
    max_edits: int = 2

    def __post_init__(self) -> None:
        resolve_key(self.key)
        if not isinstance(self.text, str) or not self.text:
            raise BadQuery(f"Fuzzy needs a non-empty text, got {self.text!r:.80}")
        check_string(self.text, "a Fuzzy text", MAX_FUZZY_LENGTH)
        if not _is_int(self.max_edits) or not 0 <= self.max_edits <= MAX_FUZZY_EDITS:
            raise BadQuery(
                f"Fuzzy max_edits must be a whole number from 0 to {MAX_FUZZY_EDITS}, "
                f"got {self.max_edits!r:.40}"
            )

    def match(self, record: Mapping[str, Any]) -> bool:
        target = self.text.casefold()
        return any(
            isinstance(v, str)
            and edit_distance(v.casefold(), target, self.max_edits) <= self.max_edits
            for v in _candidates(_values(record, self.key))
        )
