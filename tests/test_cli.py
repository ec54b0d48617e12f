"""The ``intake-broker`` command line: demo, ls, show, search and ingest, run in-process through
``main([...])`` and once as a real console process."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

from intake_broker.cli import main, parse_query
from intake_broker.errors import BadQuery
from intake_broker.queries import And, Comparison, Eq, NotEq, Or

PLANS = ["scan", "count", "grid_scan", "rel_scan", "count"]


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """Never touch the real user data dir, even when a test forgets ``--data``."""
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path / "env-data"))


@pytest.fixture
def files_driver():
    return pytest.importorskip("intake_broker_files")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> list[list[str]]:
    """The rows of a run table (UID SCAN PLAN START EVENTS STATUS), split into cells."""
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("UID"))
    rows = []
    for line in lines[first + 1 :]:
        if not re.match(r"[0-9a-f]{8} ", line):
            break
        uid, scan_id, plan, day, clock, *rest = line.split()
        rows.append([uid, scan_id, plan, f"{day} {clock}", " ".join(rest[:-1]), rest[-1]])
    return rows


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A default-catalog folder holding one demo (5 runs), shared by the read-only tests."""
    pytest.importorskip("intake_broker_files")
    folder = tmp_path_factory.mktemp("demo") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTAKE_BROKER_DATA", str(folder.parent / "env-data"))
        assert main(["--data", str(folder), "--no-progress", "demo"]) == 0
    return folder


# -- parse_query --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('plan_name == "scan"', Eq("plan_name", "scan")),
        ("plan_name==scan", Eq("plan_name", "scan")),
        ("scan_id > 4", Comparison("gt", "scan_id", 4)),
        ("scan_id <= 4.5", Comparison("le", "scan_id", 4.5)),
        ("sample != 'LaB6 standard'", NotEq("sample", "LaB6 standard")),
        (
            'plan_name == "scan" and scan_id >= 4 AND stop.exit_status == success',
            And(
                (
                    Eq("plan_name", "scan"),
                    Comparison("ge", "scan_id", 4),
                    Eq("stop.exit_status", "success"),
                )
            ),
        ),
        (
            "flag == true and x == null and y < -1",
            And((Eq("flag", True), Eq("x", None), Comparison("lt", "y", -1))),
        ),
        (
            "scan_id > 4 or scan_id < 2",
            Or((Comparison("gt", "scan_id", 4), Comparison("lt", "scan_id", 2))),
        ),
        (
            '{"plan_name": "scan", "scan_id": {"$gt": 4}}',
            And((Eq("plan_name", "scan"), Comparison("gt", "scan_id", 4))),
        ),
    ],
)
def test_parse_query(text, expected):
    assert parse_query(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plan_name",
        "plan_name ==",
        "== scan",
        "scan_id > 4 or",
        "scan_id > 4 and",
        'plan_name == "unterminated',
        "a == b c",
        "a ~ 5",
        "{not json",
        '{"scan_id": {"$bogus": 1}}',
        "a.. == 1",
    ],
)
def test_parse_query_rejects(text):
    with pytest.raises(BadQuery):
        parse_query(text)


# -- demo, ls, show, search ---------------------------------------------------------------------


def test_demo_prints_table_and_notebook_lines(demo_dir, capsys):
    code, out, err = cli(capsys, "--data", demo_dir, "ls")
    assert code == 0, err
    rows = table_rows(out)
    assert [r[2] for r in rows] == PLANS[::-1]  # newest first
    assert [r[1] for r in rows] == ["5", "4", "3", "2", "1"]
    assert all(r[5] == "success" for r in rows)
    assert rows[2][4] == "primary:63" and rows[1][4] == "primary:15 baseline:2"


def test_demo_output(files_driver, tmp_path, capsys):
    code, out, err = cli(capsys, "--data", tmp_path / "runs", "demo")
    assert code == 0, err
    assert "wrote 5 runs" in out
    assert [r[2] for r in table_rows(out)] == PLANS[::-1]
    assert "from intake_broker import default_catalog" in out
    assert f"cat = default_catalog({str(tmp_path / 'runs')!r})" in out
    assert "cat[-1].primary.read()" in out
    assert "Traceback" not in err


