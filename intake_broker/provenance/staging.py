"""HPC staging: a pipeline's inputs exported to a folder, computed by a batch job that needs no
database, and the results ingested with their provenance.

``intake-broker stage PIPELINE QUERY --to DIR`` (:func:`stage`) writes::

    DIR/inputs/<uid>.jsonl     every document of each input run (the jsonl export)
    DIR/inputs/manifest.json   the export's manifest: files, sizes, SHA-256 sums
    DIR/stage.json             the pipeline (module:name), its parameters, one task per input
    DIR/job.slurm              a Slurm job array, one task per input:
                               intake-broker stage-task DIR $SLURM_ARRAY_TASK_ID
    DIR/ingest.sh              what stores the results afterwards:
                               intake-broker [--catalog DEST] ingest DIR/results/*/

Each task (:func:`run_task`) reads its input file into a memory store, runs the pipeline into
another and exports the derived runs -- with their provenance naming the original input uids
-- to ``DIR/results/task-NNNNN/`` (jsonl, with a manifest); a failing input is a derived run
with ``exit_status="fail"``, as in :meth:`~intake_broker.provenance.Derived.run`. Ingesting
the results adds them to any writable catalog, where ``derived_from`` links them to the inputs.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake_broker.errors import BrokerError

#: The file describing a staged folder.
STAGE_FILE = "stage.json"
#: The Slurm script and the ingest script written beside it.
SLURM_FILE, INGEST_FILE = "job.slurm", "ingest.sh"
#: The largest ``stage.json`` read (bytes) and the most tasks one stage holds.
MAX_STAGE_BYTES, MAX_TASKS = 16 << 20, 100_000
#: What an ``--sbatch`` option may hold (one ``#SBATCH`` line each; no newlines).
MAX_SBATCH = 32


class StagingError(BrokerError):
    """A staged folder cannot be made or run: says what is wrong and what would be right."""


@dataclass
class StagePlan:
    """What :func:`stage` wrote: the folder, its tasks (input uids) and the scripts."""

    folder: Path
    tasks: list[str]
    slurm: Path
    ingest: Path


def _command(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def stage(
    runs: Iterable[Any],
    pipeline: str,
    to: str | Path,
    *,
    parameters: dict[str, Any] | None = None,
    dest: str | None = None,
    sbatch: Sequence[str] = (),
    command: str | Sequence[str] = "intake-broker",
    progress: bool | None = None,
    total: int | None = None,
) -> StagePlan:
    """Export ``runs`` to ``to`` and write the job array and ingest scripts (see the module).

    Parameters
    ----------
    runs : iterable of Run
        The inputs (a search's ``values()``); one task each.
    pipeline : str
        ``module:name`` of a ``@derived`` function or ``Pipeline``, importable where the job
        runs (checked here by importing it).
    to : str or path
        A local folder (created; an earlier stage there is resumed by the export).
    parameters : dict, optional
        The function's keyword arguments (for a Pipeline: by step name).
    dest : str, optional
        The ``--catalog`` the ingest script stores results in (default: the default catalog).
    sbatch : list of str
        Extra ``#SBATCH`` options (``--partition=short``, ``--time=00:10:00``).
    command : str or list of str
        How the job calls intake-broker (a path to it in a cluster's environment, say; a
        string is split as a shell would).
    """
    from intake_broker.export import export_runs
    from intake_broker.provenance.pipeline import load_pipeline
    from intake_broker.provenance.record import check_parameters

    load_pipeline(pipeline)  # an unknown or non-pipeline name fails before anything is written
    check_parameters(parameters)
    if len(sbatch) > MAX_SBATCH or any(
        not isinstance(o, str) or not o.startswith("--") or "\n" in o or "\r" in o or len(o) > 200
        for o in sbatch
    ):
        raise StagingError(
            f"--sbatch takes up to {MAX_SBATCH} options of one line each starting with --, "
            f"e.g. --partition=short or --time=00:10:00; got {list(sbatch)!r}"
        )
    argv0 = shlex.split(command) if isinstance(command, str) else list(command)
    folder = Path(to).resolve()
    manifest = export_runs(runs, "jsonl", folder / "inputs", progress=progress, total=total)
    tasks = sorted(manifest.runs)
    if not tasks:
        raise StagingError("no run matched: nothing to stage")
    if len(tasks) > MAX_TASKS:
        raise StagingError(f"{len(tasks)} runs: stage at most {MAX_TASKS} at once")
    files = {uid: manifest.runs[uid].files[0].path for uid in tasks}
    description = {
        "version": 1,
        "pipeline": pipeline,
        "parameters": parameters or {},
        "tasks": [{"uid": uid, "file": f"inputs/{files[uid]}"} for uid in tasks],
    }
    (folder / STAGE_FILE).write_text(json.dumps(description, indent=1))
    (folder / "logs").mkdir(exist_ok=True)
    name = pipeline.rpartition(":")[2]
    slurm = folder / SLURM_FILE
    slurm.write_text(
        "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --job-name={shlex.quote('ib-' + name)}",
                f"#SBATCH --array=0-{len(tasks) - 1}",
                f"#SBATCH --output={shlex.quote(str(folder / 'logs' / '%A_%a.out'))}",
                *(f"#SBATCH {option}" for option in sbatch),
                "# one input run per task; no database is needed (see stage.json)",
                "set -euo pipefail",
                _command([*argv0, "stage-task", str(folder)]) + ' "$SLURM_ARRAY_TASK_ID"',
                "",
            ]
        )
    )
    ingest = folder / INGEST_FILE
    catalog = [] if dest is None else ["--catalog", dest]
    ingest.write_text(
        "\n".join(
            [
                "#!/bin/bash",
                "# after the job array: store the derived runs, with their provenance",
                "set -euo pipefail",
                _command([*argv0, *catalog, "ingest"])
                + " "
                + shlex.quote(str(folder / "results"))
                + "/*/",
                "",
            ]
        )
    )
    slurm.chmod(0o755)
    ingest.chmod(0o755)
    return StagePlan(folder, tasks, slurm, ingest)


def read_stage(folder: str | Path) -> dict[str, Any]:
    """``stage.json`` of a staged folder, checked."""
    path = Path(folder) / STAGE_FILE
    try:
        if path.stat().st_size > MAX_STAGE_BYTES:
            raise StagingError(f"{path} is larger than {MAX_STAGE_BYTES} bytes")
        description = json.loads(path.read_text())
    except FileNotFoundError:
        raise StagingError(
            f"{folder} holds no {STAGE_FILE}: give the folder `intake-broker stage ... --to` wrote"
        ) from None
    except ValueError as err:
        raise StagingError(f"{path} is not JSON: {err}") from None
    if (
        not isinstance(description, dict)
        or description.get("version") != 1
        or not isinstance(description.get("tasks"), list)
        or not isinstance(description.get("pipeline"), str)
        or not isinstance(description.get("parameters", {}), dict)
    ):
        raise StagingError(
            f"{path} is not a stage description (version 1 with pipeline, parameters, tasks)"
        )
    return description


def run_task(folder: str | Path, task: int) -> list[Any]:
    """Compute task ``task`` of a staged folder (no database: the input file into a memory
    store, the results into another, exported to ``results/task-NNNNN/``); the reports."""
    from intake_broker.catalogs.config import store_class
    from intake_broker.export import export_runs
    from intake_broker.provenance.pipeline import Pipeline, load_pipeline
    from intake_broker.store.abilities import DocumentFiles
    from intake_broker.store.memory import MemoryStore
    from intake_broker.views.catalog import BrokerCatalog

    root = Path(folder).resolve()
    description = read_stage(root)
    tasks = description["tasks"]
    if not isinstance(task, int) or not 0 <= task < len(tasks):
        raise StagingError(f"task {task!r}: this stage has tasks 0 to {len(tasks) - 1}")
    entry = tasks[task]
    path = (root / str(entry.get("file", ""))).resolve()
    if not path.is_relative_to(root / "inputs") or path.suffix != ".jsonl":
        raise StagingError(
            f"task {task} names {entry.get('file')!r}, not a .jsonl file under {root}/inputs"
        )
    reader = store_class("jsonl")
    if not isinstance(reader, DocumentFiles):
        raise StagingError(
            "reading staged files needs the files driver: pip install ./drivers/files"
        )
    inputs = MemoryStore()
    for located in reader.parse_documents(path.read_bytes(), str(path)):
        inputs.insert(located.name, located.doc)
    steps = load_pipeline(description["pipeline"])
    results = MemoryStore()
    parameters = description.get("parameters") or None
    source = BrokerCatalog(inputs)
    if isinstance(steps, Pipeline):
        reports = steps.run(source, results, parameters=parameters, progress=False)
    else:
        reports = [steps.run(source, results, parameters=parameters, progress=False)]
    out = root / "results" / f"task-{task:05d}"
    export_runs(BrokerCatalog(results).values(), "jsonl", out, progress=False)
    return reports
