"""Export: runs recorded by a real RunEngine (step scan, grid scan with baseline, a detector
with configuration, an image detector writing NPY_SEQ assets, inline images) written in every
format and read back -- documents formats through ``intake-broker ingest`` (every document
equal), tables and arrays with pandas, pyarrow and xarray (every value equal) -- NeXus checked
with nexusformat and h5py; bad destinations, a full disk and an interrupted export."""

from __future__ import annotations

import errno
import json
import subprocess

import event_model
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count, grid_scan, scan
from bluesky.preprocessors import SupplementalData

import intake_broker
from intake_broker.cli import main
from intake_broker.errors import BadMapping, ExportError, StreamNotFound
from intake_broker.export import MANIFEST, export_runs
from intake_broker.export.base import sha256

h5py = pytest.importorskip("h5py")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """Five real runs in a memory catalog (the NPY_SEQ frames in a module temp folder)."""
    from ophyd.sim import det, det4, det_with_conf, direct_img, img, motor, motor1, motor2

    img.save_path = str(tmp_path_factory.mktemp("frames"))
    catalog = intake_broker.BrokerCatalog(intake_broker.MemoryStore())
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(catalog.insert)
    RE(scan([det], motor, -1, 1, 5), sample="Si")
    baseline = SupplementalData(baseline=[motor1, motor2])
    RE.preprocessors.append(baseline)
    RE(grid_scan([det4], motor1, -1, 1, 3, motor2, -1, 1, 4), sample={"name": "Au", "t": 3})
    RE.preprocessors.clear()
    RE(count([det_with_conf], 3))
    RE(count([img, det], 3))  # frames in NPY_SEQ files: resource + datum
    RE(count([direct_img], 2))  # frames in the events
    return catalog


def flat(docs):
    """Documents with event pages unpacked, ordered by kind and uid, as JSON values."""
    out = []
    for name, doc in docs:
        if name == "event_page":
            out += [("event", e) for e in event_model.unpack_event_page(doc)]
        elif name == "datum_page":
            out += [("datum", d) for d in event_model.unpack_datum_page(doc)]
        else:
            out.append((name, doc))
    out = json.loads(json.dumps(out, cls=event_model.NumpyEncoder))
    return sorted(out, key=lambda x: (x[0], str(x[1].get("uid", x[1].get("datum_id", "")))))


def assert_same_streams(a, b):
    for name in a:
        x, y = a[name].read(), b[name].read()
        assert set(x.data_vars) == set(y.data_vars)
        for key in x.data_vars:
            np.testing.assert_array_equal(x[key].values, y[key].values)
        np.testing.assert_array_equal(x["time"].values, y["time"].values)


# -- documents formats: export -> ingest -> every document and array equal -----------------------


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack", "nexus"])
def test_documents_round_trip_through_ingest(cat, tmp_path, fmt):
    manifest = cat.export(fmt, tmp_path / "out", progress=False)
    assert sorted(manifest.runs) == sorted(cat)
    data = tmp_path / "data"
    assert main(["--data", str(data), "--no-progress", "ingest", str(tmp_path / "out")]) == 0
    again = intake_broker.default_catalog(str(data))
    assert len(again) == len(cat)
    for uid in cat:
        assert flat(again[uid].documents()) == flat(cat[uid].documents()), uid
        assert_same_streams(cat[uid], again[uid])
    again.store.close()


def test_manifest_lists_every_file_with_its_checksum(cat, tmp_path):
    manifest = cat.export("jsonl", tmp_path, progress=False)
    written = json.loads((tmp_path / MANIFEST).read_text())
    assert written["format"] == "jsonl" and set(written["runs"]) == set(cat)
    for record in manifest.files:
        path = tmp_path / record.path
        assert path.stat().st_size == record.bytes and sha256(path) == record.sha256
    assert not list(tmp_path.glob("*.partial-*"))


# -- tables and arrays, read back by their own libraries ------------------------------------------


