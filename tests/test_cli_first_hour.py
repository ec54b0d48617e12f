"""The command line accepts what it suggests (issue #23, item 2): global options on either side
of the command, names from ``catalogs``, ``--entry`` for ``import``, did-you-mean, a description
for every option, plurals, and progress bars only on a terminal."""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from intake_broker.cli import build_parser, did_you_mean, main, plural

pytest.importorskip("intake_broker_files")


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("INTAKE_PATH", "")


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def demo(tmp_path, capsys) -> Path:
    folder = tmp_path / "data"
    code, out, err = cli(capsys, "demo", "--data", folder, "--no-progress")
    assert code == 0, err
    assert "wrote 5 runs to" in out
    return folder


def test_global_options_before_or_after_the_command(demo, capsys):
    before = cli(capsys, "--data", demo, "ls", "--limit", 2)
    after = cli(capsys, "ls", "--limit", 2, "--data", demo)
    assert before[0] == after[0] == 0
    assert before[1] == after[1] and "... 3 more runs (showing 2 of 5" in after[1]
    # the other (empty) default folder is not what was listed
    code, out, _ = cli(capsys, "ls")
    assert code == 0 and out.startswith("no runs")


def test_a_later_global_option_wins_and_an_absent_one_keeps_the_earlier(demo, tmp_path, capsys):
    code, out, _ = cli(capsys, "--data", tmp_path / "empty", "ls", "--data", demo)
    assert code == 0 and "showing" not in out and len(out.splitlines()) == 6
    code, out, _ = cli(capsys, "--data", demo, "ls", "--limit", 1)
    assert code == 0 and "... 4 more runs" in out


def test_every_option_of_every_command_is_described():
    parser = build_parser()
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if not option.help or option.help == argparse.SUPPRESS:
                        missing.append(f"{name} {option.option_strings or option.dest}")
    assert not missing


def test_did_you_mean_for_commands(capsys):
    code, _, err = cli(capsys, "lss")
    assert code == 2 and "unknown command 'lss' (did you mean 'ls'?)" in err


def test_did_you_mean_for_runs(demo, capsys):
    code, out, _ = cli(capsys, "--data", demo, "ls")
    uids = [line.split()[0] for line in out.splitlines()[1:]]
    # a scan_id one digit from 5 that is no uid's prefix either (uids are random hex)
    typed = next(n for n in ("51", "52", "53", "54") if not any(u.startswith(n) for u in uids))
    code, _, err = cli(capsys, "--data", demo, "show", typed)
    assert code == 1 and f"no run with scan_id {typed}" in err and "(did you mean '5'" in err
    uid = uids[0]
    typo = uid[:-1] + ("0" if uid[-1] != "0" else "1")
    code, _, err = cli(capsys, "--data", demo, "show", typo)
    assert code == 1 and f"did you mean '{uid}'?" in err
    assert "Traceback" not in err


CATALOG = """sources:
  csx:
    driver: bluesky-msgpack-catalog
    args: {{paths: [{runs}], create: true}}
  chx:
    driver: bluesky-memory-catalog
"""


@pytest.fixture
def two_entries(tmp_path) -> Path:
    path = tmp_path / "beamlines.yml"
    path.write_text(CATALOG.format(runs=tmp_path / "csx-runs"))
    return path


def test_entry_typo_gets_did_you_mean(two_entries, capsys):
    code, _, err = cli(capsys, "ls", "--catalog", two_entries, "--entry", "cxs")
    assert code == 1 and "no entry 'cxs' (did you mean 'csx'" in err


def test_import_honours_entry(two_entries, demo, tmp_path, capsys, monkeypatch):
    # into the YAML entry csx, from the demo's default folder
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(demo))
    code, out, err = cli(capsys, "import", "default", f"{two_entries}#csx", "--no-progress")
    assert code == 0, err
    assert out.startswith("copied 5 runs")
    # back out of it, choosing the entry with --entry (which 'import' used to ignore)
    code, _, err = cli(capsys, "import", two_entries, tmp_path / "back", "--no-progress")
    assert code == 2 and "choose one with --entry NAME" in err
    target = tmp_path / "back-data"
    code, out, err = cli(
        capsys, "import", two_entries, "--entry", "csx", "--data", target, "--no-progress"
    )
    assert code == 0, err
    assert out.startswith("copied 5 runs")
    code, out, _ = cli(capsys, "ls", "--data", target)
    assert "... " not in out and len(out.splitlines()) == 6


