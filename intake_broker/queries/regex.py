"""Regular expressions in linear time: RE2 (the ``google-re2`` binding) for every store.

Python's ``re``, PCRE (MongoDB) and PostgreSQL's engine backtrack: ``(.*)*Z`` over a long
string runs for ages. RE2 runs in time linear in the text for every pattern, so the generic
evaluator and SQLite (through a registered function) use it; MongoDB and PostgreSQL never see a
user's pattern, only the literal prefix it requires (:func:`literal_prefix`), and RE2 decides on
the runs that prefix lets through.

The syntax is RE2's (https://github.com/google/re2/wiki/Syntax), close to Python's for the
usual ``^ $ . * + ? {m,n} [...] (...) | \\d \\w \\s (?i)``; backreferences and lookaround,
which need backtracking, are refused with :class:`~intake_broker.errors.BadQuery`. ``$`` matches
only at the end of the text (Python's ``$`` also before a final newline).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import re2

from ..errors import BadQuery
from .limits import MAX_PATTERN_LENGTH, check_string

#: Most memory RE2 may use for one compiled pattern (its default is 8 MiB).
MAX_PROGRAM_BYTES = 8 << 20


def _options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str, case_sensitive: bool = True) -> Any:
    """The compiled RE2 pattern, cached.

    Raises
    ------
    BadQuery
        When ``pattern`` is not a string, too long, not valid Unicode, or not RE2 syntax.
    """
    if not isinstance(pattern, str):
        raise BadQuery(f"a regular expression must be a string, got {pattern!r}")
    check_string(pattern, "a regular expression", MAX_PATTERN_LENGTH)
    try:
        return re2.compile(pattern, _options(case_sensitive))
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise BadQuery(
            f"bad regular expression {pattern!r}: {reason}. Patterns use RE2 syntax (as "
            "Python's re, without backreferences or lookaround), which runs in linear time"
        ) from None


@functools.lru_cache(maxsize=256)
def _matcher(pattern: str, case_sensitive: bool) -> Callable[[bytes], bool]:
    """Whether UTF-8 bytes hold a match: RE2's own ``Match`` when the binding exposes it (the
    binding's ``search`` builds a match object, 15 times the cost), else ``search``."""
    compiled = compile_regex(pattern, case_sensitive)
    low = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    if low is not None and anchor is not None and hasattr(low, "Match"):
        unanchored = anchor.UNANCHORED
        return lambda data: low.Match(unanchored, data, 0, len(data))[0][0] >= 0
    return lambda data: compiled.search(data.decode("utf-8", "replace")) is not None


@functools.lru_cache(maxsize=256)
def _plain(pattern: str, case_sensitive: bool) -> Callable[[str], bool] | None:
    """A str test for the commonest patterns, as exact as RE2 and ten times cheaper: a
    literal (``in``) or ``^`` and a literal (``startswith``); None for any other pattern."""
    compile_regex(pattern, case_sensitive)  # refused patterns stay refused
    if not case_sensitive:
        return None
    if not any(char in _META for char in pattern):
        return lambda value: pattern in value
    found = literal_prefix(pattern)
    if found is not None and found[1]:
        prefix = found[0]
        return lambda value: value.startswith(prefix)
    return None


def regex_search(pattern: str, case_sensitive: bool, value: Any) -> bool:
    """Whether ``value`` is a string holding a match of ``pattern`` (as ``re.search``)."""
    if not isinstance(value, str):
        return False
    plain = _plain(pattern, case_sensitive)
    if plain is not None:
        return plain(value)
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:  # a stored string with a lone surrogate: it reads as U+FFFD
        data = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
    return _matcher(pattern, case_sensitive)(data)


_META = set(".^$*+?{}[]\\|()")
_SAFE_ESCAPES = set(".^$*+?{}[]\\|()-/ #&~'\"!%,:;<=>@`")


def literal_prefix(pattern: str, case_sensitive: bool = True) -> tuple[str, bool] | None:
    """``(prefix, whole)`` for a pattern anchored with ``^``: the literal text every match
    starts with, and whether the pattern is exactly ``^`` and that text (so that a prefix test
    answers it alone). None when the pattern is not anchored, has no literal start, or is
    case-insensitive.

    Such a prefix is safe to give a backtracking engine (a string comparison, or ``^`` and an
    escaped literal) and lets an index narrow the candidates.
    """
    if not case_sensitive or not pattern.startswith("^") or "|" in pattern:
        return None  # (an alternation anywhere might not be under the anchor)
    prefix: list[str] = []
    i = 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and pattern[i + 1] in _SAFE_ESCAPES:
            prefix.append(pattern[i + 1])
            i += 2
        elif char in _META:
            break
        else:
            prefix.append(char)
            i += 1
    if i < len(pattern) and pattern[i] in "*?{" and prefix:
        prefix.pop()  # the last character is optional or repeated: not part of the prefix
        i = -1
    whole = i == len(pattern)
    return ("".join(prefix), whole) if prefix else None


def escape_literal(text: str) -> str:
    """``text`` as a pattern matching itself (for PCRE and POSIX as for RE2)."""
    return re.escape(text)