def test_csv_scalar_columns_equal_and_arrays_follow_the_rule(cat, tmp_path):
    manifest = cat.export("csv", tmp_path, progress=False)
    for run in cat.values():
        for name, stream in run.items():
            table = pd.read_csv(tmp_path / run.uid / f"{name}.csv")
            ds = stream(seq_num=True).read()
            np.testing.assert_array_equal(table["seq_num"], ds["seq_num"].values)
            np.testing.assert_array_equal(table["time"], ds["time"].values)
            for key in ds.data_vars:
                if ds[key].ndim == 1:
                    np.testing.assert_array_equal(table[key].to_numpy(), ds[key].values)
                else:
                    assert key not in table.columns
    skipped = sorted((r.uid, s["stream"], s["field"]) for r in manifest.runs.values()
                     for s in r.skipped)  # fmt: skip
    assert skipped == sorted([(cat[-1].uid, "primary", "img"), (cat[-2].uid, "primary", "img")])
    meta = json.loads((tmp_path / cat[-1].uid / "metadata.json").read_text())
    assert meta["start"]["uid"] == cat[-1].uid and meta["descriptors"]


def test_csv_arrays_as_json_cells_and_tsv(cat, tmp_path):
    run = cat[-1]  # direct_img: 2 frames in the events
    run.export("csv", tmp_path / "csv", arrays="json", progress=False)
    table = pd.read_csv(tmp_path / "csv" / run.uid / "primary.csv")
    frames = np.asarray([json.loads(cell) for cell in table["img"]])
    np.testing.assert_array_equal(frames, run.primary.read()["img"].values)
    cat[-5].export("tsv", tmp_path / "tsv", progress=False)
    tsv = pd.read_csv(tmp_path / "tsv" / cat[-5].uid / "primary.tsv", sep="\t")
    np.testing.assert_array_equal(tsv["det"], cat[-5].primary.read()["det"].values)
    with pytest.raises(ExportError, match="arrays='json'"):
        run.export("csv", tmp_path / "bad", arrays="inline")


def test_parquet_values_and_frames_equal(cat, tmp_path):
    cat.export("parquet", tmp_path, progress=False)
    for run in cat.values():
        for name, stream in run.items():
            table = pq.read_table(tmp_path / run.uid / f"{name}.parquet")
            ds = stream.read()
            for key in ds.data_vars:
                column = table.column(key)
                field = table.schema.field(key)
                values = column.to_numpy() if ds[key].ndim == 1 else np.stack(column.to_numpy())
                if field.metadata and b"shape" in field.metadata:
                    shape = json.loads(field.metadata[b"shape"])
                    values = values.reshape(len(table), *shape)
                np.testing.assert_array_equal(values, ds[key].values)
                data_key = json.loads(field.metadata[b"data_key"])
                assert data_key["source"] == stream.layout.data_keys[key]["source"]


def test_zarr_streams_open_with_plain_xarray(cat, tmp_path):
    import xarray as xr
    import zarr

    cat.export("zarr", tmp_path, progress=False)
    for run in cat.values():
        path = tmp_path / f"{run.uid}.zarr"
        assert zarr.open_group(str(path), mode="r").attrs["start"]["uid"] == run.uid
        for name, stream in run.items():
            got = xr.open_zarr(path, group=name, zarr_format=3, consolidated=False)
            want = stream.read()
            for key in want.data_vars:
                assert got[key].dims == want[key].dims
                np.testing.assert_array_equal(got[key].values, want[key].values)
                if "units" in want[key].attrs:
                    assert got[key].attrs["units"] == want[key].attrs["units"]


def test_small_blocks_stream_the_run_and_give_the_same_file(cat, tmp_path, monkeypatch):
    """Memory bounded by a block: with 1 KiB blocks a run is written in many blocks, and the
    values read back are the same as from one block."""
    import intake_broker.export.base as base

    calls = []
    real = base.blocks

    def counting(stream, keys, block_bytes=base.BLOCK_BYTES):
        for block in real(stream, keys, 1024):
            calls.append(block.sizes["time"])
            yield block

    for module in ("tables", "zarrfmt", "nexus"):
        monkeypatch.setattr(f"intake_broker.export.{module}.blocks", counting)
    run = cat[-2]  # 3 NPY_SEQ frames of 800 bytes: a block per frame
    run.export("nexus", tmp_path, progress=False)
    assert calls and max(calls) == 1
    with h5py.File(tmp_path / f"{run.uid}.nxs") as f:
        np.testing.assert_array_equal(
            f["/entry/streams/primary/img"][()], run.primary.read()["img"].values
        )


