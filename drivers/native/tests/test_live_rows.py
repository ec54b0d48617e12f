"""The one-event fast path (``rows.py``) accepts and refuses exactly what ``convert_page``
does, and stores the same columns."""

from __future__ import annotations

import math

import event_model
import numpy as np
import pytest

from intake_broker.errors import InvalidDocument
from intake_broker_native import NativeStore
from intake_broker_native.layout import convert_page, make_layout
from intake_broker_native.rows import RowPlan
from intake_broker_native.wal import Record, encode_rows, read_records

DATA_KEYS = {
    "x": {"dtype": "number", "shape": [], "source": "s"},
    "n": {"dtype": "integer", "shape": [], "source": "s"},
    "ok": {"dtype": "boolean", "shape": [], "source": "s"},
    "name": {"dtype": "string", "shape": [], "source": "s"},
}
GOOD = {"x": 1.5, "n": 3, "ok": True, "name": "a"}
CASES = [
    GOOD,
    {**GOOD, "x": 2},  # an int for a float: accepted
    {**GOOD, "x": math.nan},
    {**GOOD, "x": np.float64(2.5)},  # numpy scalars: the slow path
    {**GOOD, "x": True},  # the slow path decides
    {**GOOD, "x": 2**60},
    {**GOOD, "n": 2.0},  # a float for an integer: the slow path decides
    {**GOOD, "n": 2.5},
    {**GOOD, "n": 2**63},
    {**GOOD, "n": "3"},
    {**GOOD, "ok": 1},
    {**GOOD, "name": 5},
    {**GOOD, "name": "\udcff"},
    {k: v for k, v in GOOD.items() if k != "name"},
    {**GOOD, "extra": 1},
]


def _outcome(store: NativeStore, desc, data: dict, i: int):
    event = desc.compose_event(
        uid=f"e{i}", data=data, timestamps=dict.fromkeys(data, 1.0), seq_num=i, validate=False
    )
    try:
        store.insert("event", event)
    except InvalidDocument as err:
        return "refused", str(err).split(":")[0]
    return "accepted", None


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_fast_path_decides_as_convert_page(tmp_path, case):
    data = CASES[case]
    bundle = event_model.compose_run(uid="r")
    desc = bundle.compose_descriptor(uid="d", name="primary", data_keys=DATA_KEYS)
    layout = make_layout(desc.descriptor_doc, 1000, 2**23)
    event = desc.compose_event(
        uid="e", data=data, timestamps=dict.fromkeys(data, 1.0), seq_num=1, validate=False
    )
    page = event_model.pack_event_page(event)
    plan = RowPlan.of(layout)
    assert plan is not None
    row = plan.row(page)
    try:
        cols = convert_page(layout, desc.descriptor_doc, page)
    except InvalidDocument:
        assert row is None  # never accepted fast when the slow path refuses
        return
    if row is None:
        return  # not sure: the slow path decided (and accepted)
    fast = plan.columns([row])
    for name in ("uid", "time", "seq_num"):
        np.testing.assert_array_equal(fast[name], cols[name])
    for group in ("data", "timestamps"):
        for key, values in cols[group].items():
            assert fast[group][key].dtype == values.dtype
            np.testing.assert_array_equal(fast[group][key], values)
    # the log record of the row decodes to the same columns as the slow encoding's
    record = plan.record("r", "d", 1, row)
    slow = encode_rows("r", "d", 1, layout, cols)
    assert record == slow


def test_fast_and_slow_events_interleave_in_one_run(tmp_path):
    store = NativeStore.in_folder(tmp_path, flush_interval=None, validate=False)
    bundle = event_model.compose_run(uid="r")
    desc = bundle.compose_descriptor(uid="d", name="primary", data_keys=DATA_KEYS)
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    outcomes = [_outcome(store, desc, data, i) for i, data in enumerate(CASES, 1)]
    accepted = [i for i, (o, _) in enumerate(outcomes, 1) if o == "accepted"]
    assert len(accepted) >= 8 and outcomes[7][0] == "refused"  # n = 2.5
    (path,) = (tmp_path / "data" / "_wal").glob("*.wal")
    records, _ = read_records(str(path))
    assert sum(r.rows for r in records) == len(accepted)
    assert all(isinstance(r, Record) for r in records)
    store.insert("stop", bundle.compose_stop())
    cols = NativeStore.in_folder(tmp_path).read_events("d", uids=True)
    assert cols.seq_num.tolist() == accepted
    assert cols.data["x"][0] == 1.5 and math.isnan(cols.data["x"][2])
