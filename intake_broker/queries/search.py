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
            ids = (*ids, *kwargs.pop("ids"))
        if kwargs:
            raise BadQuery(f"ScanID takes scan ids only, not {sorted(kwargs)}")
        if not ids or not all(_is_int(i) for i in ids):
            raise BadQuery(f"ScanID needs one or more integer scan ids, got {list(ids)!r}")
        object.__setattr__(self, "ids", tuple(ids))

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
                f"ScanIDRange needs integers start <= stop, got ({self.start!r}, {self.stop!r})"
            )

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
        if not isinstance(self.text, str) or not words(self.text):
            raise BadQuery(f"FullText needs some words to look for, got {self.text!r}")

    def match(self, record: Mapping[str, Any]) -> bool:
        start = record.get("start") or {}
        found: set[str] = set()
        for value in _strings(start):
            found |= words(value)
        return words(self.text) <= found


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, stopping early once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


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
            raise BadQuery(f"Fuzzy needs a non-empty text, got {self.text!r}")
        if not _is_int(self.max_edits) or self.max_edits < 0:
            raise BadQuery(f"Fuzzy max_edits must be a whole number >= 0, got {self.max_edits!r}")

    def match(self, record: Mapping[str, Any]) -> bool:
        target = self.text.casefold()
        return any(
            isinstance(v, str)
            and edit_distance(v.casefold(), target, self.max_edits) <= self.max_edits
            for v in _candidates(_values(record, self.key))
        )