# -- NeXus: standard names, default plot, mapping, validation -------------------------------------


def test_nexus_standard_names_checked_by_nexusformat_and_h5py(cat, tmp_path):
    nx = pytest.importorskip("nexusformat.nexus")
    run = cat[-5]  # scan([det], motor)
    run.export("nexus", tmp_path, progress=False)
    path = tmp_path / f"{run.uid}.nxs"
    root = nx.nxload(str(path))
    assert root.plottable_data.nxpath == "/entry/data"
    plot = root.entry.data
    assert plot.nxsignal.nxname == "det" and plot.nxaxes[0].nxname == "motor"
    ds = run.primary.read()
    with h5py.File(path) as f:
        assert f["/entry"].attrs["NX_class"] == "NXentry"
        assert f["/entry/instrument"].attrs["NX_class"] == "NXinstrument"
        assert f["/entry/instrument/motor"].attrs["NX_class"] == "NXpositioner"
        assert f["/entry/instrument/det"].attrs["NX_class"] == "NXdetector"
        np.testing.assert_array_equal(f["/entry/instrument/motor/value"][()], ds["motor"].values)
        np.testing.assert_array_equal(
            f["/entry/instrument/motor/setpoint"][()], ds["motor_setpoint"].values
        )
        np.testing.assert_array_equal(f["/entry/instrument/det/data"][()], ds["det"].values)
        assert f["/entry/sample/name"][()].decode() == "Si"
        assert f["/entry/entry_identifier"][()].decode() == run.uid
        assert f["/entry/instrument/det/sigma"][()] == 1  # configuration
        assert f["/entry/data"].attrs["motor_indices"] == 0
    from nexusformat.nexus.validate import validate_file

    validate_file(str(path))  # nexusformat's validator walks the whole file without failing


def test_nexus_grid_scan_baseline_and_units(cat, tmp_path):
    run = cat[-4]
    run.export("nexus", tmp_path, progress=False)
    with h5py.File(tmp_path / f"{run.uid}.nxs") as f:
        assert f["/entry/data"].attrs["signal"] == "det4"
        assert list(f["/entry/data"].attrs["axes"]) == ["motor1"]
        assert f["/entry/data"].attrs["motor2_indices"] == 0
        np.testing.assert_array_equal(
            f["/entry/streams/baseline/motor1"][()], run.baseline.read()["motor1"].values
        )
        assert f["/entry/sample/name/t"][()] == 3  # a dict's items under the path
        assert f["/entry/streams/primary/time"].attrs["units"] == "s"


def test_a_beamline_mapping_places_names_and_checks_the_application(cat, tmp_path):
    mapping = tmp_path / "beamline.yml"
    mapping.write_text(
        "stream: primary\n"
        "devices:\n  - {match: '*', class: NXdetector, field: data}\n"
        "fields:\n  - {match: det, path: /entry/monitor/data, class: NXmonitor}\n"
        "start:\n  sample: /entry/sample/chemical_formula\n"
        "application:\n  definition: NXmonopd\n  required: [/entry/monitor/data]\n"
    )
    run = cat[-5]
    run.export("nexus", tmp_path / "ok", mapping=str(mapping), progress=False)
    with h5py.File(tmp_path / "ok" / f"{run.uid}.nxs") as f:
        assert f["/entry/monitor"].attrs["NX_class"] == "NXmonitor"
        np.testing.assert_array_equal(f["/entry/monitor/data"][()], run.primary.read()["det"])
        assert f["/entry/sample/chemical_formula"][()].decode() == "Si"
        assert f["/entry/definition"][()].decode() == "NXmonopd"
    strict = mapping.read_text().replace("[/entry/monitor/data]", "[/entry/sample/temperature]")
    mapping.write_text(strict)
    with pytest.raises(ExportError, match="/entry/sample/temperature"):
        run.export("nexus", tmp_path / "strict", mapping=str(mapping), progress=False)
    assert not list((tmp_path / "strict").glob("*.nxs*"))  # no half file
    mapping.write_text("devices:\n  - {match: det}\n")
    with pytest.raises(BadMapping, match=r"devices\[0\]"):
        run.export("nexus", tmp_path / "bad", mapping=str(mapping))
    mapping.write_text("fields:\n  - {match: det, path: ../../etc/passwd}\n")
    with pytest.raises(BadMapping, match="not a path"):
        run.export("nexus", tmp_path / "bad", mapping=str(mapping))


