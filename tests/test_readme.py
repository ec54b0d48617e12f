"""The READMEs' code blocks run as written, in order, on the data of README command 1.

Every ```python and ```bash block of README.md and of each drivers/*/README.md runs, in the
order written, against a data folder that ``intake-broker demo`` has just filled (in a
temporary directory, through ``INTAKE_BROKER_DATA``): the python blocks of one file share one
namespace, the bash blocks run in a shell in the same working directory. A block that cannot run
here says so and why on the line before it (``<!-- not-run: needs a MongoDB server -->``);
blocks in other languages (yaml, toml, plain text) are shown, not run. CONTRIBUTING.md states
the convention.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("drivers/*/README.md"))]
RUN_LANGUAGES = ("python", "bash")
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)[^\n]*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")


@dataclass
class Block:
    """One fenced code block of a markdown file."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the reason given, for a block marked not runnable

    @property
    def where(self) -> str:
        return f"{_shown(self.path)}:{self.line}"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


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
        marker = _NOT_RUN.match(previous)
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{_shown(path)}:{start + 1}: unclosed {fence} fence")
        i += 1
        blocks.append(
            Block(path, start + 1, language, "\n".join(body) + "\n", marker and marker.group(1))
        )
    return blocks


def test_extractor_reads_markers_and_languages(tmp_path):
    """The extractor itself: languages, markers (the nearest non-blank line) and bad fences."""
    md = tmp_path / "x.md"
    md.write_text(
        "text\n```python\na = 1\n```\n<!-- not-run: needs a server -->\n\n```bash\nx\n```\n"
        "```yaml\nk: v\n```\n"
    )
    blocks = code_blocks(md)
    assert [(b.language, b.not_run, b.code) for b in blocks] == [
        ("python", None, "a = 1\n"),
        ("bash", "needs a server", "x\n"),
        ("yaml", None, "k: v\n"),
    ]
    md.write_text("```python\na = 1\n")
    with pytest.raises(AssertionError, match="x.md:1: unclosed"):
        code_blocks(md)


def test_every_readme_block_is_run_or_marked():
    """Each block is runnable or says why not; no fence is left open (a README renders wrong)."""
    for path in READMES:
        for block in code_blocks(path):
            if block.not_run is not None:
                assert len(block.not_run) > 5, f"{block.where}: say why the block is not run"


@pytest.fixture
def demo_folder(tmp_path, monkeypatch):
    """A working directory and a data folder holding what README command 1's demo writes."""
    from intake_broker.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(data))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "catalogs").symlink_to(ROOT / "catalogs")  # as in a clone: "catalogs/aps.yml"
    assert main(["--no-progress", "demo"]) == 0
    return tmp_path


def _shell_env(workdir: Path) -> dict[str, str]:
    """The environment of the bash blocks: ``intake-broker`` of this checkout on PATH."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "intake-broker"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{_SHIM}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([*sys.path[1:], env.get("PYTHONPATH", "")])
    env["NO_COLOR"] = "1"
    return env


_COUNT = re.compile(r"^len\((?P<expr>.+)\)\s+#\s*(?P<n>\d+)\b.*$", re.M)


def checked(code: str) -> str:
    """``code`` with each top-level ``len(x)  # N ...`` line made an assertion that it is N."""

    def assertion(match: re.Match) -> str:
        expr, n = match["expr"], match["n"]
        return f"assert len({expr}) == {n}, {f'len({expr}) != {n}'!r}"

    return _COUNT.sub(assertion, code)


def test_counts_in_comments_are_checked():
    namespace: dict = {}
    exec(checked("xs = [1, 2]\nlen(xs)  # 2: two\nlen(xs) # 2\n"), namespace)
    with pytest.raises(AssertionError, match="len\\(xs\\) != 3"):
        exec(checked("xs = [1, 2]\nlen(xs)  # 3 runs\n"), namespace)


_SHIM = "import sys; from intake_broker.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("path", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_runs(path, demo_folder):
    """Every runnable block of ``path``, in order, one namespace for the file."""
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": f"readme_{path.parent.name}"}
    env = _shell_env(demo_folder)
    ran = 0
    for block in code_blocks(path):
        if block.not_run is not None or block.language not in RUN_LANGUAGES:
            continue
        if block.language == "python":
            try:
                exec(compile(checked(block.code), block.where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{block.where}: {type(err).__name__}: {err}") from err
        else:
            assert shutil.which("bash"), "bash is needed for the README's shell blocks"
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=demo_folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"{block.where}: {done.stdout}\n{done.stderr}"
        ran += 1
    import matplotlib.pyplot as plt

    plt.close("all")
    assert ran or path != READMES[0], "the README tour ran no block"
