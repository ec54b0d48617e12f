"""A small query language for the command line and the web page, parsed without ``eval``.

::

    plan_name == "scan" and scan_id > 4000 and summary.primary.theta.max < 5
    4000 <= scan_id <= 4100 and not (exit_status == "abort")
    motors contains "theta" or sample.name ~ "^LaB" or scan_id in [1, 2, 3]
    has sample and time since "2026-01-01" until "2026-02-01"
    text "LaB6 calibration" or sample.name like "LaB6"      (words; a typo-tolerant match)
    tags contains "good" and annotations.rating >= 4 and note text "alignment"

``tags``, ``note`` and keys under ``annotations.`` ask the run's annotations (those the
searcher may see; see :mod:`intake_broker.queries.annotations`); write ``start.tags`` for a
``tags`` key of the start document.

Grammar (keywords are case-insensitive)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | "has" KEY | "text" STRING | "note" "text" STRING
             | test
    test    := KEY OP VALUE | VALUE OP KEY [OP VALUE]      (a range: 1 <= scan_id < 9)
             | KEY ["not"] "in" LIST | KEY "contains" VALUE | KEY "~" STRING (a regex)
             | KEY "like" VALUE                              (within 2 edits, any case)
             | "time" ["since" VALUE] ["until" VALUE]
    OP      := "==" | "!=" | "<" | "<=" | ">" | ">="
    VALUE   := a JSON literal ("text", 1, 2.5, true, false, null) or a bare word (a string)

Errors say where: ``syntax error at column 14: expected a value ...`` with a caret under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..errors import BadQuery
from .annotations import Annotated, NoteText
from .base import And, Not, Or, Query, load_json
from .limits import MAX_DEPTH, MAX_QUERY_CHARS, check_depth
from .search import FullText, Fuzzy
from .types import (
    Comparison,
    Contains,
    Eq,
    In,
    KeyPresent,
    NotEq,
    NotIn,
    Regex,
    TimeRange,
)

#: Keys whose values are known to be numbers; comparing them with a string is a mistake.
NUMERIC_KEYS = frozenset(
    {"scan_id", "time", "num_points", "num_intervals", "start.scan_id", "start.time", "stop.time"}
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'[^']*')
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<op>==|!=|<=|>=|<|>|=|~)
  | (?P<punct>[()\[\],])
  | (?P<word>[A-Za-z_][\w.\-]*)
""",
    re.VERBOSE,
)
_KEYWORDS = {
    "and",
    "or",
    "not",
    "in",
    "contains",
    "has",
    "true",
    "false",
    "null",
    "since",
    "until",
    "like",
    "text",
}
_T = TypeVar("_T")

