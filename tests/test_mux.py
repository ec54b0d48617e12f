"""Muxing and other returns (issue 19) against hand-computed answers, on a memory, a native
and a remote store and through a federation: align (baseline before/after, an asynchronous
monitor with gaps, jitter, a reading exactly at an event, before the first and after the
last), merging runs with missing fields and different lengths, split, pivot/stack round trips,
resampling, datetimes, pandas/numpy/Arrow/DataTree, Arrow IPC from the service, bad input."""

from __future__ import annotations

import datetime

import dask.array as da
import event_model
import numpy as np
import pytest
import xarray as xr

from intake_broker import BrokerCatalog, MemoryStore
from intake_broker.errors import (
    BrokerError,
    FieldNotFound,
    IncompatibleShapes,
    InvalidArgument,
    NotMonotonic,
    StreamNotFound,
    WrongArgumentType,
)
from intake_broker.federation import FederatedStore
from intake_broker.testing import insert_all
from intake_broker.views import mux, returns

T = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def _run(scan_id, streams, **md):
    """A run: ``streams`` maps a name to (data_keys, [(time, data), ...]) or (data_keys,
    [(time, data), ...], configuration)."""
    bundle = event_model.compose_run(
        time=T, metadata={"scan_id": scan_id, "plan_name": "scan", **md}
    )
    docs = [("start", bundle.start_doc)]
    for name, (keys, events, *configuration) in streams.items():
        desc = bundle.compose_descriptor(
            name=name,
            data_keys=keys,
            time=T,
            configuration=configuration[0] if configuration else {},
        )
        docs.append(("descriptor", desc.descriptor_doc))
        for t, data in events:
            docs.append(
                (
                    "event",
                    desc.compose_event(data=data, timestamps={k: t for k in data}, time=t),
                )
            )
    docs.append(("stop", bundle.compose_stop(time=T + 20)))
    return docs


def _num(source="SIM"):
    return {"dtype": "number", "shape": [], "source": source}


