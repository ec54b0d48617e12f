"""The documentation site builds with ``mkdocs build --strict`` and says what the code does.

The build runs the tour (markdown-exec), writes the command-line reference from the parser
(``docs/hooks/cli_reference.py``) and the API pages from the docstrings (mkdocstrings); these
tests check the built HTML for the things that would show a stale or broken page. They need the
core's ``docs`` extra (requirements-dev.txt installs it) and are skipped, saying so, without it.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_PACKAGES = (
    "mkdocs",
    "material",
    "mkdocstrings",
    "mkdocstrings_handlers.python",
    "markdown_exec",
)


def _missing() -> list[str]:
    missing = []
    for name in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            missing.append(name)
    return missing


pytestmark = pytest.mark.skipif(
    bool(_missing()),
    reason="the documentation tools are not installed (pip install -e '.[docs]'): "
    + ", ".join(_missing()),
)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's notice about its successor
    env.pop("INTAKE_BROKER_DATA", None)  # the tour makes its own folder
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module's tests, with warnings as errors."""
    out = tmp_path_factory.mktemp("docs") / "site"
    done = _build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _text(page: Path) -> str:
    """The page's visible text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_cli_reference_names_every_subcommand(site: Path) -> None:
    from intake_broker import cli

    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    names = list(sub.choices)
    assert {"demo", "ls", "search", "export", "serve", "reindex"} <= set(names)
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    text = _text(site / "reference" / "cli" / "index.html")
    for name in names:
        assert f'id="intake-broker-{name}"' in page, f"no section for `intake-broker {name}`"
        assert f"usage: intake-broker {name}" in text, f"no --help text for {name}"
    # an option's description, as the parser has it: the page is the parser's own help
    demo_runs = next(a for a in sub.choices["demo"]._actions if "--runs" in a.option_strings)
    assert demo_runs.help is not None
    assert " ".join(demo_runs.help.split()[:4]) in " ".join(text.split())
    # a raw plugin command's own sub-commands are there too
    assert 'id="intake-broker-apikey-create"' in page


def test_tour_shows_what_running_it_printed(site: Path) -> None:
    source = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
    text = _text(site / "tour" / "index.html")
    # printed by `intake-broker demo` and by the console lines: not in the page's source
    assert "wrote 5 runs to" not in source
    assert "wrote 5 runs to" in text
    assert re.search(r">>> len\(cat\)\s*\n5\n", text), "the run count of the demo is missing"
    assert "('scan', 1)" in text  # cat[1]'s plan_name and scan_id, as the run holds them
    assert re.search(r"det\s+\(time\) int64", text), "the xarray repr of the step scan"
    assert "Traceback" not in text
    page = (site / "tour" / "index.html").read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' in page  # the plot drawn at build time


def test_api_reference_comes_from_the_docstrings(site: Path) -> None:
    from intake_broker.errors import RunNotFound
    from intake_broker.views.catalog import BrokerCatalog

    views = site / "reference" / "api" / "views" / "index.html"
    assert 'id="intake_broker.views.catalog.BrokerCatalog.search"' in views.read_text("utf-8")
    first_line = (BrokerCatalog.search.__doc__ or "").strip().splitlines()[0].replace("`", "")
    assert first_line and " ".join(first_line.split()) in " ".join(_text(views).split())
    errors = _text(site / "reference" / "api" / "errors" / "index.html")
    assert (RunNotFound.__doc__ or "").strip().splitlines()[0] in errors


def test_architecture_page_is_the_repository_file(site: Path) -> None:
    text = _text(site / "architecture" / "index.html")
    headings = re.findall(r"^## (.+)$", (ROOT / "docs/architecture.md").read_text("utf-8"), re.M)
    assert headings
    for heading in headings:
        assert heading.replace("`", "") in text


def test_a_failing_code_block_fails_the_build(tmp_path: Path) -> None:
    """The tour's code is run by the site's own configuration: an exception fails --strict."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        '# Broken\n\n```python exec="on"\nraise RuntimeError("the tour broke here")\n```\n',
        encoding="utf-8",
    )
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        "nav: [index.md]\n"
        f"hooks: [{ROOT / 'docs' / 'hooks' / 'cli_reference.py'}]\n",
        encoding="utf-8",
    )
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0
    assert "the tour broke here" in done.stdout + done.stderr
