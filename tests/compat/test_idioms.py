"""databroker 2 (tiled-style) idioms on our catalogs, Broker construction and writing, and bad
input -- the values checked against databroker 1.2.5's golden tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _golden import ASSETS, ROOT, golden_runs, golden_table

from intake_broker import BrokerCatalog
from intake_broker.compat import Broker, InvalidConfig, install_databroker_shim
from intake_broker.errors import BrokerError, FieldNotFound, RunIndexError
from intake_broker.queries import Key


def test_run_documents_and_nodes(catalog, golden):
    expected = golden["runs"]["scan_baseline"]
    run = catalog[expected["uid"]]
    assert run.start == expected["start"] and run.stop == expected["stop"]
    assert sorted(d["uid"] for d in run.descriptors) == sorted(expected["descriptor_uids"])
    assert run.uid in repr(run)  # the full uid
    table = golden_table(expected["tables"]["primary/default"])
    det = run["primary"]["data"]["det"]
    assert det.shape == (5,) and det.dtype == np.float64 and len(det) == 5
    np.testing.assert_array_equal(det[:], table["det"].to_numpy())
    np.testing.assert_array_equal(det[1:3], table["det"].to_numpy()[1:3])
    np.testing.assert_array_equal(det.read(), table["det"].to_numpy())
    np.testing.assert_array_equal(np.asarray(det), table["det"].to_numpy())
    np.testing.assert_array_equal(run["primary/data/det"][:], table["det"].to_numpy())
    ds = run["primary"]["data"].read()
    assert set(ds.data_vars) == {"det", "motor", "motor_setpoint"}
    assert list(run["primary"]["data"]) == ["det", "motor", "motor_setpoint"]
    assert list(run.primary.read(["det"]).data_vars) == ["det"]
    assert list(run["primary"]["data"].read(["motor"]).data_vars) == ["motor"]
    np.testing.assert_array_equal(
        run.baseline.read()["motor1"].values,
        golden_table(expected["tables"]["baseline/default"])["motor1"].to_numpy(),
    )
    assert set(run["primary"]["timestamps"]) == {"det", "motor", "motor_setpoint"}
    assert "det" in run["primary"]["config"]


def test_image_fields_read_lazily_and_match(catalog, golden):
    expected = golden["runs"]["npy_images"]
    frames = np.stack(list(golden_table(expected["tables"]["primary/fill"])["img"]))
    img = catalog[expected["uid"]]["primary"]["data"]["img"]
    assert img.shape == frames.shape
    np.testing.assert_array_equal(img[1], frames[1])
    np.testing.assert_array_equal(img[:, 2:4, 1], frames[:, 2:4, 1])
    hdf = catalog[golden["uids"]["ad_hdf5"]]["primary/data/cam_image"]
    fill = golden_table(golden["runs"]["ad_hdf5"]["tables"]["primary/fill"])["cam_image"]
    np.testing.assert_array_equal(hdf[:], np.stack([f[0] for f in fill]))  # (1, y, x) there


def test_slices_and_key_searches(catalog, golden):
    lookups = golden["lookups"]
    newest_first = lookups["slice-3"]
    assert [r.uid for r in catalog[-3:]] == newest_first[::-1]  # positions, oldest first
    assert [r.uid for r in catalog[-5:-2]] == lookups["slice-5:-2"][::-1]
    assert catalog[-3:][-1].uid == catalog[-1].uid
    assert [r.uid for r in catalog[::-1]][:3] == newest_first
    assert catalog[-100:] and len(catalog[-100:]) == len(catalog)
    assert catalog[10:20] == []
    for name in ("plan_name=scan", "plan_name=count", "scan_id_gt", "nested"):
        query = {
            "plan_name=scan": Key("plan_name") == "scan",
            "plan_name=count": Key("plan_name") == "count",
            "scan_id_gt": Key("scan_id") > 3,
            "nested": Key("operator.name") == "Ada",
        }[name]
        assert sorted(catalog.search(query)) == sorted(golden["searches"][name]["uids"])
    assert len(catalog.search(Key("scan_id").in_([1, 2]) & (Key("plan_name") != "scan"))) == 1
    values = list(catalog.values())
    assert [r.uid for r in values] == [uid for uid, _ in catalog.items()]


def test_bad_input_on_the_idioms(catalog, golden):
    run = catalog[golden["uids"]["scan_baseline"]]
    with pytest.raises(RunIndexError) as info:
        catalog[-100]
    assert isinstance(info.value, IndexError) and isinstance(info.value, KeyError)
    with pytest.raises(FieldNotFound, match="has no data key 'nosuch'"):
        run["primary"]["data"]["nosuch"]
    with pytest.raises(FieldNotFound, match="no data keys"):
        run.primary.read(["nosuch"])
    with pytest.raises(KeyError, match="nodes"):
        run["primary"]["nosuch"]
    with pytest.raises(KeyError, match="no stream"):
        run["nosuch/data/det"]
    with pytest.raises(TypeError):
        catalog["a":"b"]
    with pytest.raises(ValueError, match="zero"):
        catalog[::0]


def test_insert_through_the_broker_records_a_run():
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det, motor

    db = Broker.named("temp")
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(db.insert)
    (uid,) = RE(bp.scan([det], motor, -1, 1, 4))
    h = db[-1]
    assert h.uid == uid and h.stop["exit_status"] == "success"
    table = h.table()
    assert list(table.index) == [1, 2, 3, 4] and list(table.columns) == [
        "time", "det", "motor", "motor_setpoint",
    ]  # fmt: skip
    np.testing.assert_array_equal(table["motor"], np.linspace(-1, 1, 4))
    assert db.v1 is db and db.v2.v1.v2 is db.v2
    assert db.stream_names_given_header(h) == ["primary"]


def test_named_reads_databroker_config_files(tmp_path, monkeypatch, golden):
    """``~/.config/databroker/{name}.yml``: an intake-style file is opened as it is; a
    databroker v0 MongoDB config is understood (and its errors explained)."""
    data = tmp_path / "runs"
    data.mkdir()
    for i, docs in enumerate(golden_runs()):
        with open(data / f"{i}.jsonl", "w") as f:
            for name, doc in docs:
                f.write(json.dumps([name, doc]) + "\n")
    config = tmp_path / ".config" / "databroker"
    config.mkdir(parents=True)
    (config / "local.yml").write_text(
        "sources:\n  local:\n    driver: bluesky-jsonl-catalog\n    args:\n"
        f"      paths: ['{data}/*.jsonl']\n      root_map: {{'{ROOT}': '{ASSETS}'}}\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    db = Broker.named("local")
    assert db[-1].uid == golden["lookups"]["-1"]
    np.testing.assert_array_equal(
        np.stack(list(db[golden["uids"]["npy_images"]].table(fill=True)["img"])),
        np.stack(list(golden_table(golden["runs"]["npy_images"]["tables"]["primary/fill"])["img"])),
    )
    assert db.get_config()["sources"]
    (config / "bad.yml").write_text("metadatastore: {module: somewhere.else}\nassets: {}\n")
    with pytest.raises(InvalidConfig, match="Unable to handle metadatastore.module"):
        Broker.named("bad")
    with pytest.raises(InvalidConfig, match="not both"):
        Broker.from_config(
            {
                "metadatastore": {
                    "module": "databroker.headersource.mongo",
                    "class": "MDS",
                    "config": {"uri": "mongodb://x", "host": "x", "database": "d"},
                },
                "assets": {"module": "databroker.assets.mongo", "class": "Registry", "config": {}},
            }
        )
    with pytest.raises(InvalidConfig, match="plain file stem"):
        Broker.named("../etc/passwd")
    with pytest.raises(KeyError):
        Broker.named("no-such-catalog-anywhere")
    with pytest.raises(TypeError, match="intake-broker catalog"):
        Broker(object())  # type: ignore[arg-type]


def test_v0_mongo_config_opens_the_mongo_driver(mongo_server, golden):
    """databroker's v0/v1 MongoDB configuration, read as it is, opens our mongo driver."""
    host, port = mongo_server.uri.split("//")[1].split("@")[-1].rstrip("/").split(":")[:2]
    config = {
        "metadatastore": {
            "module": "databroker.headersource.mongo",
            "class": "MDS",
            "config": {"host": host, "port": int(port.split("/")[0]), "database": "compat-mds"},
        },
        "assets": {
            "module": "databroker.assets.mongo",
            "class": "Registry",
            "config": {"host": host, "port": int(port.split("/")[0]), "database": "compat-ar"},
        },
        "root_map": {ROOT: ASSETS},
    }
    db = Broker.from_config(config)
    try:
        for name, doc in golden_runs()[2]:
            db.insert(name, doc)
        h = db[-1]
        assert h.uid == golden["uids"]["npy_images"]
        np.testing.assert_array_equal(
            np.stack(list(h.table(fill=True)["img"])),
            np.stack(
                list(golden_table(golden["runs"]["npy_images"]["tables"]["primary/fill"])["img"])
            ),
        )
    finally:
        mongo_server.drop("compat-mds", "compat-ar")


def test_the_import_shim():
    import sys

    had = sys.modules.pop("databroker", None)
    try:
        shim = install_databroker_shim()
        from databroker import Broker as ShimBroker  # type: ignore[import-not-found]

        assert ShimBroker is Broker and shim.temp().v2 is not None
    finally:
        sys.modules.pop("databroker", None)
        if had is not None:
            sys.modules["databroker"] = had


def test_errors_are_broker_errors():
    assert issubclass(InvalidConfig, BrokerError) and issubclass(FieldNotFound, KeyError)
    assert isinstance(BrokerCatalog, type)