MUX = _run(
    1,
    {
        "primary": (
            {
                "det": _num(),
                "count": {"dtype": "integer", "shape": [], "source": "SIM"},
                "state": {"dtype": "string", "shape": [], "source": "SIM"},
            },
            [
                (T + 1, {"det": 10.0, "count": 1, "state": "a"}),
                (T + 2, {"det": 20.0, "count": 2, "state": "b"}),
                (T + 3, {"det": 30.0, "count": 3, "state": "a"}),
                (T + 4, {"det": 40.0, "count": 4, "state": "b"}),
            ],
            # two devices' configuration (not data: it never enters an aligned result)
            {
                "det": {
                    "data": {"det_gain": 2.5, "det_mode": "fast"},
                    "timestamps": {"det_gain": T, "det_mode": T},
                    "data_keys": {
                        "det_gain": _num(),
                        "det_mode": {"dtype": "string", "shape": [], "source": "SIM"},
                    },
                },
                "motor": {
                    "data": {"motor_velocity": 3},
                    "timestamps": {"motor_velocity": T},
                    "data_keys": {
                        "motor_velocity": {"dtype": "integer", "shape": [], "source": "SIM"}
                    },
                },
            },
        ),
        # before the first event and after the last; "det" clashes with the primary's
        "baseline": (
            {"temperature": _num(), "det": _num()},
            [
                (T + 0.5, {"temperature": 290.0, "det": 7.0}),
                (T + 10, {"temperature": 300.0, "det": 8.0}),
            ],
        ),
        # before the first event, exactly at the first, jitter, a gap, after the last
        "monitor": (
            {"current": _num()},
            [(T + dt, {"current": float(i + 1)}) for i, dt in enumerate((0.2, 1.0, 1.4, 2.6, 4.5))],
        ),
        # recorded out of order: a clock step backwards
        "skewed": ({"v": _num()}, [(T + 2, {"v": 1.0}), (T + 1, {"v": 2.0})]),
    },
    purpose="mux",
)
RUN_A = _run(
    2,
    {
        "primary": (
            {"det": _num(), "x": {"dtype": "integer", "shape": [], "source": "S"}},
            [(T + 1 + i, {"det": 1.0 + i, "x": 7 + i}) for i in range(3)],
        )
    },
    temperature=10.0,
    purpose="series",
)
RUN_B = _run(
    3,
    {"primary": ({"det": _num()}, [(T + 1 + i, {"det": 4.0 + i}) for i in range(2)])},
    temperature=20.0,
    purpose="series",
)
RUN_C = _run(
    4,
    {
        "primary": (
            {"det": _num(), "x": {"dtype": "integer", "shape": [], "source": "S"}},
            [(T + 1 + i, {"det": 6.0 + i, "x": 1}) for i in range(3)],
        )
    },
    purpose="series",
)
RUN_WIDE = _run(
    5,
    {
        "primary": (
            {"det": {"dtype": "array", "shape": [2], "source": "S"}},
            [(T + 1, {"det": [1.0, 2.0]})],
        )
    },
    purpose="wide",
)
WAVE = _run(
    6,
    {
        "primary": (
            {
                "wave": {"dtype": "array", "shape": [4], "dims": ["sample"], "source": "S"},
                "wave_t": {"dtype": "array", "shape": [4], "dims": ["tick"], "source": "S"},
                "gain": _num(),
            },
            [
                (
                    T + 1 + i,
                    {
                        "wave": [float(10 * i + j) for j in range(4)],
                        "wave_t": [T + 1 + i + 0.1 * j for j in range(4)],
                        "gain": float(i + 1),
                    },
                )
                for i in range(3)
            ],
        )
    },
    purpose="wave",
)
IMAGES = _run(
    7,
    {
        "primary": (
            {
                "img": {"dtype": "array", "dtype_numpy": "<u2", "shape": [3, 4], "source": "S"},
                "det": _num(),
            },
            [
                (
                    T + 1 + i,
                    {
                        "img": (np.arange(12, dtype="u2").reshape(3, 4) + i).tolist(),
                        "det": float(i),
                    },
                )
                for i in range(2)
            ],
        )
    },
    purpose="images",
)
ALL = [MUX, RUN_A, RUN_B, RUN_C, RUN_WIDE, WAVE, IMAGES]


def uid(docs):
    return docs[0][1]["uid"]


@pytest.fixture(scope="module")
def live_server():
    testing = pytest.importorskip("intake_broker_server.testing")
    with testing.LiveServer() as server:
        yield server


@pytest.fixture(scope="module", params=["memory", "native", "remote", "federation"])
def cat(request, tmp_path_factory):
    kind = request.param
    if kind == "memory":
        store = MemoryStore()
        for docs in ALL:
            insert_all(store, docs)
        yield BrokerCatalog(store)
    elif kind == "native":
        native = pytest.importorskip("intake_broker_native")
        store = native.NativeStore.in_folder(tmp_path_factory.mktemp("native"))
        for docs in ALL:
            insert_all(store, docs)
        store.flush()
        yield BrokerCatalog(store)
        store.close()
    elif kind == "remote":
        remote = pytest.importorskip("intake_broker_remote")
        server = request.getfixturevalue("live_server")
        store = MemoryStore()
        for docs in ALL:
            insert_all(store, docs)
        url = server.mount(store)
        yield remote.RemoteCatalog(url)
        server.unmount(url)
    else:  # the runs spread over two members
        first, second = MemoryStore(), MemoryStore()
        for i, docs in enumerate(ALL):
            insert_all(first if i % 2 else second, docs)
        yield BrokerCatalog(FederatedStore({"one": first, "two": second}))


# -- align ------------------------------------------------------------------------------------