def test_a_plain_nexus_file_of_another_program_is_ingested(tmp_path):
    path = tmp_path / "other.nxs"
    x = np.linspace(0, 1, 7)
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "scan1"
        entry = f.create_group("scan1")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "plot"
        entry["title"] = "an energy scan"
        entry["start_time"] = "2024-05-01T10:00:00+00:00"
        data = entry.create_group("plot")
        data.attrs.update({"NX_class": "NXdata", "signal": "counts", "axes": "energy"})
        data["energy"] = x
        data["energy"].attrs["units"] = "keV"
        data["counts"] = x**2
    data_dir = tmp_path / "data"
    assert main(["--data", str(data_dir), "--no-progress", "ingest", str(path)]) == 0
    cat = intake_broker.default_catalog(str(data_dir))
    run = cat[-1]
    assert run.metadata["start"]["title"] == "an energy scan"
    ds = run.primary.read()
    np.testing.assert_array_equal(ds["energy"].values, x)
    np.testing.assert_array_equal(ds["counts"].values, x**2)
    assert ds["energy"].attrs["units"] == "keV"
    cat.store.close()


# -- the command ----------------------------------------------------------------------------------


def test_the_export_command_takes_a_run_or_a_query(cat, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["--data", str(data), "--no-progress", "demo"]) == 0
    capsys.readouterr()
    assert main(["--data", str(data), "export", "-1", "--format", "csv", "--to",
                 str(tmp_path / "one")]) == 0  # fmt: skip
    assert "exported 1 run " in capsys.readouterr().out
    code = main(["--data", str(data), "--no-progress", "export", 'plan_name == "scan"',
                 "--format", "parquet", "--to", str(tmp_path / "q"), "--field", "det",
                 "--stream", "primary"])  # fmt: skip
    assert code == 0
    found = intake_broker.default_catalog(str(data)).search({"plan_name": "scan"})
    written = json.loads((tmp_path / "q" / MANIFEST).read_text())
    assert set(written["runs"]) == set(found) and found
    uid = next(iter(found))
    assert pq.read_table(tmp_path / "q" / uid / "primary.parquet").column_names == [
        "seq_num", "time", "det"
    ]  # fmt: skip
    assert main(["--data", str(data), "export", "-1", "--format", "gif", "--to",
                 str(tmp_path / "x")]) == 1  # fmt: skip
    assert "unknown export format 'gif'" in capsys.readouterr().err


# -- bad input: destinations, formats, full disks, interruptions ----------------------------------


