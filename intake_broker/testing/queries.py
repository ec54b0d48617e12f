"""``QueryTests``: the same queries over the same 200 runs give the same uids, in the same
order, on every store.

The expected answers come from the generic evaluator over the generated documents, so a store
passes when its native translations agree with the reference semantics::

    class TestMyStoreQueries(QueryTests):
        @pytest.fixture(scope="class")
        @classmethod
        def query_store(cls, tmp_path_factory):
            return MyStore(tmp_path_factory.mktemp("q"))   # new and empty, writable
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import event_model
import numpy as np
import pytest

from intake_broker.queries import (
    Comparison,
    Contains,
    Eq,
    FullText,
    Fuzzy,
    In,
    KeyPresent,
    Not,
    NotEq,
    NotIn,
    PartialUID,
    Query,
    Regex,
    ScanID,
    ScanIDRange,
    TimeRange,
    evaluate,
)
from intake_broker.queries.expression import parse_query
from intake_broker.store.abilities import flush
from intake_broker.store.summary import run_summary

RUNS = 200
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SAMPLES = ["LaB6", "CeO2", "Si", "LaB6 standard", "Au foil", "water"]
OPERATORS = ["ada", "grace", "linus", None]
DETECTORS = [["det"], ["det", "eiger"], ["eiger"], ["fccd"]]


def _run(i: int, rng: np.random.Generator) -> list[tuple[str, Mapping[str, Any]]]:
    plan = ["scan", "count", "grid_scan", "rel_scan"][i % 4]
    detectors = DETECTORS[i % len(DETECTORS)]
    metadata = {
        "scan_id": 4000 + i // 2 if i % 7 else 100 + i,
        "plan_name": plan,
        "detectors": detectors,
        "motors": ["theta"] if i % 3 else ["x", "y"],
        "sample": {"name": SAMPLES[i % len(SAMPLES)], "temperature": 280.0 + i % 40},
        "purpose": "calibration run" if i % 11 == 0 else "user data",
    }
    if OPERATORS[i % 4] is not None:
        metadata["operator"] = OPERATORS[i % 4]
    elif i % 8 == 3:
        metadata["operator"] = None  # an explicit null, unlike a missing key
    uid = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i))
    bundle = event_model.compose_run(uid=uid, time=T0 + 3600.0 * i, metadata=metadata)
    exposure = [0.1, 0.5, 1.0][i % 3]
    data_keys: dict[str, dict[str, Any]] = {
        "theta": {"dtype": "number", "shape": [], "source": "SIM:theta"}
    }
    for det in detectors:
        data_keys[det] = {
            "dtype": "array" if det == "fccd" else "number",
            "shape": [4, 4] if det == "fccd" else [],
            "source": f"SIM:{det}",
        }
    config = {
        det: {
            "data": {f"{det}_exposure": exposure},
            "timestamps": {f"{det}_exposure": T0},
            "data_keys": {
                f"{det}_exposure": {"dtype": "number", "shape": [], "source": "SIM:exposure"}
            },
        }
        for det in detectors
    }
    desc = bundle.compose_descriptor(
        name="primary", data_keys=data_keys, configuration=config, time=T0 + 3600.0 * i + 1
    )
    docs: list[tuple[str, Mapping[str, Any]]] = [
        ("start", bundle.start_doc),
        ("descriptor", desc.descriptor_doc),
    ]
    if i % 5 == 0:
        baseline = bundle.compose_descriptor(
            name="baseline",
            time=T0 + 3600.0 * i + 1.5,
            data_keys={"ring_current": {"dtype": "number", "shape": [], "source": "SR:I"}},
        )
        docs.append(("descriptor", baseline.descriptor_doc))
        docs.append(
            (
                "event",
                baseline.compose_event(
                    data={"ring_current": 400.0 - i},
                    timestamps={"ring_current": T0},
                    time=T0 + 3600.0 * i + 1.6,
                ),
            )
        )
    low = float(i % 10)
    for n in range(3 + i % 4):
        data: dict[str, Any] = {"theta": low + n}
        for det in detectors:
            data[det] = (
                np.full((4, 4), float(i + n))
                if det == "fccd"
                else float(rng.normal(10.0 * (i % 5), 1.0))
            )
        docs.append(
            (
                "event",
                desc.compose_event(
                    data=data, timestamps={k: T0 for k in data}, time=T0 + 3600.0 * i + 2 + n
                ),
            )
        )
    if i % 13 != 5:  # some runs never ended
        status: Literal["success", "abort"] = "abort" if i % 17 == 3 else "success"
        docs.append(("stop", bundle.compose_stop(exit_status=status, time=T0 + 3600.0 * i + 10)))
    return docs


def generate_runs(count: int = RUNS) -> list[list[tuple[str, Mapping[str, Any]]]]:
    """The runs every store is asked about: varied plans, samples, detectors and data."""
    rng = np.random.default_rng(20261126)
    return [_run(i, rng) for i in range(count)]


def query_cases() -> dict[str, Query]:
    """At least 40 named queries touching every query type and document."""
    # The ignores: In, NotIn and TimeRange annotate their fields as stored (a tuple, a float),
    # but their constructors take lists and ISO strings too, which these cases use on purpose.
    cases: dict[str, Query] = {
        "eq plan": Eq("plan_name", "scan"),
        "eq nested": Eq("sample.name", "LaB6"),
        "eq list element": Eq("detectors", "eiger"),
        "eq whole list": Eq("motors", ["x", "y"]),
        "eq missing none": Eq("operator", None),
        "not eq": NotEq("plan_name", "count"),
        "not eq missing": NotEq("operator", "ada"),
        "gt scan_id": Comparison("gt", "scan_id", 4050),
        "le temperature": Comparison("le", "sample.temperature", 290.0),
        "ge string": Comparison("ge", "plan_name", "rel"),
        "lt time": Comparison("lt", "time", T0 + 3600.0 * 20),
        "in plans": In("plan_name", ["count", "grid_scan"]),
        "in scan ids": In("scan_id", [4001, 4010, 4099, 99999]),
        "not in": NotIn("sample.name", ["LaB6", "Si"]),
        "regex": Regex("sample.name", "^La"),
        "regex case": Regex("sample.name", "au", case_sensitive=False),
        "contains": Contains("detectors", "det"),
        "key present": KeyPresent("operator"),
        "key absent": KeyPresent("operator", present=False),
        "time range": TimeRange(since=T0 + 3600.0 * 50, until=T0 + 3600.0 * 60),
        "time range iso": TimeRange(since="2026-01-03T00:00:00+00:00", timezone="UTC"),
        "partial uid": PartialUID("0"),
        "scan id list": ScanID(4005, 4006, 107),
        "scan id range": ScanIDRange(4000, 4100),
        "full text": FullText("calibration"),
        "full text two words": FullText("LaB6 standard"),
        "fuzzy": Fuzzy("sample.name", "lab7", 1),
        "stop status": Eq("stop.exit_status", "abort"),
        "stop missing": KeyPresent("stop.exit_status", present=False),
        "stop events": Comparison("ge", "stop.num_events.primary", 5),
        "descriptor detector": Eq("descriptors.data_keys.eiger.source", "SIM:eiger"),
        "descriptor config": Eq("descriptors.configuration.eiger.data.eiger_exposure", 0.1),
        "descriptor name": Eq("descriptors.name", "baseline"),
        "summary max": Comparison("lt", "summary.primary.theta.max", 5),
        "summary range": (
            Comparison("ge", "summary.primary.theta.min", 2)
            & Comparison("le", "summary.primary.theta.max", 8)
        ),
        "summary array sum": Comparison("gt", "summary.primary.fccd.sum", 1000),
        "summary count": Eq("summary.primary.theta.count", 5),
        "summary other stream": Comparison("gt", "summary.baseline.ring_current.mean", 300),
        "and": Eq("plan_name", "scan") & Comparison("ge", "scan_id", 4020),
        "or": Eq("plan_name", "count") | Eq("sample.name", "water"),
        "not": Not(Eq("plan_name", "scan")),
        "nested logic": (Eq("plan_name", "scan") | Eq("plan_name", "count"))
        & ~Contains("detectors", "eiger"),
        "expression": parse_query('plan_name == "scan" and 4000 <= scan_id <= 4100'),
        "expression summary": parse_query("summary.primary.theta.max < 5 and has operator"),
        "nothing": Eq("plan_name", "no-such-plan"),
    }
    return cases


def reference_records(runs: list[list[tuple[str, Mapping[str, Any]]]]) -> list[dict]:
    """Each run as the record the generic evaluator sees: start, stop, descriptors, summary."""
    from intake_broker.store.memory import MemoryStore

    reference = MemoryStore(validate=False)
    records = []
    for docs in runs:
        for name, doc in docs:
            reference.insert(name, doc)
        start = docs[0][1]
        records.append(
            {
                "start": start,
                "stop": docs[-1][1] if docs[-1][0] == "stop" else None,
                "descriptors": [d for n, d in docs if n == "descriptor"],
                "summary": run_summary(reference, start["uid"]),
            }
        )
    return records


def expected_uids(records: list[dict], query: Query) -> list[str]:
    """The reference answer: the generic evaluator over the records, newest first."""
    matches = [(-r["start"]["time"], r["start"]["uid"]) for r in records if evaluate(query, r)]
    return [uid for _, uid in sorted(matches)]


CASES = query_cases()


class QueryTests:
    """Every query of :func:`query_cases` over :func:`generate_runs`, on one store."""

    @pytest.fixture(scope="class")
    @classmethod
    def query_store(cls):
        raise NotImplementedError("a store's test class defines a class-scoped 'query_store'")

    @pytest.fixture(scope="class")
    @classmethod
    def runs(cls):
        return generate_runs()

    @pytest.fixture(scope="class")
    @classmethod
    def records(cls, runs):
        return reference_records(runs)

    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls, query_store, runs):
        for docs in runs:
            for name, doc in docs:
                query_store.insert(name, doc)
        flush(query_store)  # runs without a stop: what a reader sees is what was flushed
        return query_store

    def test_the_cases_discriminate(self, records):
        assert len(CASES) >= 40 and len(records) == RUNS
        sizes = {name: len(expected_uids(records, q)) for name, q in CASES.items()}
        assert sizes.pop("nothing") == 0
        assert all(0 < n < RUNS for n in sizes.values()), sizes

    @pytest.mark.parametrize("name", list(CASES))
    def test_query(self, loaded, records, name):
        query = CASES[name]
        expected = expected_uids(records, query)
        assert [r.uid for r in loaded.runs(query)] == expected
        assert loaded.count(query) == len(expected)
        assert [r.uid for r in loaded.runs(query, skip=1, limit=3)] == expected[1:4]