def test_align_previous_never_takes_a_reading_from_the_future(cat):
    ds = cat[uid(MUX)].align(["primary", "baseline", "monitor"], on="primary")
    assert isinstance(ds["current"].data, da.Array)  # lazy as the streams are
    ds = ds.compute()
    np.testing.assert_array_equal(ds["det"], [10, 20, 30, 40])  # primary's, unprefixed
    # the baseline reading before the run; the one after the last event is never used
    np.testing.assert_array_equal(ds["temperature"], [290.0] * 4)
    np.testing.assert_array_equal(ds["baseline_det"], [7.0] * 4)
    # exactly at the event (T+1) counts; then T+1.4, T+2.6, T+2.6 (the gap)
    np.testing.assert_array_equal(ds["current"], [2.0, 3.0, 4.0, 4.0])
    np.testing.assert_allclose(ds["monitor_time"] - T, [1.0, 1.4, 2.6, 2.6], atol=1e-6)
    assert (ds["monitor_time"] <= ds["time"]).all()
    assert ds["count"].dtype == np.int64 and ds["seq_num"].values.tolist() == [1, 2, 3, 4]


def test_align_previous_with_a_tolerance(cat):
    run = cat[uid(MUX)]
    for tolerance in (0.5, datetime.timedelta(milliseconds=500), np.timedelta64(500, "ms")):
        ds = run.align(["baseline", "monitor"], tolerance=tolerance).compute()
        np.testing.assert_array_equal(ds["current"], [2.0, np.nan, 4.0, np.nan])
        assert ds["monitor_valid"].values.tolist() == [True, False, True, False]
        # the baseline is 0.5 s before the first event: within; the others are not
        np.testing.assert_array_equal(ds["temperature"], [290.0, np.nan, np.nan, np.nan])


