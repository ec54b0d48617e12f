"""MkDocs hook: the command-line reference, written from the ``intake-broker`` parser at build time.

A page holding the line ``<!-- cli-reference -->`` gets, in its place, the ``--help`` of
``intake-broker`` and of every subcommand its parser has (the plugins' too: ``serve``,
``apikey``, ``reindex``, ... when their drivers are installed), and of the sub-commands a command
lists in its usage line (``apikey create``). The texts come from ``intake_broker.cli.main``, the
function the console script calls, so the page says exactly what the installed command says and
cannot go stale.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from typing import Any

MARKER = "<!-- cli-reference -->"
#: Width of the help texts: the page's code column (argparse wraps to $COLUMNS).
WIDTH = 80
#: ``{create,list,revoke} ...``: a command's own sub-commands in its usage line (option choices
#: such as ``--format {csv,tsv}`` are not followed by ``...``).
_NESTED = re.compile(r"\{([\w,-]+)\} \.\.\.")


def subcommands() -> list[str]:
    """The subcommands of ``intake-broker``, in the order its ``--help`` lists them."""
    from intake_broker import cli

    parser = cli.build_parser()
    for action in parser._actions:  # argparse keeps subparsers as one action
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def help_text(argv: list[str]) -> str:
    """What ``intake-broker ARGV --help`` prints (an error if it exits non-zero)."""
    from intake_broker import cli

    out = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                status: Any = cli.main([*argv, "--help"])
            except SystemExit as exit_:  # a plugin's own parser exits after its help
                status = exit_.code
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    if status not in (0, None) or not out.getvalue().strip():
        command = " ".join(["intake-broker", *argv, "--help"])
        raise RuntimeError(f"{command} exited {status}: {err.getvalue().strip()}")
    return out.getvalue().rstrip()


def nested(text: str) -> list[str]:
    """The sub-commands a command's usage line offers (``{create,list,revoke}``), if any."""
    usage = text.split("\n\n", 1)[0]
    found = _NESTED.search(usage)
    return found.group(1).split(",") if found else []


def _section(argv: list[str], level: int) -> list[str]:
    text = help_text(argv)
    name = " ".join(["intake-broker", *argv])
    lines = [f"{'#' * level} `{name}`", "", "```text", text, "```", ""]
    for sub in nested(text) if len(argv) == 1 else []:  # one level: `apikey create`
        lines += _section([*argv, sub], level + 1)
    return lines


def reference_markdown() -> str:
    """The reference: the top-level help, then a section per subcommand."""
    names = subcommands()
    lines = [
        f"The {len(names)} commands installed where this page was built: "
        + ", ".join(f"[`{n}`](#intake-broker-{n})" for n in names)
        + ".",
        "",
        "```text",
        help_text([]),
        "```",
        "",
    ]
    for name in names:
        lines += _section([name], 2)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the reference where a page asks for it."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference_markdown())
