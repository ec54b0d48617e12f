"""Run the code blocks of a README as written, in order (no pytest needed).

Used by ``tests/test_readme.py`` and, with the venv of README command 1 alone, by
``.ci/minimal_install_check.sh``: ``python tests/readme_blocks.py README.md --skip-needs``. The
conventions (CONTRIBUTING.md, "The READMEs run"):

- ```` ```python ```` blocks of a file run in one namespace, ```` ```bash ```` blocks in a shell,
  in the working directory; other languages are shown, not run;
- ``<!-- not-run: why -->`` on the line before a fence: never run (needs a server, ...);
- ``<!-- needs: bluesky ophyd -->``: run by the test suite, whose venv has everything, and
  skipped by the check of command 1's venv (the section says which extra adds them);
- a line ``len(x)  # N ...`` is checked to be N.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_LANGUAGES = ("python", "bash")
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^<!--\s*(not-run|needs):\s*(.+?)\s*-->$")
_COUNT = re.compile(r"^len\((?P<expr>.+)\)\s+#\s*(?P<n>\d+)\b.*$", re.M)
_SHIM = "import sys; from intake_broker.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Block:
    """One fenced code block of a markdown file."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None = None  # the reason given, for a block marked not runnable
    needs: tuple[str, ...] = ()  # packages command 1 does not install

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``; an unclosed fence is an error naming its line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.group(1), match.group(2).lower()
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous)
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: unclosed {fence} fence")
        i += 1
        block = Block(path, start + 1, language, "\n".join(body) + "\n")
        if marker and marker.group(1) == "not-run":
            block.not_run = marker.group(2)
        elif marker:
            block.needs = tuple(marker.group(2).replace(",", " ").split())
        blocks.append(block)
    return blocks


def checked(code: str) -> str:
    """``code`` with each top-level ``len(x)  # N ...`` line made an assertion that it is N."""

    def assertion(match: re.Match) -> str:
        expr, n = match["expr"], match["n"]
        return f"assert len({expr}) == {n}, {f'len({expr}) != {n}'!r}"

    return _COUNT.sub(assertion, code)


def shell_env(workdir: Path) -> dict[str, str]:
    """The environment of the bash blocks: this Python's ``intake-broker`` first on PATH."""
    bin_dir = workdir / ".readme-bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "intake-broker"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{_SHIM}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
    env["NO_COLOR"] = "1"
    return env


def run_blocks(path: Path, workdir: Path, *, skip_needs: bool = False) -> tuple[int, list[Block]]:
    """Run the blocks of ``path`` in order in ``workdir``: (how many ran, those skipped).

    Raises AssertionError naming the block (file and line) that failed, and why.
    """
    namespace: dict[str, Any] = {"__name__": f"readme_{path.parent.name}"}
    env = shell_env(workdir)
    ran, skipped = 0, []
    for block in code_blocks(path):
        if block.not_run is not None or block.language not in RUN_LANGUAGES:
            continue
        if block.needs and skip_needs:
            skipped.append(block)
            continue
        if block.language == "python":
            try:
                exec(compile(checked(block.code), block.where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{block.where}: {type(err).__name__}: {err}") from err
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                raise AssertionError(f"{block.where}: {done.stdout}\n{done.stderr}")
        ran += 1
    return ran, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="+", type=Path)
    parser.add_argument(
        "--skip-needs", action="store_true", help="skip blocks marked <!-- needs: ... -->"
    )
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    workdir = Path.cwd()
    for path in args.readme:
        ran, skipped = run_blocks(path.resolve(), workdir, skip_needs=args.skip_needs)
        needs = sorted({n for b in skipped for n in b.needs})
        print(
            f"{path}: {ran} blocks ran"
            + (f"; {len(skipped)} skipped, needing {', '.join(needs)}" if skipped else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