def test_align_nearest_and_linear(cat):
    run = cat[uid(MUX)]
    near = run.align(["monitor", "baseline"], method="nearest").compute()
    # T+2 is 0.6 from T+1.4 and from T+2.6: a tie takes the earlier
    np.testing.assert_array_equal(near["current"], [2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(near["temperature"], [290.0] * 4)
    lin = run.align(["monitor", "baseline"], method="linear").compute()
    np.testing.assert_allclose(
        lin["current"], [2.0, 3.5, 4.0 + 0.4 / 1.9, 4.0 + 1.4 / 1.9], rtol=1e-6
    )
    np.testing.assert_allclose(
        lin["temperature"], [290.0 + 10.0 * (k - 0.5) / 9.5 for k in (1, 2, 3, 4)], rtol=1e-6
    )
    tight = run.align(["monitor"], method="linear", tolerance=1.0).compute()
    np.testing.assert_allclose(tight["current"], [2.0, 3.5, np.nan, np.nan])


def test_align_an_integer_field_with_gaps_becomes_float(cat):
    run = cat[uid(MUX)]
    ds = run.align(["primary"], on="monitor", tolerance=0.45).compute()
    # monitor at T+0.2 (nothing before), T+1.0 (exact), T+1.4 (0.4 after), T+2.6, T+4.5
    np.testing.assert_array_equal(ds["count"], [np.nan, 1, 1, np.nan, np.nan])
    # a missing text is None (xarray may show it as NaN once computed, with pandas 3)
    state = [v if isinstance(v, str) else None for v in ds["state"].values.tolist()]
    assert state == [None, "a", "a", None, None]


def test_align_bad_input(cat):
    run = cat[uid(MUX)]
    with pytest.raises(StreamNotFound, match="no stream 'nope'"):
        run.align(["nope"])
    with pytest.raises(NotMonotonic, match="not ascending") as info:
        run.align(["skewed"])
    assert "sortby" in str(info.value)
    with pytest.raises(WrongArgumentType, match="not str '1s'") as info:
        run.align(["monitor"], tolerance="1s")
    assert isinstance(info.value, TypeError) and isinstance(info.value, BrokerError)
    for bad in (-1, float("nan"), True):
        with pytest.raises(InvalidArgument):
            run.align(["monitor"], tolerance=bad)
    with pytest.raises(InvalidArgument, match="method must be one of"):
        run.align(["monitor"], method="spline")
    with pytest.raises(WrongArgumentType, match="list of stream names"):
        run.align("monitor")


# -- merging runs -----------------------------------------------------------------------------


def test_merge_runs_outer_and_inner(cat):
    series = cat.search({"purpose": "series"})
    runs = [cat[uid(d)] for d in (RUN_A, RUN_B, RUN_C)]
    ds = mux.merge_runs(runs, coords=["scan_id", "temperature"])
    assert isinstance(ds["det"].data, da.Array)
    assert ds.sizes == {"run": 3, "event": 3}
    ds = ds.compute()
    np.testing.assert_array_equal(ds["det"], [[1, 2, 3], [4, 5, np.nan], [6, 7, 8]])
    np.testing.assert_array_equal(ds["x"], [[7, 8, 9], [np.nan] * 3, [1, 1, 1]])
    assert ds["x"].dtype == np.float64
    assert ds["scan_id"].values.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(ds["temperature"], [10.0, 20.0, np.nan])
    np.testing.assert_array_equal(ds["time"][1] - T, [1, 2, np.nan])
    inner = mux.merge_runs(runs, join="inner").compute()
    assert list(inner.data_vars) == ["det"] and inner.sizes["event"] == 2
    np.testing.assert_array_equal(inner["det"], [[1, 2], [4, 5], [6, 7]])
    via = series.merge(coords=["scan_id"]).compute()  # newest first: scan 4, 3, 2
    assert sorted(via["scan_id"].values.tolist()) == [2, 3, 4]
    np.testing.assert_array_equal(via.sortby("scan_id")["det"], ds["det"])


def test_merge_runs_bad_input(cat):
    with pytest.raises(IncompatibleShapes, match="field 'det'.*different shapes"):
        mux.merge_runs([cat[uid(RUN_A)], cat[uid(RUN_WIDE)]])
    with pytest.raises(InvalidArgument, match="at least one run"):
        cat.search({"purpose": "nothing"}).merge()
    with pytest.raises(InvalidArgument, match="join must be one of"):
        mux.merge_runs([cat[uid(RUN_A)]], join="left")
    with pytest.raises(StreamNotFound):
        mux.merge_runs([cat[uid(RUN_A)]], stream="baseline")
    with pytest.raises(FieldNotFound, match="nope"):
        mux.merge_runs([cat[uid(RUN_A)]], fields=["nope"])


# -- reshaping --------------------------------------------------------------------------------


def test_split_by_a_field(cat):
    groups = cat[uid(MUX)].primary.split(by="state")
    assert list(groups) == ["a", "b"]
    np.testing.assert_array_equal(groups["a"]["det"].values, [10, 30])
    np.testing.assert_array_equal(groups["b"]["seq_num"].values, [2, 4])
    with pytest.raises(FieldNotFound, match="cannot split by 'nope'"):
        cat[uid(MUX)].primary.split(by="nope")


def test_pivot_and_stack_round_trip(cat):
    original = cat[uid(WAVE)].primary(seq_num=True).read()
    rows = cat[uid(WAVE)].primary.pivot("wave", time="wave_t").compute()
    assert rows.sizes["time"] == 12
    np.testing.assert_array_equal(rows["wave"], [10 * i + j for i in range(3) for j in range(4)])
    np.testing.assert_allclose(
        rows["time"] - T, [1 + i + 0.1 * j for i in range(3) for j in range(4)]
    )
    np.testing.assert_array_equal(rows["gain"], np.repeat([1.0, 2.0, 3.0], 4))
    np.testing.assert_array_equal(rows["seq_num"], np.repeat([1, 2, 3], 4))
    back = mux.stack(rows.isel(time=np.random.default_rng(0).permutation(12)))
    for key in ("wave", "wave_t", "gain", "time", "seq_num"):
        xr.testing.assert_identical(
            back[key].variable.to_base_variable(), original[key].variable.to_base_variable()
        )
    xr.testing.assert_equal(back, original)


def test_stack_bad_input(cat):
    rows = cat[uid(WAVE)].primary.pivot("wave").compute()
    with pytest.raises(IncompatibleShapes, match="different numbers of rows"):
        mux.stack(rows.isel(time=slice(0, 11)))
    with pytest.raises(IncompatibleShapes, match="'gain' changes within a group"):
        mux.stack(rows.assign(gain=("time", np.arange(12.0))))
    with pytest.raises(IncompatibleShapes, match="one dimension and one length"):
        cat[uid(IMAGES)].primary.pivot("img")


# -- resampling and datetimes -----------------------------------------------------------------


def test_resample_by_hand(cat):
    monitor = cat[uid(MUX)]["monitor"]
    # bins [T, T+1): 1; [T+1, T+2): 2, 3; [T+2, T+3): 4; [T+3, T+4): none; [T+4, T+5): 5
    mean = monitor.resample("1s")
    assert isinstance(mean["current"].data, da.Array)
    mean = mean.compute()
    np.testing.assert_array_equal(mean["time"] - T, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(mean["current"], [1, 2.5, 4, np.nan, 5])
    assert mean["events"].values.tolist() == [1, 2, 1, 0, 1]
    answers = {
        "first": [1, 2, 4, np.nan, 5],
        "last": [1, 3, 4, np.nan, 5],
        "max": [1, 3, 4, np.nan, 5],
        "sum": [1, 5, 4, np.nan, 5],
        "count": [1, 2, 1, 0, 1],
    }
    for how, expected in answers.items():
        np.testing.assert_array_equal(monitor.resample(1.0, how=how)["current"].values, expected)
    two = monitor.resample(datetime.timedelta(seconds=2), how="median").compute()
    np.testing.assert_array_equal(two["current"], [2, 4, 5])  # [1,2,3], [4], [5]
    primary = cat[uid(MUX)].primary.resample("2s", how="mean").compute()
    assert primary.attrs["dropped"] == ["state"]
    np.testing.assert_array_equal(primary["count"], [1, 2.5, 4])  # T+1 | T+2, T+3 | T+4
    with pytest.raises(InvalidArgument, match="period 'soon' is not understood"):
        monitor.resample("soon")
    with pytest.raises(InvalidArgument, match="longer than zero"):
        monitor.resample(0)
    with pytest.raises(InvalidArgument, match="how must be one of"):
        monitor.resample("1s", how="mode")
    with pytest.raises(NotMonotonic):
        cat[uid(MUX)]["skewed"].resample("1s")


def test_datetimes_in_a_zone_beside_float_times(cat):
    stream = cat[uid(MUX)].primary(datetimes="Europe/Berlin")
    ds = stream.read()
    assert ds["time"].dtype == np.float64  # databroker's float times stay the index
    assert ds["datetime"].values[0] == np.datetime64("2023-11-14T23:13:21")  # CET, UTC+1
    assert ds["datetime"].attrs["timezone"] == "Europe/Berlin"
    utc = cat[uid(MUX)].primary(datetimes=True).read()
    assert utc["datetime"].values[0] == np.datetime64("2023-11-14T22:13:21")
    with pytest.raises(InvalidArgument, match="unknown time zone"):
        cat[uid(MUX)].primary(datetimes="Mars/Olympus").read()


def test_the_catalogs_time_zone_is_the_default():
    store = MemoryStore()
    insert_all(store, MUX)
    cat = BrokerCatalog(store, metadata={"timezone": "America/New_York"})
    ds = cat[uid(MUX)].primary(datetimes=True).read()
    assert ds["datetime"].values[0] == np.datetime64("2023-11-14T17:13:21")  # EST, UTC-5


# -- other returns ----------------------------------------------------------------------------


def test_pandas_and_numpy(cat):
    run = cat[uid(MUX)]
    frame = run.primary.to_pandas()
    assert frame.index.name == "time" and list(frame.index - T) == [1, 2, 3, 4]
    assert frame["det"].tolist() == [10, 20, 30, 40] and frame["state"].tolist() == [
        "a",
        "b",
        "a",
        "b",
    ]
    cols = run.primary.to_numpy()
    assert set(cols) == {"time", "seq_num", "det", "count", "state"}
    rec = run.primary.to_numpy(structured=True)
    assert rec["count"].tolist() == [1, 2, 3, 4] and rec.dtype["det"] == np.float64
    images = cat[uid(IMAGES)].primary
    cells = images.to_pandas()["img"]
    np.testing.assert_array_equal(cells.iloc[1], np.arange(12).reshape(3, 4) + 1)
    assert images.to_numpy(structured=True)["img"].shape == (2, 3, 4)
    merged = mux.merge_runs([cat[uid(d)] for d in (RUN_A, RUN_B)])
    table = merged.broker.to_pandas()
    assert table.index.names == ["run", "event"] and len(table) == 6
    assert table["uid"].tolist() == [uid(RUN_A)] * 3 + [uid(RUN_B)] * 3
    np.testing.assert_array_equal(table["det"], [1, 2, 3, 4, 5, np.nan])


def test_arrow(cat):
    pa = pytest.importorskip("pyarrow")
    table = cat[uid(IMAGES)].primary.to_arrow()
    assert table.column_names == ["time", "seq_num", "img", "det"]
    assert isinstance(table.schema.field("img").type, pa.FixedShapeTensorType)
    frames = table.column("img").chunk(0).to_numpy_ndarray()
    np.testing.assert_array_equal(frames[1], np.arange(12).reshape(3, 4) + 1)
    assert frames.dtype == np.uint16
    aligned = cat[uid(MUX)].align(["monitor"]).broker.to_arrow()
    assert aligned.column("current").to_pylist() == [2.0, 3.0, 4.0, 4.0]
    assert aligned.column("state").to_pylist() == ["a", "b", "a", "b"]


def test_arrow_wraps_numpy_memory_without_a_copy():
    pytest.importorskip("pyarrow")
    store = MemoryStore()
    insert_all(store, MUX)
    ds = BrokerCatalog(store)[uid(MUX)].primary.read()
    table = returns.to_arrow(ds)
    for key in ("det", "count", "time"):
        assert table.column(key).chunk(0).buffers()[1].address == ds[key].values.ctypes.data


def test_datatree(cat):
    tree = cat[uid(MUX)].to_datatree()
    assert set(tree.children) == {"primary", "baseline", "monitor", "skewed"}
    assert tree.attrs["start"]["scan_id"] == 1
    np.testing.assert_array_equal(tree["monitor"]["current"].values, [1, 2, 3, 4, 5])
    assert isinstance(tree["primary"]["det"].data, da.Array)
    _check_configuration_nodes(tree)
    _check_configuration_nodes(cat[uid(MUX)].to_datatree(lazy=False))
    wave = cat[uid(WAVE)].to_datatree(lazy=False)
    assert wave["primary"]["wave"].shape == (3, 4)


def _check_configuration_nodes(tree):
    """Every device's configuration in every descriptor of MUX is a
    ``<stream>/config/<device>`` node: its data keys as variables, one row per event of the
    stream, the descriptor's values; a stream without configuration has no ``config`` node."""
    descriptors = [doc for kind, doc in MUX if kind == "descriptor"]
    events = {d["uid"]: 0 for d in descriptors}
    for kind, doc in MUX:
        if kind == "event":
            events[doc["descriptor"]] += 1
    checked = 0
    for desc in descriptors:
        name, configuration = desc["name"], desc["configuration"]
        if not configuration:
            assert "config" not in tree[name].children, name
            continue
        assert set(tree[name]["config"].children) == set(configuration)
        for device, conf in configuration.items():
            node = tree[f"{name}/config/{device}"]
            assert set(node.data_vars) == set(conf["data_keys"]) == set(conf["data"])
            np.testing.assert_array_equal(node["time"], tree[name]["time"])
            for key, value in conf["data"].items():
                assert node[key].values.tolist() == [value] * events[desc["uid"]], (device, key)
            checked += 1
    assert checked == 2  # both devices of the primary stream


# -- Arrow IPC from the service ---------------------------------------------------------------


def test_the_service_sends_arrow_ipc(live_server):
    pa = pytest.importorskip("pyarrow")
    httpx = pytest.importorskip("httpx")
    store = MemoryStore()
    insert_all(store, IMAGES)
    url = live_server.mount(store)
    try:
        descriptor = store.descriptors(uid(IMAGES))[0]["uid"]
        response = httpx.get(
            f"{url}/api/v1/descriptors/{descriptor}/events",
            headers={"Accept": "application/vnd.apache.arrow.stream"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
        table = pa.ipc.open_stream(response.content).read_all()
        assert table.column("seq_num").to_pylist() == [1, 2]
        assert table.column("det").to_pylist() == [0.0, 1.0]
        assert table.column("timestamps:det").to_pylist() == [T + 1, T + 2]
        assert table.schema.field("timestamps:det").metadata == {b"group": b"timestamps"}
        frames = table.column("img").chunk(0).to_numpy_ndarray()
        np.testing.assert_array_equal(frames[0], np.arange(12).reshape(3, 4))
        missing = httpx.get(
            f"{url}/api/v1/descriptors/{'0' * 36}/events",
            headers={"Accept": "application/vnd.apache.arrow.stream"},
        )
        assert missing.status_code == 404 and missing.json()["error"] == "DescriptorNotFound"
    finally:
        live_server.unmount(url)


# -- align across chunks, descriptors and containers ------------------------------------------

P_TIMES = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
M_TIMES = [0.3, 0.9, 1.0, 1.2, 1.55, 2.1, 3.4, 3.45, 3.9, 4.6]


def _chunky_run(monitor_events=True):
    """A primary of 7 events and a monitor of 10 readings recorded under two descriptors
    (a configuration change after the fifth), with a gap between 2.1 and 3.4 s (or, without
    ``monitor_events``, no readings at all)."""
    bundle = event_model.compose_run(time=T, metadata={"scan_id": 9, "plan_name": "scan"})
    docs = [("start", bundle.start_doc)]
    primary = bundle.compose_descriptor(name="primary", data_keys={"det": _num()}, time=T)
    docs.append(("descriptor", primary.descriptor_doc))
    for i, dt in enumerate(P_TIMES):
        docs.append(
            (
                "event",
                primary.compose_event(
                    data={"det": float(i)}, timestamps={"det": T + dt}, time=T + dt
                ),
            )
        )
    keys = {
        "current": _num(),
        "n": {"dtype": "integer", "shape": [], "source": "S"},
        "tag": {"dtype": "string", "shape": [], "source": "S"},
    }
    first = bundle.compose_descriptor(name="monitor", data_keys=keys, time=T)
    second = bundle.compose_descriptor(
        name="monitor", data_keys=keys, time=T + 0.01, configuration={"x": {"data": {}}}
    )
    docs += [("descriptor", first.descriptor_doc), ("descriptor", second.descriptor_doc)]
    for i, dt in enumerate(M_TIMES if monitor_events else []):
        desc = first if i < 5 else second
        data = {"current": 100.0 + i, "n": i, "tag": f"r{i}"}
        docs.append(
            (
                "event",
                desc.compose_event(data=data, timestamps={k: T + dt for k in data}, time=T + dt),
            )
        )
    docs.append(("stop", bundle.compose_stop(time=T + 5)))
    return docs


def _expected(method, tolerance):
    """The answer by a loop over the readings, per event: the row taken (None: none within
    tolerance), and for ``linear`` the weight of the row after it and that row."""
    out = []
    for t in P_TIMES:
        before = [i for i, m in enumerate(M_TIMES) if m <= t]
        after = [i for i, m in enumerate(M_TIMES) if m > t]
        b = before[-1] if before else None
        a = after[0] if after else None
        if method == "previous":
            pick, dt = b, (t - M_TIMES[b]) if b is not None else None
            ok = pick is not None and (tolerance is None or dt <= tolerance)
            out.append((pick, 0.0, pick) if ok else (None, 0.0, None))
        elif method == "nearest":
            db = t - M_TIMES[b] if b is not None else np.inf
            da_ = M_TIMES[a] - t if a is not None else np.inf
            pick, dt = (b, db) if db <= da_ else (a, da_)
            ok = pick is not None and (tolerance is None or dt <= tolerance)
            out.append((pick, 0.0, pick) if ok else (None, 0.0, None))
        else:
            if b is not None and M_TIMES[b] == t:
                out.append((b, 0.0, b))  # a reading at the event's time
            elif (
                b is not None
                and a is not None
                and (tolerance is None or max(t - M_TIMES[b], M_TIMES[a] - t) <= tolerance)
            ):
                out.append((b, (t - M_TIMES[b]) / (M_TIMES[a] - M_TIMES[b]), a))
            else:
                out.append((None, 0.0, None))
    return out


@pytest.mark.parametrize("method", ["previous", "nearest", "linear"])
@pytest.mark.parametrize("tolerance", [None, 0.25])
def test_align_across_chunks_descriptors_and_containers(method, tolerance):
    docs = _chunky_run()
    chunky, whole = MemoryStore(chunk_rows=2), MemoryStore()
    insert_all(chunky, docs)
    insert_all(whole, docs)
    small, big = BrokerCatalog(chunky)[uid(docs)], BrokerCatalog(whole)[uid(docs)]
    assert small.monitor.to_dask()["current"].chunks[0] == (2, 2, 1, 2, 2, 1)
    expected = _expected(method, tolerance)
    current = [
        np.nan if r is None else (100.0 + r) * (1 - w) + (100.0 + u) * w for r, w, u in expected
    ]
    n = [np.nan if r is None else (r * (1 - w) + u * w) for r, w, u in expected]
    tags = [None if r is None else f"r{r}" for r, _, _ in expected]
    sources = {
        "stream, pages of 2 events": small,
        "stream, one page": big,
        "datasets in memory": {k: small[k].read() for k in ("primary", "monitor")},
        "dask datasets, chunks of 3": {
            k: small[k].to_dask().chunk({"time": 3}) for k in ("primary", "monitor")
        },
    }
    for what, source in sources.items():
        lazy = mux.align(source, ["monitor"], method=method, tolerance=tolerance)
        if what != "datasets in memory":
            assert isinstance(lazy["current"].data, da.Array), what
        ds = lazy.compute()
        np.testing.assert_allclose(ds["current"], current, rtol=1e-8, err_msg=what)
        np.testing.assert_allclose(ds["n"], n, rtol=1e-6, atol=1e-6, err_msg=what)
        assert ds["n"].dtype == (
            np.float64 if any(r is None for r, _, _ in expected) or method == "linear" else np.int64
        ), what
        got = [v if isinstance(v, str) else None for v in ds["tag"].values.tolist()]
        assert got == tags, what
        assert ds["monitor_valid"].values.tolist() == [r is not None for r, _, _ in expected]
        if method != "linear":
            when = [np.nan if r is None else T + M_TIMES[r] for r, _, _ in expected]
            np.testing.assert_allclose(ds["monitor_time"], when, err_msg=what)
        np.testing.assert_array_equal(ds["det"], np.arange(7.0))


def test_align_on_a_stream_whose_times_do_not_ascend(cat):
    # the target's events are taken in their order: T+2 then T+1 (only other streams must
    # ascend); each still gets the last monitor reading at or before its time
    ds = cat[uid(MUX)].align(["monitor"], on="skewed").compute()
    np.testing.assert_array_equal(ds["current"], [3.0, 2.0])
    np.testing.assert_allclose(ds["monitor_time"] - T, [1.4, 1.0], atol=1e-6)


def test_align_with_a_stream_without_readings():
    docs = _chunky_run(monitor_events=False)
    store = MemoryStore()
    insert_all(store, docs)
    run = BrokerCatalog(store)[uid(docs)]
    for source in (run, {k: run[k].read() for k in ("primary", "monitor")}):
        ds = mux.align(source, ["monitor"]).compute()
        np.testing.assert_array_equal(ds["current"], [np.nan] * 7)
        np.testing.assert_array_equal(ds["n"], [np.nan] * 7)  # integers become float
        assert ds["tag"].values.tolist() == [None] * 7
        assert not ds["monitor_valid"].values.any()
        np.testing.assert_array_equal(ds["det"], np.arange(7.0))