def test_demo_twice_continues_scan_ids(files_driver, tmp_path, capsys):
    from intake_broker import default_catalog

    assert cli(capsys, "--data", tmp_path, "demo")[0] == 0
    code, out, _ = cli(capsys, "--data", tmp_path, "demo", "--runs", "1")
    assert code == 0
    assert [r[1] for r in table_rows(out)] == ["10", "9", "8", "7", "6"]
    cat = default_catalog(tmp_path)
    starts = [run.metadata["start"] for run in cat.values()]
    assert len(starts) == 10
    assert [s["scan_id"] for s in starts] == list(range(10, 0, -1))
    times = [s["time"] for s in starts]
    assert times == sorted(times, reverse=True)
    code, out, _ = cli(capsys, "--data", tmp_path, "ls")
    assert len(table_rows(out)) == 10


def test_demo_data_read_back(demo_dir):
    from intake_broker import default_catalog

    cat = default_catalog(demo_dir)
    assert len(cat) == 5
    runs = {run.metadata["start"]["scan_id"]: run for run in cat.values()}
    for run in runs.values():
        start, stop = run.metadata["start"], run.metadata["stop"]
        for key in (
            "plan_name",
            "plan_args",
            "scan_id",
            "detectors",
            "num_points",
            "hints",
            "sample",
            "operator",
        ):
            assert key in start
        assert stop["exit_status"] == "success"
        assert stop["num_events"] == {name: len(run[name].read()["time"]) for name in run}
        for descriptor in run.descriptors:
            assert descriptor["object_keys"]
            for dk in descriptor["data_keys"].values():
                assert dk["dtype_numpy"] and "units" in dk

    step = runs[1].primary.read()
    assert step.sizes["time"] == 21 == runs[1].metadata["start"]["num_points"]
    peak = float(step["motor"].values[np.argmax(step["det"].values)])
    assert -0.8 < peak < 0.8  # the simulated Gaussian peak is where the detector is highest
    assert runs[1].descriptors[0]["configuration"]["det"]["data"]["det_exposure_time"] == 0.5
    assert runs[1].descriptors[0]["data_keys"]["motor"]["units"] == "mm"

    assert set(runs[2].primary.read().data_vars) == {"i0", "diode", "ring_current"}

    nx, ny = runs[3].metadata["start"]["shape"]
    grid = runs[3].primary.read()
    assert grid.sizes["time"] == nx * ny == 63
    assert np.unique(grid["motor1_setpoint"]).size == nx

    assert list(runs[4]) == ["baseline", "primary"]
    baseline = runs[4].baseline.read()
    assert baseline.sizes["time"] == 2
    assert set(baseline.data_vars) == {"cryo_temp", "sample_temp", "slit_h_gap", "slit_v_gap"}

    images = runs[5].primary.read()["eiger_image"]
    assert images.shape == (5, 64, 64) and images.dtype == np.uint16
    assert images.dims == ("time", "y", "x")
    frame = images.values[0].astype(float)
    assert frame.max() > 20 * np.median(frame)  # a bright spot over a noisy background


def test_default_location_from_environment(files_driver, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path / "elsewhere"))
    code, out, _ = cli(capsys, "ls")
    assert code == 0 and "no runs" in out
    assert (tmp_path / "elsewhere" / "runs").is_dir()


def test_ls_limit(demo_dir, capsys):
    code, out, _ = cli(capsys, "--data", demo_dir, "ls", "--limit", "2")
    assert code == 0
    assert [r[1] for r in table_rows(out)] == ["5", "4"]
    assert "3 more runs" in out
    code, out, _ = cli(capsys, "--data", demo_dir, "ls", "--query", "scan_id < 3")
    assert [r[1] for r in table_rows(out)] == ["2", "1"]


def test_show_newest(demo_dir, capsys):
    code, out, err = cli(capsys, "--data", demo_dir, "show", "-1")
    assert code == 0, err
    assert "plan_name" in out and "count" in out and "exit_status" in out
    assert re.search(r"eiger_image\s+uint16\s+64x64\s+counts", out)
    assert "stream primary: 5 events" in out


