"""Simulation outputs as runs: metadata mapping, streams, lazy reads through intake-xarray,
stable uids, every format, S3, YAML, the scan cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
import xarray as xr
from intake_xarray.netcdf import NetCDFSource
from intake_xarray.xzarr import ZarrSource

import intake_broker_simulation.store as store_module
from intake_broker.views.catalog import BrokerCatalog
from intake_broker_simulation import SimulationCatalog, SimulationStore

from .outputs import (
    write_netcdf3,
    write_netcdf4,
    write_plain_hdf5,
    write_zarr,
)

CREATED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()


def only_run(cat):
    assert len(cat) == 1
    return cat[-1]


def test_a_netcdf4_output_is_a_run_with_mapped_metadata(tmp_path):
    path = write_netcdf4(tmp_path / "md.nc")
    run = only_run(SimulationCatalog(str(tmp_path)))
    start = run.metadata["start"]
    assert start["plan_name"] == "md-heat" and start["sample"] == "LaB6"
    assert start["scan_id"] == 17 and start["time"] == CREATED
    assert start["attributes"] == {
        "title": "Molecular dynamics of LaB6 under heating",
        "institution": "Digital twin group",
        "conventions": "CF-1.8",
    }
    assert start["simulation_output"] == {"file": "md.nc", "format": "netcdf4"}
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"] == {"primary": 40, "layer": 3, "diagnostics": 25}
    assert set(run) == {"primary", "layer", "diagnostics"}

    expected = xr.open_dataset(path, engine="h5netcdf", decode_times=False)
    primary = run.primary.read()
    assert set(primary.data_vars) == {"temperature", "energy", "step", "density"}
    for name in primary.data_vars:
        np.testing.assert_array_equal(primary[name].values, expected[name].values)
        assert primary[name].dtype == expected[name].dtype
    assert primary["density"].dims == ("time", "y", "x")
    assert primary["temperature"].attrs["units"] == "K"
    # the CF time coordinate (days since ...) gives the events' times in epoch seconds
    np.testing.assert_allclose(primary["time"].values, CREATED + np.arange(40), rtol=0, atol=1e-6)
    assert run.primary.config["parameters"].read()["timestep"].values.tolist() == [0.002] * 40

    layer = run.layer.read()  # no time coordinate: every row has the run's time
    np.testing.assert_array_equal(layer["depth"].values, expected["depth"].values)
    assert layer["time"].values.tolist() == [CREATED] * 3
    diagnostics = run.diagnostics.read()
    grouped = xr.open_dataset(path, engine="h5netcdf", group="diagnostics")
    np.testing.assert_array_equal(diagnostics["residual"].values, grouped["residual"].values)
    np.testing.assert_array_equal(diagnostics["iteration"].values, np.arange(25))
    assert run.diagnostics.config["parameters"].read()["tolerance"].values[0] == 1e-6


def test_every_format_gives_the_same_runs(tmp_path):
    write_netcdf3(tmp_path / "classic.nc", run_number=1)
    write_netcdf4(tmp_path / "four.nc4", run_number=2)
    write_zarr(tmp_path / "store.zarr", run_number=3)
    cat = SimulationCatalog(str(tmp_path))
    runs = {cat[n].metadata["start"]["simulation_output"]["format"]: cat[n] for n in (1, 2, 3)}
    assert set(runs) == {"netcdf3", "netcdf4", "zarr"}
    reference = runs["netcdf4"].primary.read()
    for fmt, run in runs.items():
        start = run.metadata["start"]
        assert (start["plan_name"], start["sample"], start["time"]) == ("md-heat", "LaB6", CREATED)
        got = run.primary.read()
        for name in ("temperature", "energy", "density"):
            np.testing.assert_array_equal(got[name].values, reference[name].values, err_msg=fmt)
        np.testing.assert_allclose(got["time"].values, reference["time"].values, atol=1e-6)
    assert set(runs["netcdf3"]) == {"primary", "layer"}  # no groups in NetCDF-3
    assert set(runs["zarr"]) == {"primary", "layer", "diagnostics"}
    assert isinstance(cat.store.source(runs["zarr"].uid), ZarrSource)
    assert isinstance(cat.store.source(runs["netcdf3"].uid, "layer"), NetCDFSource)


def test_a_plain_hdf5_file_is_a_run(tmp_path):
    write_plain_hdf5(tmp_path / "plain.h5")
    run = only_run(SimulationCatalog(str(tmp_path)))
    values = {k: v.values for s in run for k, v in run[s].read().data_vars.items()}
    np.testing.assert_array_equal(values["signal"], np.arange(30.0))
    assert values["frames"].shape == (30, 2, 2)


UIDS = """
import json, sys
from intake_broker_simulation import SimulationStore
print(json.dumps(sorted(r.uid for r in SimulationStore(sys.argv[1]).runs())))
"""


def test_uids_are_stable_across_processes_and_follow_the_contents(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    write_netcdf4(folder / "one.nc")
    write_netcdf3(folder / "two.nc", sample="CeO2")
    write_zarr(folder / "three.zarr", model="other")
    here = sorted(r.uid for r in SimulationStore(str(folder)).runs())
    assert len(set(here)) == 3
    out = subprocess.run(
        [sys.executable, "-c", UIDS, str(folder)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here  # another process, the same uids
    copy = tmp_path / "b"
    shutil.copytree(folder, copy)
    assert sorted(r.uid for r in SimulationStore(str(copy)).runs()) == here  # moved: same
    write_netcdf4(copy / "one.nc", title="changed")  # a changed attribute: a new run
    changed = sorted(r.uid for r in SimulationStore(str(copy)).runs())
    assert len(set(changed) & set(here)) == 2


def test_a_uid_attribute_is_the_uid(tmp_path):
    write_netcdf4(tmp_path / "md.nc", uuid="6f1d6f38-5b6a-4c1e-9a8e-2f4f3f0e8d11")
    run = only_run(SimulationCatalog(str(tmp_path)))
    assert run.uid == "6f1d6f38-5b6a-4c1e-9a8e-2f4f3f0e8d11"


def test_a_configured_mapping(tmp_path):
    write_netcdf4(tmp_path / "md.nc", material="Si", operator_name="ada")
    cat = SimulationCatalog(
        str(tmp_path),
        mapping={"sample.name": "material", "operator": "operator_name", "sample": None},
    )
    start = only_run(cat).metadata["start"]
    assert start["sample"] == {"name": "Si"} and start["operator"] == "ada"
    assert start["attributes"]["sample"] == "LaB6"  # no longer mapped: kept as metadata
    assert len(cat.search('sample.name == "Si" and operator == "ada"')) == 1


def test_streams_are_lazy_and_follow_the_stored_chunks(tmp_path, monkeypatch):
    write_netcdf4(tmp_path / "md.nc")
    store = SimulationStore(str(tmp_path))
    run = BrokerCatalog(store)[-1]
    asked = []
    original = SimulationStore.read_events

    def spy(self, descriptor_uid, **kwargs):
        asked.append((kwargs.get("fields"), kwargs.get("seq_range")))
        return original(self, descriptor_uid, **kwargs)

    monkeypatch.setattr(SimulationStore, "read_events", spy)
    lazy = run.primary.to_dask()
    assert asked == [([], None)]  # only time and seq_num were read
    assert lazy["temperature"].chunks[0] == (10, 10, 10, 10)  # the file's chunks
    assert float(lazy["temperature"][15]) == float(
        xr.open_dataset(tmp_path / "md.nc", engine="h5netcdf")["temperature"][15]
    )
    # one stored chunk was read (the core reads a chunk's fields together)
    assert asked[1:] == [(["temperature", "energy", "step", "density"], (11, 21))]
    native = store.dataset(run.uid)  # the output's own dataset, through intake-xarray
    assert native["density"].chunks is not None and native["temperature"].dims == ("time",)


def test_summary_searches_find_what_the_data_showed(tmp_path):
    write_netcdf4(tmp_path / "cold.nc", run_number=1)
    hot = xr.open_dataset(write_netcdf4(tmp_path / "hot.nc", run_number=2), engine="h5netcdf")
    hot = hot.load()
    hot["temperature"] = hot["temperature"] + 500
    hot.attrs["title"] = "hot"
    (tmp_path / "hot.nc").unlink()
    hot.to_netcdf(tmp_path / "hot.nc", engine="h5netcdf")
    cat = SimulationCatalog(str(tmp_path))
    found = cat.search("summary.primary.temperature.max > 600")
    assert [r.metadata["start"]["scan_id"] for _, r in found.items()] == [2]
    assert len(cat.search("summary.layer.depth.max == 1.0")) == 2
    assert len(cat.search('plan_name == "md-heat" and scan_id < 2')) == 1


def test_new_outputs_appear_at_the_next_listing(tmp_path):
    write_netcdf4(tmp_path / "one.nc", run_number=1)
    cat = SimulationCatalog(str(tmp_path), refresh_interval=0)
    assert len(cat) == 1
    write_netcdf4(tmp_path / "two.nc", run_number=2)
    assert len(cat) == 2 and cat[2].metadata["start"]["scan_id"] == 2


def test_netcdf4_and_zarr_on_s3(tmp_path, s3_server, s3_prefix):
    options = s3_server["storage_options"]
    fs = s3_server["server"].filesystem()
    local = write_netcdf4(tmp_path / "md.nc", run_number=1)
    fs.put_file(local, f"{s3_prefix}/md.nc")
    write_zarr(f"{s3_prefix}/md.zarr", storage_options=options, run_number=2)
    cat = SimulationCatalog(f"{s3_prefix}/", storage_options=options)
    assert len(cat) == 2
    expected = xr.open_dataset(local, engine="h5netcdf")
    for scan_id in (1, 2):
        run = cat[scan_id]
        assert run.metadata["start"]["simulation_output"]["file"] in ("md.nc", "md.zarr")
        ds = run.primary.to_dask()
        np.testing.assert_array_equal(ds["density"].values, expected["density"].values)
        np.testing.assert_array_equal(run.diagnostics.read()["iteration"].values, np.arange(25))
    # the same files give the same uids on S3 as on a local disk
    local_uid = SimulationStore(str(tmp_path)).runs()[0].uid
    assert cat[1].uid == local_uid


def test_a_yaml_entry_through_plain_intake(tmp_path):
    import intake

    (tmp_path / "sims").mkdir()
    write_netcdf4(tmp_path / "sims" / "md.nc")
    (tmp_path / "catalog.yml").write_text(
        "sources:\n"
        "  md:\n"
        "    driver: bluesky-simulation-catalog\n"
        "    args:\n"
        "      paths: ['{{ CATALOG_DIR }}/sims']\n"
        "      mapping: {sample.name: sample, sample: null}\n"
    )
    cat = intake.open_catalog(str(tmp_path / "catalog.yml"))["md"]
    run = cat.search('sample.name == "LaB6"')[-1]
    assert run.primary.read()["temperature"].shape == (40,)


def test_the_scan_cache_spares_reading_the_outputs_again(tmp_path, monkeypatch):
    for i in range(3):
        write_netcdf4(tmp_path / f"md{i}.nc", run_number=i)
    cache = tmp_path / "cache" / "scan.json"
    first = sorted(r.uid for r in SimulationStore(str(tmp_path), cache=str(cache)).runs())
    assert cache.exists() and len(json.loads(cache.read_text())["outputs"]) == 3
    store_module._SCANNED.clear()  # as in a new process

    def no_reading(*args, **kwargs):
        raise AssertionError("an output was read although the cache holds it")

    monkeypatch.setattr(store_module, "scan_output", no_reading)
    again = SimulationStore(str(tmp_path), cache=str(cache))
    assert sorted(r.uid for r in again.runs()) == first
    assert again.count() == 3


def test_the_fast_hdf5_scan_agrees_with_h5netcdf(tmp_path):
    from intake_broker_simulation import outputs

    write_netcdf4(tmp_path / "md.nc", tags=["a", "b"])
    from .outputs import md_dataset

    md_dataset().to_netcdf(tmp_path / "netcdf4lib.nc", engine="netcdf4")  # the C library's
    for name in ("md.nc", "netcdf4lib.nc"):
        with open(tmp_path / name, "rb") as f:
            fast = outputs._scan_h5py(f, name)
        with open(tmp_path / name, "rb") as f:
            reference = outputs._scan_hdf5_h5netcdf(f, name)
        assert fast[0] == reference[0]

        def as_text(groups):  # as JSON: NaN fill values compare equal
            return outputs.dumps(
                {g.path: {v.name: v.__dict__ for v in g.variables} for g in groups}
            )

        assert as_text(fast[1]) == as_text(reference[1])


def test_behind_the_access_guard_another_proposal_looks_missing(tmp_path):
    from intake_broker.access import GuardedStore, Principal, ProposalPolicy
    from intake_broker.errors import DescriptorNotFound, RunNotFound

    write_netcdf4(tmp_path / "mine.nc", proposal="p-101", run_number=1)
    write_netcdf4(tmp_path / "theirs.nc", proposal="p-202", run_number=2)
    store = SimulationStore(str(tmp_path), mapping={"proposal_id": "proposal"})
    ada = Principal("ada", proposals=("p-101",))
    cat = BrokerCatalog(GuardedStore(store, ProposalPolicy(), ada))
    assert [r.metadata["start"]["scan_id"] for _, r in cat.items()] == [1]
    assert cat[1].primary.read()["temperature"].shape == (40,)
    assert len(cat.search("summary.primary.temperature.max > 0")) == 1
    theirs = next(r for r in store.runs() if r.start["scan_id"] == 2)
    descriptor = store.descriptors(theirs.uid)[0]["uid"]
    with pytest.raises(RunNotFound):
        cat[theirs.uid]
    with pytest.raises((RunNotFound, DescriptorNotFound)):
        cat.store.read_events(descriptor, fields=["temperature"])
    with pytest.raises((RunNotFound, DescriptorNotFound)):
        list(cat.store.documents(theirs.uid))
