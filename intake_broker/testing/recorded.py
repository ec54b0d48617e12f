"""Documents recorded by a real RunEngine (bluesky + ophyd.sim), for the tests of stores that
must read what an experiment really emits. Needs bluesky and ophyd (test extras); the
conformance suite itself does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def recorded_runs(
    sample: Callable[[str], Any] = lambda label: f"sample-{label}",
) -> dict[str, list[tuple[str, dict]]]:
    """Five plans run by a RunEngine over ophyd.sim devices, as ``{label: [(name, doc), ...]}``
    exactly as the RunEngine emitted them: ``scan``, ``count``, ``grid_scan``,
    ``det_with_conf`` (a detector with configuration) and ``image`` (2-D frames). Their
    scan_ids are 1 to 5; ``sample(label)`` is each start document's ``sample``."""
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, det4, det_with_conf, direct_img, motor, motor1, motor2

    RE = RunEngine({}, call_returns_result=False)
    plans = {
        "scan": lambda: bp.scan([det], motor, -1, 1, 5),
        "count": lambda: bp.count([det], 3),
        "grid_scan": lambda: bp.grid_scan([det4], motor1, -1, 1, 3, motor2, -1, 1, 4),
        "det_with_conf": lambda: bp.count([det_with_conf]),
        "image": lambda: bp.count([direct_img], 2),
    }
    runs: dict[str, list[tuple[str, dict]]] = {}
    for scan_id, (label, plan) in enumerate(plans.items(), start=1):
        docs: list[tuple[str, dict]] = []
        RE.md["scan_id"] = scan_id - 1  # the RunEngine increments it
        RE(plan(), lambda name, doc, docs=docs: docs.append((name, doc)), sample=sample(label))
        runs[label] = docs
    return runs