def test_show_by_uid_prefix_and_scan_id(demo_dir, capsys):
    from intake_broker import default_catalog

    uid = default_catalog(demo_dir)[4].metadata["start"]["uid"]
    code, by_prefix, _ = cli(capsys, "--data", demo_dir, "show", uid[:6])
    assert code == 0 and f"run {uid}" in by_prefix
    assert "stream baseline: 2 events" in by_prefix and "stream primary: 15 events" in by_prefix
    code, by_scan_id, _ = cli(capsys, "--data", demo_dir, "show", "4")
    assert code == 0 and by_scan_id == by_prefix


def test_show_documents(demo_dir, capsys):
    code, out, _ = cli(capsys, "--data", demo_dir, "show", "--documents", "-2")
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs[0][0] == "start" and docs[-1][0] == "stop"
    assert docs[0][1]["plan_name"] == "rel_scan"
    assert {name for name, _ in docs} >= {"descriptor", "event_page"}


def test_show_unknown_run(demo_dir, capsys):
    code, out, err = cli(capsys, "--data", demo_dir, "show", "fedcba98")
    assert code == 1 and out == ""
    assert err.startswith("intake-broker: error: ") and "fedcba98" in err
    assert "Traceback" not in err
    # a number that is neither a scan_id nor the start of a uid (uids are random)
    from intake_broker import default_catalog

    uids = list(default_catalog(demo_dir))
    number = next(str(n) for n in range(90, 200) if not any(u.startswith(str(n)) for u in uids))
    code, _, err = cli(capsys, "--data", demo_dir, "show", number)
    assert code == 1 and f"scan_id {number}" in err
    code, _, err = cli(capsys, "--data", demo_dir, "show", "-9")
    assert code == 1 and "-9" in err


def test_search(demo_dir, capsys):
    code, out, _ = cli(capsys, "--data", demo_dir, "search", 'plan_name == "count"')
    assert code == 0
    assert [r[1] for r in table_rows(out)] == ["5", "2"]
    code, out, _ = cli(capsys, "--data", demo_dir, "search", '{"scan_id": {"$gte": 3}}')
    assert [r[2] for r in table_rows(out)] == ["count", "rel_scan", "grid_scan"]
    code, out, _ = cli(
        capsys, "--data", demo_dir, "search", "plan_name", "!=", "count", "and", "scan_id", ">", "1"
    )
    assert [r[2] for r in table_rows(out)] == ["rel_scan", "grid_scan"]
    code, out, _ = cli(capsys, "--data", demo_dir, "search", "plan_name == nothing")
    assert code == 0 and "no runs match" in out


def test_search_bad_query(demo_dir, capsys):
    code, out, err = cli(capsys, "--data", demo_dir, "search", "scan_id >")
    assert code == 2 and out == ""
    assert err.startswith("intake-broker: error: ")
    assert "syntax error at column 10" in err and "expected a value" in err
    code, _, err = cli(capsys, "--data", demo_dir, "search", '{"scan_id": {"$near": 1}}')
    assert code == 2 and "$near" in err


def test_usage_errors(tmp_path, capsys):
    assert cli(capsys, "--entry", "x", "ls")[0] == 2
    assert cli(capsys, "ls", "--limit", "0")[0] == 2
    code, _, err = cli(capsys, "--catalog", tmp_path / "missing.yml", "ls")
    assert code == 1 and "missing.yml" in err


def test_yaml_catalog(tmp_path, capsys):
    yml = tmp_path / "cat.yml"
    yml.write_text(
        "sources:\n  mem:\n    driver: bluesky-memory-catalog\n"
        "  other:\n    driver: bluesky-memory-catalog\n"
    )
    code, _, err = cli(capsys, "--catalog", yml, "ls")
    assert code == 2 and "--entry" in err and "mem" in err
    code, out, _ = cli(capsys, "--catalog", yml, "--entry", "mem", "--no-progress", "demo")
    assert code == 0 and len(table_rows(out)) == 5
    assert "open_catalog" in out and "['mem']" in out