_OPS = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_FLIP = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        if match.lastgroup != "space":
            # every alternative of _TOKEN is a named group
            tokens.append(_Token(cast(str, match.lastgroup), match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _error(text: str, pos: int, problem: str) -> BadQuery:
    """A syntax error at ``pos``, shown with (at most 60 characters of) the text either side."""
    start = max(0, pos - 60)
    before = ("..." if start else "") + text[start:pos]
    after = text[pos : pos + 60] + ("..." if len(text) > pos + 60 else "")
    shown = (before + after).replace("\n", " ")
    return BadQuery(
        f"syntax error at column {pos + 1}: {problem}\n  {shown}\n  {' ' * len(before)}^"
    )


class _Parser:
    def __init__(self, text: str, timezone: str | None = None):
        self.text = text
        self.timezone = timezone
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0  # nesting of parentheses and 'not' at the current token

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, expected: str, token: _Token | None = None) -> BadQuery:
        token = token or self.tok
        found = "the end of the query" if token.kind == "end" else repr(token.text)
        return _error(self.text, token.pos, f"expected {expected}, found {found}")

    def keyword(self, word: str) -> bool:
        if self.tok.word == word:
            self.i += 1
            return True
        return False

    # expr := term ("or" term)*
    def expr(self) -> Query:
        parts = [self.term()]
        while self.keyword("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Query:
        parts = [self.factor()]
        while self.keyword("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def nested(self, parse: Callable[[], _T]) -> _T:
        """``parse()`` one level deeper, refused beyond the query depth limit."""
        if self.depth >= MAX_DEPTH:
            raise _error(
                self.text,
                self.tok.pos,
                f"the query nests more than {MAX_DEPTH} levels of parentheses and 'not'",
            )
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def factor(self) -> Query:
        if self.keyword("not"):
            return Not(self.nested(self.factor))
        if self.tok.text == "(":
            self.take()
            inner = self.nested(self.expr)
            if self.take().text != ")":
                self.i -= 1
                raise self.fail("')' to close the parenthesis")
            return inner
        if self.keyword("has"):
            key = self.key()
            return _annotated(key, KeyPresent(_annotation_key(key) or key))
        if (
            self.tok.word == "note"
            and self.tokens[self.i + 1].word == "text"
            and self.tokens[self.i + 2].kind == "string"
        ):
            self.i += 2
            return Annotated(NoteText(self.value()))
        if self.tok.word == "text" and self.tokens[self.i + 1].kind == "string":
            self.take()
            return FullText(self.value())
        if self.tok.word == "time" and self.tokens[self.i + 1].word in ("since", "until"):
            return self.time_range()
        return self.test()

    def time_range(self) -> Query:
        self.take()
        bounds: dict[str, Any] = {}
        while self.tok.word in ("since", "until") and self.tok.word not in bounds:
            bound = self.take().word
            bounds[bound] = self.value()
        return TimeRange(**bounds, timezone=self.timezone)

    def key(self) -> str:
        token = self.take()
        if token.kind != "word" or token.word in _KEYWORDS:
            raise self.fail("a key such as plan_name or summary.primary.det.max", token)
        return token.text

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            if token.text[0] == "'":
                return token.text[1:-1]
            try:
                return json.loads(token.text)
            except ValueError as err:  # "\q": not a JSON escape
                raise _error(
                    self.text,
                    token.pos + getattr(err, "pos", 0),
                    f"bad escape in a string ({getattr(err, 'msg', err)}): in double quotes "
                    r"write \\ for a backslash and \" for a quote, or use single quotes, "
                    "where a backslash is just a backslash (handy for regular expressions)",
                ) from None
        if token.kind == "number":  # (Python's reading: 007, 1. and -.5 are numbers too)
            is_int = re.fullmatch(r"-?\d+", token.text) is not None
            digits = re.sub(r"^(-?)0+(?=\d)", r"\1", token.text)  # 000...07 is 7
            if is_int and len(digits.lstrip("-")) > 19:
                raise _error(
                    self.text,
                    token.pos,
                    "an integer outside the signed 64-bit range stored ones lie in",
                )
            return int(digits) if is_int else float(token.text)
        if token.kind == "word":
            return {"true": True, "false": False, "null": None}.get(token.word, token.text)
        if token.text == "[":
            return self.list_rest()
        raise self.fail('a value ("text", a number, true, false, null or [a, list])', token)

    def list_rest(self) -> list:
        return self.nested(self._list_rest)

    def _list_rest(self) -> list:
        values: list = []
        if self.tok.text == "]":
            self.take()
            return values
        while True:
            values.append(self.value())
            token = self.take()
            if token.text == "]":
                return values
            if token.text != ",":
                raise self.fail("',' or ']' in the list", token)

    def test(self) -> Query:
        query, key = self._test()
        inner = _annotation_key(key)
        return query if inner is None else Annotated(_rekey(query, inner))

    def _test(self) -> tuple[Query, str]:
        start = self.tok
        if start.kind in ("number", "string"):  # a range: 1 <= scan_id < 9
            low = self.value()
            op1 = self.op()
            key = self.key()
            first = self.compare(key, _FLIP.get(op1, op1), low, start)
            if self.tok.kind != "op":
                return first, key
            op2 = self.op()
            return And((first, self.compare(key, op2, self.value(), start))), key
        key = self.key()
        token = self.tok
        if token.word == "in" or (token.word == "not" and self.tokens[self.i + 1].word == "in"):
            negate = self.keyword("not")
            self.take()
            if self.take().text != "[":
                self.i -= 1
                raise self.fail("a [list] after 'in'")
            values = self.list_rest()
            return (NotIn(key, values) if negate else In(key, values)), key
        if self.keyword("contains"):
            return Contains(key, self.value()), key
        if self.keyword("like"):
            return Fuzzy(key, str(self.value())), key
        if token.text == "~":
            self.take()
            pattern = self.tok
            value = self.value()
            if not isinstance(value, str):
                raise self.fail("a regular expression in quotes after '~'", pattern)
            return Regex(key, value), key
        op = self.op()
        return self.compare(key, op, self.value(), token), key

    def op(self) -> str:
        token = self.take()
        if token.kind != "op" or token.text == "~":
            raise self.fail("a comparison (== != < <= > >=), 'in', 'contains' or '~'", token)
        return _OPS[token.text]

    def compare(self, key: str, op: str, value: Any, where: _Token) -> Query:
        if op in ("lt", "le", "gt", "ge"):
            if (
                key in NUMERIC_KEYS
                and not isinstance(value, int | float)
                or isinstance(value, bool)
            ):
                raise _error(
                    self.text,
                    where.pos,
                    f"{key} is compared with {value!r}; '{key}' holds numbers, so "
                    "compare it with a number",
                )
            if not isinstance(value, int | float | str):
                raise _error(
                    self.text,
                    where.pos,
                    f"cannot order by {value!r}: compare with a number or a string",
                )
            return Comparison(op, key, value)
        if key in NUMERIC_KEYS and isinstance(value, str):
            raise _error(
                self.text,
                where.pos,
                f"'{key}' holds numbers but is compared with the "
                f"text {value!r}; write the number without quotes",
            )
        return Eq(key, value) if op == "eq" else NotEq(key, value)


def _annotation_key(key: str) -> str | None:
    """The key inside an annotation that ``key`` names (``tags``, ``note``,
    ``annotations.<field>``), or None for a key of the run's documents."""
    if key in ("tags", "note"):
        return key
    if key.startswith("annotations.") and len(key) > len("annotations."):
        return key[len("annotations.") :]
    return None


def _annotated(key: str, query: Query) -> Query:
    return query if _annotation_key(key) is None else Annotated(query)


def _rekey(query: Query, key: str) -> Query:
    """``query`` (a test of one key, or an And of two: a range) on ``key`` instead."""
    import dataclasses

    if isinstance(query, And):
        return And(tuple(_rekey(q, key) for q in query.queries))
    return dataclasses.replace(query, key=key)


def parse_query(text: str, *, timezone: str | None = None) -> Query:
    """Parse the query language above (or a JSON object: a Mongo-style filter) into a Query.

    Naive times (``time since "2026-01-01 08:00"``) are read in ``timezone`` (an IANA name;
    None: the machine's local zone).

    Raises
    ------
    BadQuery
        With the column of the problem and what was expected there.
    """
    from .mongo import from_mongo

    if not isinstance(text, str) or not text.strip():
        raise BadQuery('empty query: write e.g. plan_name == "scan" and scan_id > 4')
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(
            f"a query of {len(text):,} characters is too long; at most {MAX_QUERY_CHARS:,} "
            "are allowed"
        )
    if text.lstrip().startswith("{"):
        return from_mongo(load_json(text, "the query (it starts with '{')"))
    parser = _Parser(text, timezone)
    try:
        query = parser.expr()
    except RecursionError:  # a limit was not met on the way down; never expected
        check_depth(MAX_DEPTH + 1)
        raise
    if parser.tok.kind != "end":
        raise parser.fail("'and', 'or' or the end of the query")
    return query
