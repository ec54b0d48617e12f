"""Bad outputs and bad sources: a clear error, or a warning naming the file while the other
runs still list."""

from __future__ import annotations

import pytest

from intake_broker.errors import BrokerError, RunNotFound, SourceNotFound
from intake_broker_simulation import SimulationCatalog, SimulationOutputWarning, SimulationStore

from .outputs import md_dataset, write_netcdf4, write_zarr


def test_a_corrupt_netcdf_file_is_left_out_with_a_warning(tmp_path):
    good = write_netcdf4(tmp_path / "good.nc")
    data = open(good, "rb").read()
    (tmp_path / "truncated.nc").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.nc").write_bytes(b"this is no netcdf file at all")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.warns(SimulationOutputWarning) as caught:
        cat = SimulationCatalog(str(tmp_path))
    messages = " | ".join(str(w.message) for w in caught)
    for name in ("truncated.nc", "garbage.nc", "empty.h5"):
        assert name in messages
    assert "starts with b'this is " in messages and "empty" in messages
    assert len(cat) == 1 and cat[-1].primary.read()["temperature"].shape == (40,)


def test_a_broken_file_is_reported_once_not_at_every_listing(tmp_path, recwarn):
    write_netcdf4(tmp_path / "good.nc")
    (tmp_path / "bad.nc").write_bytes(b"CDF\x01broken")
    store = SimulationStore(str(tmp_path), refresh_interval=0)
    store.runs()
    store.runs()
    assert sum("bad.nc" in str(w.message) for w in recwarn.list) == 1


def test_a_file_without_the_required_attributes(tmp_path):
    write_netcdf4(tmp_path / "labelled.nc", run_number=1)
    ds = md_dataset(run_number=2)
    del ds.attrs["sample"]
    ds.to_netcdf(tmp_path / "unlabelled.nc", engine="h5netcdf")
    with pytest.warns(
        SimulationOutputWarning, match=r"unlabelled\.nc.*\['sample', 'sample_name'\]"
    ):
        cat = SimulationCatalog(str(tmp_path), required=["sample"])
    assert [r.metadata["start"]["scan_id"] for _, r in cat.items()] == [1]
    # without the requirement it lists, with what it has
    assert len(SimulationCatalog(str(tmp_path))) == 2


def test_an_attribute_the_mapping_cannot_use(tmp_path):
    write_netcdf4(tmp_path / "md.nc", date_created="yesterday", run_number="seventeen")
    with pytest.warns(SimulationOutputWarning) as caught:
        run = SimulationCatalog(str(tmp_path))[-1]
    text = " ".join(str(w.message) for w in caught)
    assert "md.nc" in text and "'yesterday'" in text and "'seventeen'" in text
    start = run.metadata["start"]
    assert "scan_id" not in start and start["attributes"]["run_number"] == "seventeen"
    assert start["time"] == pytest.approx((tmp_path / "md.nc").stat().st_mtime)


def test_two_outputs_with_one_uid(tmp_path):
    uid = "0d6b1e4c-1c6e-4a2b-9c55-3f1e0a0b5c7d"
    write_netcdf4(tmp_path / "a.nc", uid=uid, run_number=1)
    write_netcdf4(tmp_path / "b.nc", uid=uid, run_number=2)
    with pytest.warns(SimulationOutputWarning, match="b.nc and .*a.nc have the same uid"):
        cat = SimulationCatalog(str(tmp_path))
    assert len(cat) == 1 and cat[uid].metadata["start"]["scan_id"] == 1


def test_a_missing_folder_or_bucket_is_an_error_naming_it(tmp_path, s3_server):
    with pytest.raises(SourceNotFound, match="no-such-folder.*no such file, folder or bucket"):
        SimulationCatalog(str(tmp_path / "no-such-folder"))
    with pytest.raises(SourceNotFound, match="s3://no-such-bucket-here/sims") as info:
        SimulationCatalog(
            "s3://no-such-bucket-here/sims/", storage_options=s3_server["storage_options"]
        )
    assert isinstance(info.value, BrokerError | FileNotFoundError)


def test_a_glob_matching_nothing_yet_warns_and_fills_later(tmp_path):
    with pytest.warns(SimulationOutputWarning, match=r"\*\.nc: no simulation output matches"):
        cat = SimulationCatalog(str(tmp_path / "*.nc"), refresh_interval=0)
    assert len(cat) == 0
    write_netcdf4(tmp_path / "md.nc")
    assert len(cat) == 1


def test_an_output_deleted_after_listing(tmp_path):
    import shutil

    write_zarr(tmp_path / "gone.zarr")
    cat = SimulationCatalog(str(tmp_path), refresh_interval=3600)
    run = cat[-1]
    shutil.rmtree(tmp_path / "gone.zarr")
    with pytest.raises((RunNotFound, BrokerError), match="gone.zarr"):
        run.primary.read()


def test_a_bad_mapping_is_refused_when_the_catalog_opens(tmp_path):
    write_netcdf4(tmp_path / "md.nc")
    with pytest.raises(BrokerError, match="mapping: start key 'sample' maps to"):
        SimulationCatalog(str(tmp_path), mapping={"sample": [3]})
    with pytest.raises(BrokerError, match=r"required: \['operator'\] are not keys"):
        SimulationCatalog(str(tmp_path), required=["operator"])


def test_too_many_outputs_are_cut_with_a_warning(tmp_path):
    for i in range(3):
        write_netcdf4(tmp_path / f"md{i}.nc", run_number=i)
    with pytest.warns(SimulationOutputWarning, match="more than max_outputs=2"):
        store = SimulationStore(str(tmp_path), max_outputs=2)
    assert store.count() == 2