# -- ingest -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suitcase_files(tmp_path_factory):
    """Runs recorded by a real RunEngine with ophyd.sim devices, written by suitcase-jsonl
    (a scan) and suitcase-msgpack (a count)."""
    pytest.importorskip("bluesky")
    import suitcase.jsonl
    import suitcase.msgpack
    from bluesky import RunEngine
    from bluesky.plans import count, scan
    from ophyd.sim import det, det1, det2, motor

    folder = tmp_path_factory.mktemp("suitcase")
    RE = RunEngine({})
    uids = {}
    with suitcase.jsonl.Serializer(folder) as serializer:
        token = RE.subscribe(serializer)
        (uids["jsonl"],) = RE(scan([det], motor, -1, 1, 7), sample="LaB6")
        RE.unsubscribe(token)
    with suitcase.msgpack.Serializer(folder) as serializer:
        token = RE.subscribe(serializer)
        (uids["msgpack"],) = RE(count([det1, det2], num=3), operator="ingest test")
        RE.unsubscribe(token)
    files = {"jsonl": next(folder.glob("*.jsonl")), "msgpack": next(folder.glob("*.msgpack"))}
    return files, uids


def test_ingest_suitcase_files(files_driver, suitcase_files, tmp_path, capsys):
    from intake_broker import default_catalog

    files, uids = suitcase_files
    code, out, err = cli(capsys, "--data", tmp_path, "ingest", files["jsonl"], files["msgpack"])
    assert code == 0, err
    assert "ingested" in out and "of 2 runs" in out
    n_docs = int(re.search(r"ingested (\d+) documents", out).group(1))
    with files["msgpack"].open("rb") as f:
        n_msgpack = sum(1 for _ in msgpack.Unpacker(f))
    assert n_docs == len(files["jsonl"].read_text().splitlines()) + n_msgpack
    code, out, _ = cli(capsys, "--data", tmp_path, "ls")
    rows = table_rows(out)
    assert [r[0] for r in rows] == [uids["msgpack"][:8], uids["jsonl"][:8]]
    assert rows[1][2] == "scan" and rows[1][4] == "primary:7"
    assert rows[0][2] == "count" and rows[0][4] == "primary:3"

    cat = default_catalog(tmp_path)
    assert cat[uids["jsonl"]].primary.read()["det"].shape == (7,)
    assert cat[uids["msgpack"]].primary.read()["det2"].shape == (3,)

    # ingesting the same files again changes nothing
    code, out, _ = cli(
        capsys, "--data", tmp_path, "ingest", "--no-validate", files["jsonl"], files["msgpack"]
    )
    assert code == 0 and "2 already in the catalog" in out
    assert len(default_catalog(tmp_path)) == 2


def test_ingest_stdin(files_driver, suitcase_files, tmp_path, monkeypatch, capsys):
    files, uids = suitcase_files
    monkeypatch.setattr(sys, "stdin", io.StringIO(files["jsonl"].read_text()))
    code, out, err = cli(capsys, "--data", tmp_path, "ingest", "-")
    assert code == 0, err
    assert out.strip().endswith("of 1 run")
    code, out, _ = cli(capsys, "--data", tmp_path, "show", uids["jsonl"][:8])
    assert code == 0 and "LaB6" in out


def test_ingest_bad_line(files_driver, suitcase_files, tmp_path, capsys):
    files, uids = suitcase_files
    lines = files["jsonl"].read_text().splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines[:3]) + "this is not JSON\n" + "".join(lines[3:]))
    data = tmp_path / "runs"
    code, out, err = cli(capsys, "--data", data, "ingest", bad, files["msgpack"])
    assert code == 1
    assert f"{bad}: line 4" in err and "not JSON" in err and "Traceback" not in err
    assert "ingested 3 documents" in out
    code, out, _ = cli(capsys, "--data", data, "ls")
    assert uids["msgpack"][:8] not in out  # stopped at the bad file

    code, out, err = cli(capsys, "--data", data, "ingest", "--keep-going", bad, files["msgpack"])
    assert code == 1 and f"{bad}: line 4" in err and "1 of 2 sources failed" in err
    code, out, _ = cli(capsys, "--data", data, "ls")
    assert uids["msgpack"][:8] in out