def test_every_name_catalogs_lists_works_with_catalog(two_entries, demo, tmp_path, capsys):
    folder = demo / "catalogs"
    folder.mkdir()
    (folder / "beamlines.yml").write_text(two_entries.read_text())
    code, out, _ = cli(capsys, "catalogs", "--data", demo)
    names = [line.split()[0] for line in out.split("\n\n")[0].splitlines()[1:]]
    assert {"csx", "chx"} <= set(names)
    for name in ("csx", "chx"):
        code, out, err = cli(capsys, "ls", "--catalog", name, "--data", demo)
        assert code == 0, err
        assert out.startswith("no runs")
    code, _, err = cli(capsys, "ls", "--catalog", "csxx", "--data", demo)
    assert code == 1 and "(did you mean 'csx'" in err


def test_plural():
    assert [plural(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert plural(1, "entry", "entries") == "1 entry" and did_you_mean("zzz", ["ls"]) == ""


# -- the command as typed, with stderr a terminal or not -----------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "INTAKE_BROKER_DATA": str(tmp_path / "data"), **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def _run_on_pty(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal; (exit status, what it drew there)."""
    primary, secondary = os.openpty()
    # a terminal of 100 columns (a new pty has 0, where tqdm draws nothing)
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(timeout), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def runs_files(tmp_path) -> Path:
    """Suitcase-jsonl files of the demo runs (an export of them)."""
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "intake_broker.cli"]
    subprocess.run([*cmd, "demo"], env=env, check=True, capture_output=True)
    out = tmp_path / "files"
    done = subprocess.run(
        [*cmd, "export", "scan_id > 0", "--format", "jsonl", "--to", out],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "exported 5 runs" in done.stdout
    assert done.stderr == ""  # no progress bar into a pipe
    return out


@pytest.mark.parametrize("command", ["ingest", "import"])
def test_progress_only_on_a_terminal(command, runs_files, tmp_path):
    cmd = [sys.executable, "-m", "intake_broker.cli", command, str(runs_files)]
    to = ["--data", str(tmp_path / f"{command}-pipe")]
    done = subprocess.run([*cmd, *to], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    to = ["--data", str(tmp_path / f"{command}-tty")]
    code, drawn = _run_on_pty([*cmd, *to], _env(tmp_path))
    assert code == 0, drawn
    assert "%|" in drawn  # a tqdm bar
    # throttled: far fewer redraws than documents (tqdm's mininterval)
    assert drawn.count("\r") < 20
    to = ["--data", str(tmp_path / f"{command}-off")]
    code, drawn = _run_on_pty([*cmd, *to, "--no-progress"], _env(tmp_path))
    assert code == 0 and "%|" not in drawn


def test_console_script_takes_data_after_the_command(tmp_path):
    env = _env(tmp_path)
    where = tmp_path / "elsewhere"
    done = subprocess.run(
        [sys.executable, "-m", "intake_broker.cli", "demo", "--data", str(where)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert str(where) in done.stdout and (where / "runs").is_dir()
    assert not (tmp_path / "data" / "runs").exists()


# -- tables and colours: rich on a terminal, plain columns into a pipe ----------------------------


def _on_terminal(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on one pseudo-terminal of 120 columns."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args, env=env, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(timeout), b"".join(chunks).decode(errors="replace")


CLI = [sys.executable, "-m", "intake_broker.cli"]
ESC = "\x1b["


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory) -> dict[str, str]:
    """The demo's runs (the newest tagged), written once for the tests below."""
    env = _env(tmp_path_factory.mktemp("tables"), INTAKE_PATH="")
    done = subprocess.run([*CLI, "demo"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*CLI, "tag", "-1", "good"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return env


@pytest.mark.parametrize(
    ("command", "header", "plain"),
    [
        (["ls"], "SCAN", "SCAN"),
        (["search", "scan_id > 2"], "SCAN", "SCAN"),
        (["show", "-1"], "DTYPE", "DTYPE"),
        (["annotations", "-1"], "VISIBILITY", "private by "),  # plain: one block per annotation
        (["annotations", "-1", "--history"], "CHANGE", "CHANGE"),
        (["catalogs"], "DRIVER", "DRIVER"),
    ],
)
def test_tables_are_drawn_on_a_terminal_and_plain_into_a_pipe(command, header, plain, demo_env):
    if command == ["catalogs"]:  # a catalog to list
        folder = Path(demo_env["INTAKE_BROKER_DATA"]) / "catalogs"
        folder.mkdir(exist_ok=True)
        (folder / "x.yml").write_text("sources:\n  x: {driver: bluesky-memory-catalog}\n")
    code, drawn = _on_terminal([*CLI, *command], demo_env)
    assert code == 0, drawn
    assert header in drawn and "─" in drawn  # rich's rule under the header
    assert ESC + "1m" in drawn  # bold headers
    piped = subprocess.run([*CLI, *command], env=demo_env, capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert plain in piped.stdout and "─" not in piped.stdout and ESC not in piped.stdout
    # the plain format scripts read: columns two spaces apart, no box
    row = next(line for line in piped.stdout.splitlines() if plain in line)
    assert plain != header or "  " in row.strip()
    # NO_COLOR: still a table, not one escape code
    code, drawn = _on_terminal([*CLI, *command], {**demo_env, "NO_COLOR": "1"})
    assert code == 0 and header in drawn and "─" in drawn
    assert "\x1b" not in drawn


def test_run_status_is_coloured_and_the_pipe_gets_todays_columns(demo_env):
    code, drawn = _on_terminal([*CLI, "ls"], demo_env)
    assert code == 0 and ESC + "32msuccess" in drawn  # green
    piped = subprocess.run([*CLI, "ls"], env=demo_env, capture_output=True, text=True)
    lines = piped.stdout.splitlines()
    assert lines[0].split() == ["UID", "SCAN", "PLAN", "START", "EVENTS", "STATUS", "TAGS"]
    assert lines[1].split()[-2:] == ["success", "good"] and len(lines) == 6


def test_errors_are_red_on_a_terminal_only(demo_env):
    code, drawn = _on_terminal([*CLI, "show", "99"], demo_env)
    assert code == 1 and ESC + "31mintake-broker: error: no run with scan_id 99" in drawn
    code, drawn = _on_terminal([*CLI, "lss"], demo_env)  # argparse's errors too
    assert code == 2 and ESC + "31mintake-broker: error: unknown command 'lss'" in drawn
    code, drawn = _on_terminal([*CLI, "show", "99"], {**demo_env, "NO_COLOR": "1"})
    assert code == 1 and "intake-broker: error: no run" in drawn and "\x1b" not in drawn
    piped = subprocess.run([*CLI, "show", "99"], env=demo_env, capture_output=True, text=True)
    assert piped.returncode == 1
    assert piped.stderr.startswith("intake-broker: error: no run with scan_id 99")
    assert "\x1b" not in piped.stderr


def test_run_metadata_cannot_send_escape_codes_to_the_terminal(tmp_path):
    env = _env(tmp_path)
    evil = tmp_path / "evil.jsonl"
    import event_model

    bundle = event_model.compose_run(metadata={"plan_name": "\x1b[2Jgone", "scan_id": 1})
    stop = bundle.compose_stop()
    evil.write_text(
        "\n".join(
            __import__("json").dumps(d) for d in (["start", bundle.start_doc], ["stop", stop])
        )
    )
    done = subprocess.run([*CLI, "ingest", str(evil)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for command in (["ls"], ["show", "-1"]):
        code, drawn = _on_terminal([*CLI, *command], {**env, "NO_COLOR": "1"})
        assert code == 0 and "\\x1b[2Jgone" in drawn and "\x1b" not in drawn


def test_a_search_keeps_its_catalogs_name_and_shows_its_query_and_count():
    from intake_broker import temp
    from intake_broker.demo import write_demo

    cat = temp()
    write_demo(cat, progress=False)
    found = cat.search("scan_id > 2").search("scan_id < 4")
    assert found.name == cat.name == "temp"
    shown = repr(found)
    assert shown.startswith("<MemoryCatalog 'temp': 1 run, search ") and "scan_id" in shown
    assert "_search" not in shown and "1 runs" not in shown
    assert "5 runs" in repr(cat)