def test_unwritable_destination_and_bad_arguments(cat, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the destination"):
        cat[-1].export("csv", blocker / "sub")
    with pytest.raises(ExportError, match="takes no option"):
        cat[-1].export("csv", tmp_path / "o", compression="gzip")
    with pytest.raises(ExportError, match="every document of a run"):
        cat[-1].export("jsonl", tmp_path / "j", streams=["primary"])
    with pytest.raises(StreamNotFound, match="has none of the streams"):
        cat[-1].export("parquet", tmp_path / "p", streams=["nope"], progress=False)
    cat[-1].export("csv", tmp_path / "mixed", progress=False)
    with pytest.raises(ExportError, match="holds an export in 'csv'"):
        cat[-1].export("parquet", tmp_path / "mixed", progress=False)


@pytest.fixture
def tiny_disk(tmp_path):
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_leaves_no_half_file(cat, tiny_disk):
    with pytest.raises(ExportError, match="the destination is full") as err:
        cat.export("jsonl", tiny_disk, progress=False)  # ~40 kB into 16 kB
    assert isinstance(err.value, OSError)
    names = [p.name for p in tiny_disk.iterdir()]
    assert not [n for n in names if ".partial-" in n]
    listed = tiny_disk / MANIFEST
    runs = json.loads(listed.read_text())["runs"] if listed.exists() else {}
    assert len(runs) < len(cat)
    for run in runs.values():  # whatever is listed is whole
        for f in run["files"]:
            assert sha256(tiny_disk / f["path"]) == f["sha256"]


def _failing_memory_fs(ok: int):
    """An fsspec memory filesystem whose uploads fail after ``ok`` of them (a full remote)."""
    from fsspec.implementations.memory import MemoryFileSystem

    class Failing(MemoryFileSystem):
        protocol = ("failing",)
        puts = 0

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(str(path).removeprefix("failing://"))

        def put_file(self, lpath, rpath, *args, **kwargs):
            type(self).puts += 1
            if type(self).puts > ok:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().put_file(lpath, rpath, *args, **kwargs)

    Failing.store = {}
    Failing.pseudo_dirs = [""]
    return Failing


def test_an_interrupted_export_resumes_where_it_stopped(cat, tmp_path, monkeypatch):
    import fsspec

    failing = _failing_memory_fs(ok=3)  # run 1 + manifest, run 2, then the failure
    fsspec.register_implementation("failing", failing, clobber=True)
    with pytest.raises(ExportError, match="destination is full"):
        cat.export("jsonl", "failing://exports", progress=False)
    fs = failing()
    listed = json.loads(fs.cat("/exports/manifest.json"))
    assert len(listed["runs"]) == 1
    assert not [p for p in fs.find("/exports") if ".partial-" in p]
    written = []
    import intake_broker.export.documents as documents

    real = documents.DocumentsExporter.write_run

    def spy(self, run, *args, **kwargs):
        written.append(run.uid)
        return real(self, run, *args, **kwargs)

    monkeypatch.setattr(documents.DocumentsExporter, "write_run", spy)
    failing.puts = -100
    manifest = cat.export("jsonl", "failing://exports", progress=False)
    assert len(manifest.runs) == len(cat) and len(written) == len(cat) - 1
    assert set(listed["runs"]).isdisjoint(written)
    for record in manifest.files:
        assert len(fs.cat("/exports/" + record.path)) == record.bytes


def test_export_to_s3(cat, s3_server, tmp_path):
    fs = s3_server.filesystem()
    fs.mkdir("exports")
    options = s3_server.storage_options
    run = cat[-5]
    run.export("parquet", "s3://exports/beamtime", storage_options=options, progress=False)
    run.export("nexus", "s3://exports/nexus", storage_options=options, progress=False)
    with fs.open(f"exports/beamtime/{run.uid}/primary.parquet", "rb") as f:
        table = pq.read_table(f)
    np.testing.assert_array_equal(table.column("det").to_numpy(), run.primary.read()["det"])
    local = tmp_path / "copy.nxs"
    fs.get(f"exports/nexus/{run.uid}.nxs", str(local))
    with h5py.File(local) as f:
        np.testing.assert_array_equal(
            f["/entry/instrument/det/data"][()], run.primary.read()["det"]
        )
    assert not [p for p in fs.find("exports") if ".partial-" in p]
    manifest = json.loads(fs.cat("exports/nexus/manifest.json"))
    assert list(manifest["runs"]) == [run.uid]


def test_export_runs_of_a_search(cat, tmp_path):
    found = cat.search({"plan_name": "count"})
    manifest = found.export("zarr", tmp_path, progress=False)
    assert sorted(manifest.runs) == sorted(found) and len(found) == 3
    again = export_runs(found.values(), "zarr", tmp_path, progress=False)
    assert again.runs.keys() == manifest.runs.keys()