def test_incomplete_run(files_driver, suitcase_files, tmp_path, capsys):
    files, uids = suitcase_files
    lines = files["jsonl"].read_text().splitlines(keepends=True)
    assert lines[-1].startswith('["stop"')
    cut = tmp_path / "no-stop.jsonl"
    cut.write_text("".join(lines[:-1]))
    data = tmp_path / "runs"
    assert cli(capsys, "--data", data, "ingest", cut)[0] == 0
    code, out, _ = cli(capsys, "--data", data, "ls")
    assert code == 0
    (row,) = table_rows(out)
    assert row[4] == "(no stop document)" and row[5] == "incomplete"
    code, out, _ = cli(capsys, "--data", data, "show", "-1")
    assert code == 0 and "stop: none" in out and "stream primary: 7 events" in out


def test_ingest_unknown_file_type(tmp_path, capsys):
    other = tmp_path / "runs.csv"
    other.write_text("a,b\n")
    code, _, err = cli(capsys, "--catalog", "memory", "ingest", other)
    assert code == 2 and "runs.csv" in err and ".jsonl" in err


# -- the console entry point --------------------------------------------------------------------


def test_console_entry_point(demo_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "intake_broker.cli", "--data", str(demo_dir), "show", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
        env={**os.environ, "INTAKE_BROKER_DATA": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "eiger_image" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "intake_broker.cli", "--data", str(demo_dir), "show", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("intake-broker: error:") and "Traceback" not in proc.stderr


def test_search_save_and_saved(demo_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path))
    code, out, _ = cli(
        capsys, "--data", demo_dir, "search", "--save", "counts", 'plan_name == "count"'
    )
    assert code == 0 and "saved as 'counts'" in out
    code, again, _ = cli(capsys, "--data", demo_dir, "search", "--saved", "counts")
    assert code == 0 and again.count("count") == out.count("count") - 1  # no "saved as" line
    code, _, err = cli(capsys, "--data", demo_dir, "search")
    assert code == 2 and "--saved NAME" in err


def test_summarize_without_assets(demo_dir, capsys):
    code, out, _ = cli(capsys, "--data", demo_dir, "summarize", "-1")
    assert code == 0 and "summarized the asset data of 1 run\n" in out


def test_serve_refuses_several_workers_on_a_memory_store(capsys):
    pytest.importorskip("intake_broker_server")
    code, _, err = cli(capsys, "--catalog", "memory", "serve", "--workers", "2")
    assert code == 2 and "memory store lives in one process" in err


def test_import_a_folder_of_files_into_the_default_catalog(demo_dir, tmp_path, capsys):
    pytest.importorskip("intake_broker_native")
    from intake_broker import default_catalog
    from intake_broker.transfer import copy_runs
    from intake_broker_files import MsgpackStore

    files = tmp_path / "files"
    copy_runs(default_catalog(demo_dir).store, MsgpackStore.in_folder(files), progress=False)
    target = tmp_path / "data"
    code, out, err = cli(capsys, "--data", target, "--no-progress", "import", files)
    assert code == 0, err
    assert "copied 5 runs" in out
    code, out, _ = cli(capsys, "--data", target, "--no-progress", "import", files)
    assert "copied 0 runs" in out and "skipped 5 already complete" in out
    assert len(default_catalog(target)) == 5


def test_apikey_create_list_revoke(tmp_path, capsys):
    pytest.importorskip("intake_broker_server")
    keys = tmp_path / "keys.json"
    code, out, _ = cli(capsys, "apikey", "--keys", keys, "create", "ada", "--scopes", "read")
    assert code == 0 and out.splitlines()[0].count(".") == 1  # <id>.<secret>, shown once
    key_id = out.split(".")[0]
    assert out.split(".")[1].split()[0] not in keys.read_text()  # only a hash is kept
    code, out, _ = cli(capsys, "apikey", "--keys", keys, "revoke", key_id)
    assert code == 0
    code, out, _ = cli(capsys, "apikey", "--keys", keys, "list")
    assert key_id in out and "revoked" in out
