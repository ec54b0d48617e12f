"""The READMEs' code blocks run as written, in order, on the data of README command 1.

Every ```python and ```bash block of README.md and of each drivers/*/README.md runs, in the
order written, against a data folder that ``intake-broker demo`` has just filled (in a
temporary directory, through ``INTAKE_BROKER_DATA``): the python blocks of one file share one
namespace, the bash blocks run in a shell in the same working directory. A block that cannot run
here says so and why on the line before it (``<!-- not-run: needs a MongoDB server -->``);
blocks in other languages (yaml, toml, plain text) are shown, not run. CONTRIBUTING.md states
the convention; ``tests/readme_blocks.py`` is the extractor and runner (also run by
``.ci/minimal_install_check.sh`` in the venv of command 1 alone).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("drivers/*/README.md"))]


def _load_blocks_module():
    spec = importlib.util.spec_from_file_location("readme_blocks", ROOT / "tests/readme_blocks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_blocks"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


blocks = _load_blocks_module()


def test_extractor_reads_markers_and_languages(tmp_path):
    """The extractor itself: languages, markers (the nearest non-blank line) and bad fences."""
    md = tmp_path / "x.md"
    md.write_text(
        "text\n```python\na = 1\n```\n<!-- not-run: needs a server -->\n\n```bash\nx\n```\n"
        "<!-- needs: bluesky, ophyd -->\n```python\nb = 2\n```\n```yaml\nk: v\n```\n"
    )
    found = blocks.code_blocks(md)
    assert [(b.language, b.not_run, b.needs, b.code) for b in found] == [
        ("python", None, (), "a = 1\n"),
        ("bash", "needs a server", (), "x\n"),
        ("python", None, ("bluesky", "ophyd"), "b = 2\n"),
        ("yaml", None, (), "k: v\n"),
    ]
    assert blocks.run_blocks(md, tmp_path, skip_needs=True)[0] == 1  # a = 1 ran; b = 2 skipped
    md.write_text("```python\na = 1\n")
    with pytest.raises(AssertionError, match="x.md:1: unclosed"):
        blocks.code_blocks(md)


def test_counts_in_comments_are_checked():
    namespace: dict = {}
    exec(blocks.checked("xs = [1, 2]\nlen(xs)  # 2: two\nlen(xs) # 2\n"), namespace)
    with pytest.raises(AssertionError, match=r"len\(xs\) != 3"):
        exec(blocks.checked("xs = [1, 2]\nlen(xs)  # 3 runs\n"), namespace)


def test_every_readme_block_is_run_or_marked():
    """Each marker gives its reason; no fence is left open (a README would render wrong)."""
    for path in READMES:
        for block in blocks.code_blocks(path):
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


@pytest.mark.parametrize("path", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_runs(path, demo_folder):
    """Every runnable block of ``path``, in order, one namespace for the file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        ran, skipped = blocks.run_blocks(path, demo_folder)
    finally:
        plt.close("all")
    assert not skipped
    assert ran or path != READMES[0], "the README tour ran no block"
