"""A databroker 1.2 analysis script (notebook_databroker.py) runs on our catalogs with only its
import line changed, and gives the numbers databroker 1.2.5 gave (recorded by make_golden.py)."""

from __future__ import annotations

import math

from make_golden import catalog_yaml, run_notebook

#: The one line changed: the Broker comes from intake-broker.
IMPORTS = {"from databroker import Broker": "from intake_broker.compat import Broker"}


def _same(got, want, where="RESULTS"):
    if isinstance(want, float):
        # abs 1e-6: pandas 1.4's Timedelta.total_seconds() gave microseconds, pandas 2+ ns
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-6), where
    elif isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            _same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert got == want, where


def test_the_notebook_gives_databrokers_numbers(golden, tmp_path, monkeypatch):
    monkeypatch.delenv("GOLDEN_CATALOG", raising=False)
    results = run_notebook(catalog_yaml(str(tmp_path / "golden.yml")), IMPORTS)
    assert set(results) == set(golden["notebook"])
    _same(results, golden["notebook"])
