"""databroker's v1 API over our catalogs, against what databroker 1.2.5 itself answered.

Every test runs on four stores (memory, JSONL files, native, remote through a live server);
the expected values are databroker's, recorded by make_golden.py (none is written here)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _golden import frames_of, golden_documents, golden_table, plain

LABELS = ["scan_baseline", "count_conf", "npy_images", "ad_hdf5", "grid", "count_meta"]


def assert_same_table(ours: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(ours.columns) == list(expected.columns)
    assert ours.index.name == "seq_num"
    assert list(ours.index) == list(expected.index)
    for column in expected.columns:
        got, want = ours[column], expected[column]
        if want.dtype.kind == "M":
            assert got.dtype.kind == "M" and got.dt.tz is None
            delta = (got.astype("datetime64[ns]") - want.astype("datetime64[ns]")).abs()
            assert delta.max() <= pd.Timedelta(microseconds=1), column
        elif want.dtype == object and len(want) and isinstance(want.iloc[0], np.ndarray):
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(frames_of(a), frames_of(b))
        elif want.dtype.kind in "fiub":
            assert got.dtype.kind == want.dtype.kind, (column, got.dtype, want.dtype)
            np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
        else:
            assert [str(v) for v in got] == [str(v) for v in want], column


def assert_same_documents(ours, expected) -> None:
    """Same documents in the same order; databroker put the descriptors, resources and datums
    before the first event in the order of a ``set`` of stream names, so that prefix is
    compared sorted; filled frames are compared as arrays."""

    def prefix_sorted(pairs):
        first = next((i for i, (n, _) in enumerate(pairs) if n == "event"), len(pairs) - 1)
        head = sorted(pairs[1:first], key=lambda p: (p[0], p[1].get("uid") or p[1].get("datum_id")))
        return [pairs[0], *head, *pairs[first:]]

    def arrays_out(pairs):
        out = []
        for name, doc in pairs:
            if name == "event":
                doc = {**doc, "data": dict(doc["data"])}
                for key, value in doc["data"].items():
                    if isinstance(value, dict) and "__ndarray__" in value:
                        doc["data"][key] = frames_of(value).tolist()
            out.append([name, doc])
        return out

    ours, expected = arrays_out(prefix_sorted(plain(ours))), arrays_out(prefix_sorted(expected))
    assert [n for n, _ in ours] == [n for n, _ in expected]
    for (name, got), (_, want) in zip(ours, expected, strict=True):
        assert got == want, name


@pytest.mark.parametrize("label", LABELS)
def test_header_as_databroker_gave_it(db, golden, label):
    expected = golden["runs"][label]
    h = db[expected["uid"]]
    assert h.uid == expected["uid"]
    assert dict(h.start) == expected["start"]
    assert dict(h.stop) == expected["stop"]
    assert [d["uid"] for d in h.descriptors] == expected["descriptor_uids"]  # newest first
    assert sorted(h.stream_names) == sorted(expected["stream_names"])
    assert sorted(h.fields()) == expected["fields"]
    for stream, fields in expected["fields_by_stream"].items():
        assert sorted(h.fields(stream)) == fields
    assert sorted(h.devices()) == expected["devices"]
    for device, config in expected["config_data"].items():
        assert plain([("c", h.config_data(device))])[0][1] == config
    assert h["start"] == h.start and list(h.keys()) == ["start", "descriptors", "stop", "ext"]
    assert h == db[expected["uid"]] and h != db[expected["uid"][:0] or -1] or label == "count_meta"


@pytest.mark.parametrize("label", LABELS)
def test_tables_match_databroker(db, golden, label):
    expected = golden["runs"][label]
    h = db[expected["uid"]]
    for name, entry in expected["tables"].items():
        stream, variant = name.split("/")
        kwargs = {
            "default": {},
            "no_localize": {"localize_times": False},
            "raw_times": {"convert_times": False, "localize_times": False},
            "fill": {"fill": True},
        }.get(variant, {"fields": entry.get("fields")})
        if "raised" in entry:  # databroker failed here: so do we, with the same type
            with pytest.raises(getattr(__builtins__, entry["raised"], None) or Exception):
                h.table(stream_name=stream, **kwargs)
            continue
        assert_same_table(h.table(stream_name=stream, **kwargs), golden_table(entry))


@pytest.mark.parametrize("label", LABELS)
def test_documents_and_events_match_databroker(db, golden, label):
    expected = golden["runs"][label]
    h = db[expected["uid"]]
    for name, file in expected["documents"].items():
        if name.startswith("all/"):
            ours = h.documents(fill=name.endswith("1"))
        elif name.startswith("events/"):
            ours = (("event", e) for e in h.events(fill=name.endswith("1")))
        elif name == "baseline":
            ours = h.documents(stream_name="baseline")
        else:
            ours = db.get_documents(h, fields=["det", "plan_name"])
        assert_same_documents(list(ours), golden_documents(file))


@pytest.mark.parametrize("label", LABELS)
def test_data_and_xarray_match_databroker(db, golden, label):
    expected = golden["runs"][label]
    h = db[expected["uid"]]
    for field, values in expected["data"].items():
        got = plain([("d", list(h.data(field)))])[0][1]
        assert [frames_of(v).tolist() for v in got] == [frames_of(v).tolist() for v in values]
    assert list(h.data("nosuch")) == expected["data_nosuch"]["returned"]
    for stream, xr in expected["xarray"].items():
        if "raised" in xr:  # databroker could not make AD_HDF5's (1, y, x) frames a dataset
            assert h.xarray(stream)["cam_image"].shape[1:] == (6, 8)
            continue
        ds = h.xarray(stream)
        assert sorted(ds.variables) == xr["variables"]
        assert sorted(ds.coords) == xr["coords"]
        assert {k: list(v.dims) for k, v in ds.variables.items()} == xr["dims"]
        if xr["dataframe_columns"] is not None:
            assert list(ds.to_dataframe().columns) == xr["dataframe_columns"]
        assert sorted(h.xarray_dask(stream).variables) == xr["variables"]
        # the same variables through the v2 API itself, not only through the v1 Header
        run = db.v2[expected["uid"]]
        for got in (run[stream].read(), run[stream].to_dask()):
            assert sorted(got.variables) == xr["variables"] and list(got.coords) == ["time"]
            if xr["dataframe_columns"] is not None:
                assert list(got.to_dataframe().columns) == xr["dataframe_columns"]


def test_lookups(db, golden):
    uids = [golden["uids"][label] for label in LABELS]  # oldest first, as recorded
    lookups = golden["lookups"]
    assert db[-1].uid == lookups["-1"]
    assert db[-3].uid == lookups["-3"]
    assert [h.uid for h in db[-3:]] == lookups["slice-3"]
    assert [h.uid for h in db[-5:-2]] == lookups["slice-5:-2"]
    assert db[3].uid == lookups["scan_id3"]
    assert db[uids[2][:8]].uid == lookups["prefix"]
    assert [h.uid for h in db[[uids[0], -1]]] == lookups["list"]


def test_searches(db, golden):
    """The same runs as databroker found; ours newest first (databroker's MongoDB order; its
    file catalogs listed them in file order)."""
    times = {uid: db[uid].start["time"] for uid in golden["uids"].values()}
    for name, search in golden["searches"].items():
        found = [h.uid for h in db(**search["kwargs"])]
        assert sorted(found) == sorted(search["uids"]), name
        assert found == sorted(found, key=times.get, reverse=True), name
    filters = golden["filters"]
    db.add_filter(**filters["filter"])
    try:
        assert [h.uid for h in db(sample="sample-count_meta")] == filters["with_sample"]
        assert sorted(h.uid for h in db()) == sorted(filters["all"])
    finally:
        db.clear_filters()
    assert sorted(h.uid for h in db()) == sorted(filters["cleared"])
    # a query object or a MongoDB dict as the one positional argument
    assert sorted(h.uid for h in db({"scan_id": {"$gt": 3}})) == sorted(
        golden["searches"]["scan_id_gt"]["uids"]
    )


def test_several_headers_at_once(db, golden):
    multi = golden["multi"]
    hs = [db[u] for u in multi["uids"]]
    assert_same_table(
        db.get_table(hs, fields=["det", "det_with_conf"]), golden_table(multi["table"])
    )
    assert_same_documents(list(db.get_documents(hs)), golden_documents(multi["documents"]))
    events = [("event", e) for e in db.get_events(hs)]
    assert_same_documents(events, golden_documents(multi["events"]))
    assert_same_documents(list(db.restream(hs[0])), golden_documents(multi["restream"]))
    seen: list = []
    db.process(hs[1], lambda name, doc: seen.append((name, doc)))
    assert_same_documents(seen, golden_documents(multi["process"]))


def test_get_images(db, golden):
    from _golden import GOLDEN

    expected = golden["images"]["npy_images"]
    with pytest.warns(UserWarning, match="get_images are deprecated"):
        images = db.get_images(db[golden["uids"]["npy_images"]], "img")
    assert len(images) == expected["len"]
    assert list(images.frame_shape) == expected["frame_shape"]
    assert str(images.pixel_type) == expected["pixel_type"]
    frames = np.load(GOLDEN / "arrays" / "get_images.npy_images.npy")
    np.testing.assert_array_equal(np.stack(list(images)), frames)
    np.testing.assert_array_equal(images[-1], frames[-1])
    # databroker failed on AD_HDF5 frames read as (1, y, x); ours has the declared shape
    assert "raised" in golden["images"]["ad_hdf5"]
    with pytest.warns(UserWarning):
        hdf = db.get_images(db[golden["uids"]["ad_hdf5"]], "cam_image")
    assert len(hdf) == 4 and hdf.frame_shape == (6, 8)


def _raises_as_databroker(recorded: dict, call) -> Exception:
    builtin = {"KeyError": KeyError, "IndexError": IndexError, "ValueError": ValueError,
               "NotImplementedError": NotImplementedError}[recorded["raised"]]  # fmt: skip
    with pytest.raises(builtin) as info:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return info.value


def test_bad_input_raises_what_databroker_raised(db, golden, catalog):
    from intake_broker.errors import BrokerError

    errors = golden["errors"]
    for name, call in {
        "missing_uid": lambda: db["deadbeef" * 4],
        "missing_prefix": lambda: db["zzzz"],
        "out_of_range": lambda: db[-100],
        "missing_scan_id": lambda: db[9999],
        "bad_slice": lambda: db[2:],
        "header_item": lambda: db[-1]["nosuch"],
        "fill_events": lambda: db.fill_events([]),
        "handler_registry": lambda: db.get_table(db[-1], handler_registry={}),
    }.items():
        err = _raises_as_databroker(errors[name], call)
        if name in ("missing_uid", "missing_prefix", "out_of_range", "missing_scan_id"):
            assert isinstance(err, BrokerError) and str(err)  # ours, with our message
    assert "6 runs" in str(_raises_as_databroker(errors["out_of_range"], lambda: db[-100]))
    # what databroker answered without raising, we answer too
    for name, call in {
        "field_not_in_stream": lambda: db[-1].table(fields=["nosuch"]),
        "stream_not_in_run": lambda: db[-1].table(stream_name="nosuch"),
    }.items():
        df = call()
        assert list(df.shape) == errors[name]["shape"] and list(df.columns) == []
    assert db[-1].config_data("nosuch") == errors["config_unknown_device"]["returned"]


def test_a_header_of_another_catalog(db, golden, catalog):
    """databroker looked a foreign header up by uid: found, it read it; missing, KeyError."""
    from _golden import golden_runs

    from intake_broker import BrokerCatalog
    from intake_broker.errors import RunNotFound
    from intake_broker.store.memory import MemoryStore

    lone, first = MemoryStore(), MemoryStore()
    for docs, store in ((golden_runs()[-1], lone), (golden_runs()[0], first)):
        for name, doc in docs:
            store.insert(name, doc)
    other = BrokerCatalog(first).v1
    assert golden["errors"]["header_from_other_catalog"]["returned"] == "DataFrame"
    assert (
        list(db.get_table(other[-1]).columns)
        == golden["errors"]["header_from_other_catalog"]["columns"]
    )
    recorded = golden["errors"]["header_missing_from_catalog"]
    err = _raises_as_databroker(recorded, lambda: other.get_table(BrokerCatalog(lone).v1[-1]))
    assert isinstance(err, RunNotFound) and "not in catalog" in str(err)


def test_recommended_paths_emit_no_warning(db, golden):
    h = db[golden["uids"]["npy_images"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h.table(fill=True)
        list(h.documents(fill=True))
        list(h.data("img"))
        h.xarray()
        db(plan_name="count")
        h.start["uid"]
        run = db.v2[-1]
        run["primary"]["data"]["det"][:]
        run.primary.read(["det"])
