"""``intake-broker derive PIPELINE QUERY --dest ...`` and ``intake-broker lineage RUN`` over runs
a RunEngine recorded, in the default (native) catalog of a temporary data folder."""

from __future__ import annotations

import json

import pytest

from intake_broker.catalogs.config import default_catalog
from intake_broker.cli import main
from intake_broker.testing import insert_all
from intake_broker.testing.recorded import recorded_runs

PIPELINE = "intake_broker.testing.pipelines:reduce_and_fit"


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_BROKER_DATA", str(tmp_path / "env-data"))


@pytest.fixture
def data(tmp_path):
    """A data folder whose default catalog holds the recorded scan, count and grid_scan."""
    pytest.importorskip("intake_broker_native")
    pytest.importorskip("bluesky")
    runs = recorded_runs()
    catalog = default_catalog(tmp_path / "data")
    for label in ("scan", "count", "grid_scan"):
        insert_all(catalog.store, runs[label])
    catalog.store.close()
    return tmp_path / "data"


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_derive_stores_results_skips_them_again_and_shows_their_lineage(data, capsys):
    args = ("--data", data, "--no-progress", "derive", PIPELINE)
    code, out, err = cli(capsys, *args, 'plan_name in ["scan", "count"]', "--dest", "default")
    assert code == 0, err
    assert out.splitlines() == [
        "reduce_det: 2 runs written, 0 skipped (already computed), 0 failed",
        "fit_peaks: 2 runs written, 0 skipped (already computed), 0 failed",
    ]
    code, out, _ = cli(capsys, *args, 'plan_name in ["scan", "count"]', "--dest", "default")
    assert code == 0 and "0 runs written, 2 skipped" in out

    code, out, _ = cli(capsys, "--data", data, "lineage", "-1")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert "fit_peaks-v1/reduce_det-v1/" in lines[0] and "reduce_det-v1/" in lines[1]
    assert lines[2].strip().split()[1] in ("scan", "count")

    code, out, _ = cli(capsys, "--data", data, "lineage", "-1", "--prov")
    assert code == 0 and len(json.loads(out)["wasDerivedFrom"]) == 2


def test_derive_reports_a_failing_input_and_exits_1(data, capsys):
    code, out, _ = cli(
        capsys, "--data", data, "derive", PIPELINE, 'plan_name == "grid_scan"', "--dest", "default"
    )
    assert code == 1
    assert "reduce_det: 0 runs written, 0 skipped (already computed), 1 failed" in out
    assert "has no data keys ['det']" in out


@pytest.mark.parametrize(
    "pipeline, words",
    [
        ("pipelines.py", "PIPELINE is module:name"),
        ("/tmp/x:reduce", "PIPELINE is module:name"),
        ("intake_broker.no_such_module:x", "cannot import 'intake_broker.no_such_module'"),
        ("intake_broker.testing.pipelines:np", "is a module; PIPELINE names a function"),
        ("intake_broker.testing.pipelines:nothing", "is nothing; PIPELINE names a function"),
    ],
)
def test_derive_refuses_what_is_not_an_importable_pipeline(data, capsys, pipeline, words):
    code, _, err = cli(capsys, "--data", data, "derive", pipeline, "--dest", "default")
    assert code == 2 and words in err


def test_derive_refuses_bad_parameters(data, capsys):
    code, _, err = cli(
        capsys, "--data", data, "derive", PIPELINE, "--dest", "default", "--parameters", "[1]"
    )
    assert code == 2 and "--parameters is a JSON object" in err
    code, _, err = cli(
        capsys, "--data", data, "derive", PIPELINE, "--dest", "default", "--parameters", "{"
    )
    assert code == 2 and "--parameters is a JSON object" in err
