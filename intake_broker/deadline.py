"""A deadline for the work of one request, context-local, that stores check as they go.

The server gives every request a deadline; the code doing the work (the generic evaluator's
loop, a store's SQL statements) calls :func:`check`, which raises
:class:`~intake_broker.errors.DeadlineExceeded` once it has passed, so the work stops instead of
running on after its answer stopped mattering.

>>> from intake_broker import deadline
>>> with deadline.limit(5.0):          # the work of this block gets 5 seconds
...     cat.search(query)              # raises DeadlineExceeded if it takes longer

The deadline lives in a :class:`~contextvars.ContextVar`, so it follows the request into the
threads ``asyncio``/``anyio`` run it in, and two requests never see each other's. Outside
:func:`limit` there is no deadline and :func:`check` costs one context lookup.

Stores stop their own long statements with:

- SQLite: :func:`install_sqlite` sets a progress handler that interrupts a statement past the
  deadline (SQLite then raises ``OperationalError: interrupted``);
- PostgreSQL: :func:`statement_timeout_ms` gives the ``statement_timeout`` to ``SET LOCAL`` when
  a transaction begins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from intake_broker.errors import DeadlineExceeded

__all__ = [
    "Deadline",
    "DeadlineExceeded",
    "check",
    "current",
    "expired",
    "install_sqlite",
    "limit",
    "remaining",
    "statement_timeout_ms",
]

#: SQLite virtual-machine instructions between two looks at the deadline (a Python call each:
#: about 1% of a statement's time at this spacing).
SQLITE_STEPS = 20_000


class Deadline:
    """When the work of one request must be done (``time.monotonic()`` seconds).

    Mutable on purpose: the server lifts it (:meth:`lift`) once a response has started, and
    every context that copied it (the threads streaming the body) sees that.
    """

    __slots__ = ("expires", "seconds")

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.expires: float | None = time.monotonic() + self.seconds

    def remaining(self) -> float | None:
        """Seconds left (negative once past); None when lifted."""
        expires = self.expires
        return None if expires is None else expires - time.monotonic()

    def lift(self) -> None:
        """No deadline any more (the answer has started: what follows is the client's pace)."""
        self.expires = None

    def __repr__(self) -> str:
        return f"Deadline({self.seconds} s, remaining={self.remaining()})"


_CURRENT: ContextVar[Deadline | None] = ContextVar("intake_broker_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the work in progress (None: none)."""
    return _CURRENT.get()


@contextmanager
def limit(seconds: float | None) -> Iterator[Deadline | None]:
    """The block's work must be done within ``seconds`` (None: no new limit). An outer, earlier
    deadline still holds: the block gets whichever comes first."""
    if seconds is None:
        yield _CURRENT.get()
        return
    if not seconds > 0:
        raise ValueError(f"a deadline must be a positive number of seconds, not {seconds!r}")
    new = Deadline(seconds)
    outer = _CURRENT.get()
    if outer is not None and outer.expires is not None and outer.expires < (new.expires or 0):
        new.expires = outer.expires
    token = _CURRENT.set(new)
    try:
        yield new
    finally:
        _CURRENT.reset(token)


def activate(deadline: Deadline | None) -> Any:
    """Make ``deadline`` the current one; the token for :func:`deactivate` (for a server that
    sets it around a request, where a ``with`` block does not fit)."""
    return _CURRENT.set(deadline)


def deactivate(token: Any) -> None:
    """Undo :func:`activate`."""
    _CURRENT.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (None: no deadline)."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.remaining()


def expired() -> bool:
    """Whether the current deadline has passed."""
    deadline = _CURRENT.get()
    if deadline is None:
        return False
    expires = deadline.expires
    return expires is not None and time.monotonic() >= expires


def check(what: str = "this request") -> None:
    """Raise :class:`DeadlineExceeded` if the current deadline has passed."""
    deadline = _CURRENT.get()
    if deadline is None or deadline.expires is None:
        return
    if time.monotonic() >= deadline.expires:
        raise DeadlineExceeded(
            f"{what} ran past its deadline of {deadline.seconds:g} s and was stopped; "
            "narrow the query (fewer runs, fewer terms, simpler patterns) or ask for less at once"
        )


def _sqlite_progress() -> int:
    return 1 if expired() else 0  # non-zero: SQLite interrupts the statement


def install_sqlite(dbapi_connection: Any, steps: int = SQLITE_STEPS) -> None:
    """Make a ``sqlite3`` connection interrupt any statement that runs past the current
    deadline of the thread running it (``OperationalError: interrupted``)."""
    dbapi_connection.set_progress_handler(_sqlite_progress, steps)


def statement_timeout_ms() -> int | None:
    """The current deadline as a PostgreSQL ``statement_timeout`` (milliseconds, at least 1);
    None without one. Raises :class:`DeadlineExceeded` when it has already passed."""
    left = remaining()
    if left is None:
        return None
    check()
    return max(1, int(left * 1000))
