"""HPC staging (issue 21, item 4): ``intake-broker stage`` exports a search's inputs with a
manifest and writes a Slurm job array; each task's command, run here as Slurm would run it
(``SLURM_ARRAY_TASK_ID`` set, no database), computes one input; the ingest script stores the
results, whose provenance names the original inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.cli import main
from intake_broker.provenance.staging import StagingError, read_stage, run_task, stage
from intake_broker.testing import insert_all
from intake_broker.testing.pipelines import reduce_and_fit
from intake_broker.testing.recorded import recorded_runs

pytest.importorskip("intake_broker_files", reason="staged files are read by the files driver")
PIPELINE = "intake_broker.testing.pipelines:reduce_and_fit"


@pytest.fixture(scope="module")
def raw():
    pytest.importorskip("bluesky")
    recorded = recorded_runs()
    store = MemoryStore()
    for label in ("scan", "count", "grid_scan"):  # grid_scan has no det: its task fails
        insert_all(store, recorded[label])
    return store


def task_command(script: str) -> str:
    """The command line of a job-array script (its last line)."""
    return [line for line in script.splitlines() if line and not line.startswith("#")][-1]


def test_a_staged_pipeline_runs_task_by_task_and_its_results_are_ingested(raw, tmp_path):
    executable = shutil.which("intake-broker")
    if executable is None:
        pytest.skip("the intake-broker command is not installed")
    results_yml = tmp_path / "results.yml"
    results_yml.write_text(
        textwrap.dedent(f"""
        sources:
          results:
            driver: bluesky-native-catalog
            args:
              index: "sqlite:///{tmp_path}/results/index.sqlite"
              data: "{tmp_path}/results/data"
              create: true
    """)
    )
    pytest.importorskip("intake_broker_native")
    folder = tmp_path / "stage"
    plan = stage(
        BrokerCatalog(raw).values(),
        PIPELINE,
        folder,
        dest=str(results_yml),
        sbatch=["--partition=short", "--time=00:10:00"],
        command=executable,
    )
    uids = sorted(r.uid for r in BrokerCatalog(raw).values())
    assert plan.tasks == uids
    manifest = json.loads((folder / "inputs" / "manifest.json").read_text())
    assert sorted(manifest["runs"]) == uids and manifest["format"] == "jsonl"
    script = plan.slurm.read_text()
    assert "#SBATCH --array=0-2" in script and "#SBATCH --partition=short" in script
    assert read_stage(folder)["pipeline"] == PIPELINE

    # each task as Slurm runs it: a fresh process, its number in the environment
    command = task_command(script)
    codes = []
    for task in range(len(plan.tasks)):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task)}
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
        codes.append(done.returncode)
        assert done.returncode in (0, 1), done.stderr
    grid = next(
        i
        for i, u in enumerate(plan.tasks)
        if BrokerCatalog(raw)[u].start["plan_name"] == "grid_scan"
    )
    assert codes == [1 if i == grid else 0 for i in range(len(plan.tasks))]

    ingest = subprocess.run(
        ["bash", "-c", task_command(plan.ingest.read_text())], capture_output=True, text=True
    )
    assert ingest.returncode == 0, ingest.stderr

    # the results, with provenance naming the original runs, equal a run in one process
    native = pytest.importorskip("intake_broker_native")
    stored = native.NativeStore(
        f"sqlite:///{tmp_path}/results/index.sqlite", str(tmp_path / "results" / "data")
    )
    try:
        results = BrokerCatalog(stored)
        serial = MemoryStore()
        reports = reduce_and_fit.run(BrokerCatalog(raw), serial, progress=False)
        expected = {
            BrokerCatalog(serial)[u].start["derived_name"] for r in reports for u in r.written
        }
        fits = results.search('provenance.code.name == "fit_peaks"')
        assert len(fits) == 2
        names = {run.start["derived_name"] for run in results.values()}
        assert expected <= names
        for uid in reports[0].written:
            reduced = BrokerCatalog(serial)[uid]
            raw_uid = reduced.start["derived_from"][0]
            assert len(results.search(f'derived_from contains "{raw_uid}"')) == 1
        grid_uid = plan.tasks[grid]
        failed = results.search(f'derived_from contains "{grid_uid}"')
        assert [run.stop["exit_status"] for run in failed.values()] == ["fail"]
        for run in fits.values():  # equal values to the serial computation
            twin = BrokerCatalog(serial).search(f'derived_name == "{run.start["derived_name"]}"')
            assert len(twin) == 1
            ours, theirs = run.primary.read(), next(iter(twin.values())).primary.read()
            assert {k: ours[k].values.tolist() for k in ours.data_vars} == {
                k: theirs[k].values.tolist() for k in theirs.data_vars
            }
    finally:
        stored.close()


def test_bad_stages_and_tasks_are_refused_saying_why(raw, tmp_path):
    with pytest.raises(Exception, match="module:name"):
        stage(BrokerCatalog(raw).values(), "../evil.py", tmp_path / "a")
    with pytest.raises(StagingError, match="--partition=short"):
        stage(BrokerCatalog(raw).values(), PIPELINE, tmp_path / "b", sbatch=["x\n#SBATCH --y"])
    with pytest.raises(StagingError, match="no stage.json"):
        run_task(tmp_path, 0)
    folder = tmp_path / "c"
    stage(BrokerCatalog(raw).values(), PIPELINE, folder)
    with pytest.raises(StagingError, match="tasks 0 to 2"):
        run_task(folder, 3)
    description = read_stage(folder)
    description["tasks"][0]["file"] = "../../etc/passwd"
    (folder / "stage.json").write_text(json.dumps(description))
    with pytest.raises(StagingError, match="not a .jsonl file under"):
        run_task(folder, 0)


def test_the_stage_command(raw, tmp_path, capsys):
    folder = tmp_path / "runs"
    from intake_broker_files import JSONLStore

    store = JSONLStore.in_folder(folder / "runs")  # the default catalog of --data folder
    for run in BrokerCatalog(raw).values():
        for name, doc in run.documents():
            store.insert(name, doc)
    store.close()
    code = main(
        [
            "--catalog",
            "jsonl",
            "--data",
            str(folder),
            "stage",
            PIPELINE,
            'plan_name == "scan"',
            "--to",
            str(tmp_path / "staged"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "staged 1 run" in out and "sbatch" in out, err
    assert len(read_stage(tmp_path / "staged")["tasks"]) == 1
