"""What the command line shows: tables and colours on a terminal, plain and stable text elsewhere.

On a terminal, tables are drawn by `rich <https://rich.readthedocs.io>`_ (boxes, bold headers,
a coloured run status) and errors are red. Into a pipe or a file the same tables are plain
columns separated by two spaces, a format scripts (and tests) rely on, and rich is not even
imported. ``NO_COLOR`` (https://no-color.org) set to anything non-empty turns every escape code
off: rich alone would drop the colours but keep bold and dim, which ``NO_COLOR`` users do not want
either, so the console is made without a colour system.

Text from the runs (plan names, metadata, notes) is written to a terminal with its control
characters shown escaped (``\\x1b``), so a run cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

#: The style of a cell of a table on a terminal, from its text ("" for none).
CellStyle = Callable[[str], str]


def plural(count: int, one: str, many: str | None = None) -> str:
    """``"1 run"``, ``"2 runs"``: a count with its noun (``many`` defaults to ``one + "s"``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: stdout) is a terminal."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def colour_wanted(stream: IO[str] | None = None) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, and ``NO_COLOR`` unset or empty."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def console(stream: IO[str] | None = None) -> Any:
    """A rich ``Console`` writing to ``stream`` (default: stdout), which the caller found to be a
    terminal: colours as the terminal supports them, none at all under ``NO_COLOR``."""
    from rich.console import Console

    stream = sys.stdout if stream is None else stream
    return Console(
        file=stream,
        force_terminal=True,
        color_system="auto" if colour_wanted(stream) else None,
        no_color=not colour_wanted(stream),
        highlight=False,
        emoji=False,
        markup=False,
    )


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127] if chr(c) not in "\n\t"}


def clean(text: str) -> str:
    """``text`` with its control characters shown escaped (for a terminal)."""
    return str(text).translate(_CONTROL)


def plain_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] = ()
) -> str:
    """Plain text columns two spaces apart, left-aligned except the column indices in ``right``
    (the format of every table written into a pipe or a file)."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Sequence[int] = (),
    styles: dict[int, str | CellStyle] | None = None,
    title: str | None = None,
    indent: int = 0,
    no_wrap: Sequence[int] = (0,),
) -> None:
    """Print a table on stdout: drawn by rich on a terminal, plain columns elsewhere.

    Parameters
    ----------
    headers, rows : the column names and the cells (strings).
    right : the indices of right-aligned columns.
    styles : a rich style for a column on a terminal (``"cyan"``), or a function of the cell's
        text giving its style (a run's status in green or red).
    title : a line printed above the table (a caption on a terminal).
    indent : spaces before each line of the plain table.
    no_wrap : the columns never wrapped on a terminal (an id to copy).
    """
    rows = [list(map(str, r)) for r in rows]
    if not is_terminal():
        if title is not None:
            print(title)
        text = plain_table(headers, rows, right)
        print("\n".join(" " * indent + line for line in text.splitlines()))
        return
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    styles = styles or {}
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        title=None if title is None else Text(clean(title), style="bold"),
        title_justify="left",
        show_edge=False,
    )
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left", no_wrap=i in no_wrap)
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            style = styles.get(i, "")
            cells.append(Text(clean(cell), style=style(cell) if callable(style) else style))
        table.add_row(*cells)
    console().print(Padding(table, (0, 0, 0, indent), expand=False) if indent else table)


def print_fields(title: str, pairs: Iterable[tuple[str, str]], width: int = 20) -> None:
    """Print ``title:`` and one ``  key  value`` line per pair (a two-column grid on a
    terminal, the keys in bold)."""
    pairs = list(pairs)
    if not is_terminal():
        print(f"{title}:")
        for key, value in pairs:
            print(f"  {key:<{width}} {value}")
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in pairs:
        grid.add_row(Text(clean(key)), Text(clean(value)))
    out = console()
    out.print(Text(f"{clean(title)}:", style="bold underline"))
    from rich.padding import Padding

    out.print(Padding(grid, (0, 0, 0, 2), expand=False))


def say(text: str, style: str = "") -> None:
    """Print a line of text on stdout (in ``style`` on a colour terminal)."""
    if not style or not colour_wanted(sys.stdout):
        print(text)
        return
    from rich.text import Text

    console().print(Text(clean(text), style=style), soft_wrap=True)


def error(message: str, prog: str = "intake-broker") -> None:
    """``PROG: error: MESSAGE`` on stderr, in red on a colour terminal."""
    _stderr(f"{prog}: error: {message}", "red")


def warn(message: str) -> None:
    """A loud line on stderr (bold red on a colour terminal): a server open to the network..."""
    _stderr(message, "bold red")


def _stderr(text: str, style: str) -> None:
    sys.stdout.flush()
    if not colour_wanted(sys.stderr):
        print(text, file=sys.stderr, flush=True)
        return
    from rich.text import Text

    console(sys.stderr).print(Text(clean(text), style=style), soft_wrap=True)
    sys.stderr.flush()
