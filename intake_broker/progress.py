"""Progress bars of the long commands (ingest, import, export, summarize, demo): drawn on stderr
only when it is a terminal (or when asked), and redrawn at most twice a second."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

#: Seconds between two redraws of a bar (tqdm's ``mininterval``).
MININTERVAL = 0.5


def wanted(enabled: bool | None) -> bool:
    """Whether to draw a bar: ``enabled`` when given, else whether stderr is a terminal."""
    if enabled is not None:
        return enabled
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool | None = None,
    leave: bool = False,
) -> Any:
    """A throttled tqdm bar on stderr, disabled unless :func:`wanted` (``enabled`` None: only
    on a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not wanted(enabled),
        leave=leave,
        mininterval=MININTERVAL,
        dynamic_ncols=True,
        file=sys.stderr,
    )
