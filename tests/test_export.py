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


# -- TIFF: image fields read back with tifffile ---------------------------------------------------


def test_tiff_frames_equal_and_metadata_in_the_description(cat, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    runs = [cat[-2], cat[-1]]  # NPY_SEQ frames (resource + datum), frames in the events
    for run in runs:
        run.export("tiff", tmp_path, progress=False)
        path = tmp_path / run.uid / "primary" / "img.tif"
        want = run.primary(seq_num=True).read()
        np.testing.assert_array_equal(tifffile.imread(path), want["img"].values)
        with tifffile.TiffFile(path) as tif:
            meta = tif.shaped_metadata[0]
        assert meta["run_uid"] == run.uid and meta["field"] == "img"
        assert meta["start"]["uid"] == run.uid
        assert meta["data_key"]["shape"] == list(want["img"].shape[1:])
        np.testing.assert_array_equal(meta["frames"]["seq_num"], want["seq_num"].values)
        np.testing.assert_array_equal(meta["frames"]["time"], want["time"].values)
    np.testing.assert_array_equal(meta["frames"]["time"], runs[-1].primary.read()["time"].values)
    with_det = runs[0]  # count([img, det]): det's value at each frame is in the description
    with tifffile.TiffFile(tmp_path / with_det.uid / "primary" / "img.tif") as tif:
        det_values = tif.shaped_metadata[0]["frames"]["det"]
    np.testing.assert_array_equal(det_values, with_det.primary.read()["det"].values)


def test_tiff_one_file_per_frame(cat, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    run = cat[-2]
    manifest = run.export("tiff", tmp_path, per_frame=True, compression="zlib", progress=False)
    folder = tmp_path / run.uid / "primary" / "img"
    ds = run.primary(seq_num=True).read()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{int(s):06d}.tif" for s in ds["seq_num"].values]
    for i, name in enumerate(names):
        np.testing.assert_array_equal(tifffile.imread(folder / name), ds["img"].values[i])
        with tifffile.TiffFile(folder / name) as tif:
            assert tif.shaped_metadata[0]["frames"]["seq_num"] == [int(ds["seq_num"][i])]
    for record in manifest.files:
        assert sha256(tmp_path / record.path) == record.sha256


def test_tiff_of_a_run_without_images_names_its_fields(cat, tmp_path):
    pytest.importorskip("tifffile")
    with pytest.raises(ExportError, match=r"no image field.*det \(scalar\).*csv, parquet, zarr"):
        cat[-5].export("tiff", tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.tif*"))
    with pytest.raises(ExportError, match="compresses with one of"):
        cat[-1].export("tiff", tmp_path, compression="jpeg")
    manifest = cat[-2].export("tiff", tmp_path / "some", fields=["img", "det"], progress=False)
    assert manifest.runs[cat[-2].uid].skipped == []  # det is in the description, not skipped


def test_tiff_of_a_stream_without_events_writes_no_invalid_file(tmp_path):
    pytest.importorskip("tifffile")
    from intake_broker.testing import factories

    catalog = intake_broker.BrokerCatalog(intake_broker.MemoryStore())
    for name, doc in factories.image_run(n=3):
        if name != "event":  # the descriptor says there are frames; no event came
            catalog.insert(name, doc)
    run = catalog[-1]
    for per_frame in (False, True):
        manifest = run.export("tiff", tmp_path / str(per_frame), per_frame=per_frame,
                              progress=False)  # fmt: skip
        assert manifest.runs[run.uid].skipped == [
            {"stream": "primary", "field": "image", "reason": "the stream has no events"}
        ]
        assert [p.name for p in (tmp_path / str(per_frame) / run.uid).iterdir()] == [
            "metadata.json"
        ]


def test_tiff_lists_a_spectrum_it_cannot_hold(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    bundle = event_model.compose_run(metadata={"plan_name": "count", "scan_id": 1})
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "frame": {"dtype": "array", "dtype_numpy": "<i4", "shape": [3, 4], "source": "a"},
            "spectrum": {"dtype": "array", "dtype_numpy": "<f8", "shape": [6], "source": "b"},
            "temperature": {"dtype": "number", "shape": [], "source": "c", "units": "K"},
        },
    )
    catalog = intake_broker.BrokerCatalog(intake_broker.MemoryStore())
    catalog.insert("start", bundle.start_doc)
    catalog.insert("descriptor", desc.descriptor_doc)
    for i in range(4):
        data = {"frame": np.full((3, 4), i, "i4"), "spectrum": np.arange(6.0) * i,
                "temperature": 290.0 + i}  # fmt: skip
        catalog.insert("event", desc.compose_event(data=data, timestamps=dict.fromkeys(data, 1.0)))
    catalog.insert("stop", bundle.compose_stop())
    run = catalog[-1]
    manifest = run.export("tiff", tmp_path, progress=False)
    (skip,) = manifest.runs[run.uid].skipped
    assert skip["field"] == "spectrum" and "not an image" in skip["reason"]
    path = tmp_path / run.uid / "primary" / "frame.tif"
    np.testing.assert_array_equal(tifffile.imread(path), run.primary.read()["frame"].values)
    with tifffile.TiffFile(path) as tif:
        meta = tif.shaped_metadata[0]
    assert meta["frames"]["temperature"] == [290.0, 291.0, 292.0, 293.0]
    assert "spectrum" not in meta["frames"]


def test_tiff_through_the_command(cat, tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    data = tmp_path / "data"
    run = cat[-1]
    catalog = intake_broker.default_catalog(str(data))
    for name, doc in run.documents():
        catalog.insert(name, doc)
    catalog.store.close()
    out = tmp_path / "out"
    assert main(["--data", str(data), "--no-progress", "export", run.uid[:8], "--format", "tiff",
                 "--to", str(out)]) == 0  # fmt: skip
    assert "exported 1 run" in capsys.readouterr().out
    got = tifffile.imread(out / run.uid / "primary" / "img.tif")
    np.testing.assert_array_equal(got, run.primary.read()["img"].values)


# -- a publication package: RO-Crate, DataCite, checksums ----------------------------------------


def _crate(path):
    crate = json.loads((path / "ro-crate-metadata.json").read_text())
    return crate, {e["@id"]: e for e in crate["@graph"]}


def test_package_crate_lists_every_file_with_its_checksum_and_the_licence(cat, tmp_path):
    out = tmp_path / "pkg"
    found = cat.search({"plan_name": "count"})
    manifest = found.export(
        "package", out, title="Frames of three counts", licence="CC-BY-4.0",
        creators=[{"name": "Curie, Marie", "orcid": "0000-0002-1825-0097",
                   "affiliation": "Sorbonne"}, "Doe, Jane"],
        related_identifiers=[{"identifier": "https://doi.org/10.1234/paper.5",
                              "relation": "IsSupplementTo"}],
        data="parquet", progress=False,
    )  # fmt: skip
    crate, graph = _crate(out)
    assert crate["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    assert graph["ro-crate-metadata.json"]["about"] == {"@id": "./"}
    root = graph["./"]
    assert root["name"] == "Frames of three counts"
    assert root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert graph["https://spdx.org/licenses/CC-BY-4.0"]["identifier"] == "CC-BY-4.0"
    assert graph["https://orcid.org/0000-0002-1825-0097"]["name"] == "Curie, Marie"
    parts = {p["@id"] for p in root["hasPart"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert parts == on_disk - {"ro-crate-metadata.json"}
    for part in parts:  # every file, its sha256 and size as in the file itself
        entity = graph[part]
        assert entity["@type"] == "File"
        assert entity["sha256"] == sha256(out / part), part
        assert int(entity["contentSize"]) == (out / part).stat().st_size
    assert {f.path for f in manifest.files} == parts - {"datacite.json", "manifest.json"}
    for uid in found:
        assert f"documents/{uid}.jsonl" in parts and f"data/{uid}/primary.parquet" in parts
    datacite = json.loads((out / "datacite.json").read_text())
    assert datacite["titles"] == [{"title": "Frames of three counts"}]
    assert datacite["rightsList"][0]["rightsIdentifier"] == "cc-by-4.0"
    assert datacite["creators"][0]["nameIdentifiers"][0]["nameIdentifier"].endswith("0097")
    assert datacite["relatedIdentifiers"] == [{"relatedIdentifier": "10.1234/paper.5",
        "relatedIdentifierType": "DOI", "relationType": "IsSupplementTo"}]  # fmt: skip
    first = min(cat[u].metadata["start"]["time"] for u in found)
    collected = next(d["date"] for d in datacite["dates"] if d["dateType"] == "Collected")
    assert collected.startswith(
        __import__("datetime")
        .datetime.fromtimestamp(first, __import__("datetime").timezone.utc)
        .isoformat(timespec="seconds")
    )


def test_package_documents_ingest_back_and_zip_holds_the_crate(cat, tmp_path):
    import zipfile

    out = tmp_path / "pkg"
    run = cat[-4]  # the grid scan with a baseline; sample from its start document
    run.export("package", out, title="Grid", license="CC0-1.0", zip=True, progress=False)
    _, graph = _crate(out)
    assert "Au" in graph["./"]["keywords"]
    with zipfile.ZipFile(out / "package.zip") as archive:
        names = set(archive.namelist())
        assert "ro-crate-metadata.json" in names and f"data/{run.uid}.nxs" in names
        inner = json.loads(archive.read("ro-crate-metadata.json"))
    assert inner == json.loads((out / "ro-crate-metadata.json").read_text())
    digest, name = (out / "package.zip.sha256").read_text().split()
    assert name == "package.zip" and digest == sha256(out / "package.zip")
    data = tmp_path / "data"
    assert main(["--data", str(data), "--no-progress", "ingest", str(out / "documents")]) == 0
    again = intake_broker.default_catalog(str(data))
    assert flat(again[run.uid].documents()) == flat(run.documents())
    again.store.close()


def test_package_read_back_by_the_rocrate_library(cat, tmp_path):
    rocrate = pytest.importorskip("rocrate.rocrate")
    out = tmp_path / "pkg"
    cat[-5].export("package", out, title="A scan", licence="CC-BY-4.0", data="csv",
                   progress=False)  # fmt: skip
    crate = rocrate.ROCrate(out)
    assert crate.name == "A scan"
    assert crate.license.id == "https://spdx.org/licenses/CC-BY-4.0"
    ids = {e.id for e in crate.data_entities}
    assert f"data/{cat[-5].uid}/primary.csv" in ids and "manifest.json" in ids


def test_package_through_the_command(cat, tmp_path, capsys):
    data = tmp_path / "data"
    catalog = intake_broker.default_catalog(str(data))
    run = cat[-5]
    for name, doc in run.documents():
        catalog.insert(name, doc)
    catalog.store.close()
    out = tmp_path / "pkg"
    base = ["--data", str(data), "--no-progress", "export", run.uid[:8], "--format", "package",
            "--to", str(out)]  # fmt: skip
    assert main([*base, "--option", "licence=CC-BY-4.0"]) == 1
    assert "needs a title" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())
    code = main([*base, "--option", "title=Si scan", "--option", "licence=CC-BY-4.0",
                 "--option", 'creators=["Curie, Marie"]', "--option", "data=parquet"])  # fmt: skip
    assert code == 0
    _, graph = _crate(out)
    assert graph["./"]["name"] == "Si scan" and graph["#creator-1"]["name"] == "Curie, Marie"
    assert f"data/{run.uid}/primary.parquet" in {p["@id"] for p in graph["./"]["hasPart"]}


def test_package_refuses_missing_title_licence_and_bad_metadata(cat, tmp_path):
    run = cat[-5]
    with pytest.raises(ExportError, match="needs a title"):
        run.export("package", tmp_path, licence="CC-BY-4.0")
    with pytest.raises(ExportError, match="needs a licence"):
        run.export("package", tmp_path, title="x")
    with pytest.raises(ExportError, match="SPDX identifier"):
        run.export("package", tmp_path, title="x", licence="all rights; reserved")
    with pytest.raises(ExportError, match="ORCID looks like"):
        run.export("package", tmp_path, title="x", licence="MIT",
                   creators=[{"name": "A", "orcid": "12"}])  # fmt: skip
    with pytest.raises(ExportError, match="not a DataCite relationType"):
        run.export("package", tmp_path, title="x", licence="MIT",
                   related_identifiers=[{"identifier": "10.1/x", "relation": "Likes"}])  # fmt: skip
    with pytest.raises(ExportError, match="at most 500"):
        run.export("package", tmp_path, title="x" * 501, licence="MIT")
    with pytest.raises(ExportError, match="data='package'"):
        run.export("package", tmp_path, title="x", licence="MIT", data="package")
    assert not list(tmp_path.iterdir())  # nothing written


# -- access: a user exports only the runs they can see --------------------------------------------


def test_new_formats_export_only_visible_runs(tmp_path):
    pytest.importorskip("tifffile")
    from ophyd.sim import direct_img

    from intake_broker.access import GuardedStore, Principal, ProposalPolicy
    from intake_broker.errors import RunNotFound

    store = intake_broker.MemoryStore()
    RE = RunEngine({}, call_returns_result=False)
    everyone = intake_broker.BrokerCatalog(store)
    RE.subscribe(everyone.insert)
    RE(count([direct_img], 1), proposal_id="p-1")
    RE(count([direct_img], 1), proposal_id="p-2")
    ada = intake_broker.BrokerCatalog(GuardedStore(store, ProposalPolicy(), Principal("ada",
                                      proposals=("p-1",))))  # fmt: skip
    by_proposal = {everyone[u].metadata["start"]["proposal_id"]: u for u in everyone}
    mine, theirs = by_proposal["p-1"], by_proposal["p-2"]
    for fmt, options in (("tiff", {}), ("package", {"title": "t", "licence": "MIT"})):
        manifest = ada.export(fmt, tmp_path / fmt, progress=False, **options)
        assert list(manifest.runs) == [mine]
        assert theirs not in json.dumps(json.loads((tmp_path / fmt / MANIFEST).read_text()))
        with pytest.raises(RunNotFound):
            ada[theirs].export(fmt, tmp_path / f"{fmt}-2", **options)
    _, graph = _crate(tmp_path / "package")
    assert not [k for k in graph if theirs in k]


# -- live export: RE.subscribe(exporter) ----------------------------------------------------------


def test_live_export_equals_a_post_hoc_export(tmp_path, monkeypatch):
    from ophyd.sim import det, img, motor

    from intake_broker.export.live import LiveExporter

    (tmp_path / "frames").mkdir()
    monkeypatch.setattr(img, "save_path", str(tmp_path / "frames"))
    catalog = intake_broker.BrokerCatalog(intake_broker.MemoryStore())
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(catalog.insert)
    live = {fmt: LiveExporter(fmt, tmp_path / f"live-{fmt}") for fmt in ("jsonl", "csv", "nexus")}
    for exporter in live.values():
        RE.subscribe(exporter)
    RE(scan([det], motor, -1, 1, 5))
    for exporter in live.values():  # written at the run's stop, before the next run starts
        assert list(exporter.manifest.runs) == [catalog[-1].uid]
    RE(count([img, det], 3))  # frames in NPY_SEQ files
    assert len(catalog) == 2
    for fmt, exporter in live.items():
        assert exporter.pending() == []
        post = catalog.export(fmt, tmp_path / f"post-{fmt}", progress=False)
        assert sorted(exporter.manifest.runs) == sorted(post.runs)
        for uid, record in post.runs.items():
            mine = exporter.manifest.runs[uid]
            assert [f.path for f in mine.files] == [f.path for f in record.files]
            for f in record.files:
                if fmt != "nexus":  # byte for byte the same file
                    assert f.sha256 == next(g.sha256 for g in mine.files if g.path == f.path)
                else:
                    _assert_same_hdf5(tmp_path / f"live-{fmt}" / f.path, tmp_path / f"post-{fmt}"
                                      / f.path)  # fmt: skip
    data = tmp_path / "data"
    assert main(["--data", str(data), "--no-progress", "ingest", str(tmp_path / "live-jsonl")]) == 0
    again = intake_broker.default_catalog(str(data))
    for uid in catalog:
        assert flat(again[uid].documents()) == flat(catalog[uid].documents())
    again.store.close()


def _assert_same_hdf5(a, b):
    """Every dataset and attribute equal, but the file's own write time."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert names_a == names_b
        for name in names_a:
            x, y = fa[name], fb[name]
            assert dict(x.attrs).keys() == dict(y.attrs).keys()
            if isinstance(x, h5py.Dataset):
                np.testing.assert_array_equal(x[()], y[()])
        assert {k for k in fa.attrs if fa.attrs[k] != fb.attrs[k]} <= {"file_time"}


def test_live_export_checks_its_arguments_and_keeps_a_failed_run(tmp_path, monkeypatch):
    from ophyd.sim import det

    import intake_broker.export as export
    from intake_broker.export.live import LiveExporter

    with pytest.raises(ExportError, match="unknown export format"):
        LiveExporter("gif", tmp_path)
    with pytest.raises(ExportError, match="takes no option"):
        LiveExporter("csv", tmp_path, compression="gzip")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the destination"):
        LiveExporter("csv", blocker / "sub")
    live = LiveExporter("csv", tmp_path / "out")
    real = export.export_runs

    def full(*args, **kwargs):
        raise ExportError("the destination is full")

    monkeypatch.setattr(export, "export_runs", full)
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(live)
    with pytest.raises(ExportError, match="destination is full"):
        RE(count([det], 2))
    assert len(live.pending()) == 1
    monkeypatch.setattr(export, "export_runs", real)
    manifest = live.retry()
    assert list(manifest.runs) == live_uids(tmp_path / "out") and live.pending() == []


def live_uids(path):
    return list(json.loads((path / MANIFEST).read_text())["runs"])


def test_package_to_s3_with_a_zip(cat, s3_server, tmp_path):
    import zipfile

    fs = s3_server.filesystem()
    fs.mkdir("packages")
    run = cat[-5]
    run.export("package", "s3://packages/scan", storage_options=s3_server.storage_options,
               title="A scan", licence="CC0-1.0", data="csv", zip=True, progress=False)  # fmt: skip
    crate = json.loads(fs.cat("packages/scan/ro-crate-metadata.json"))
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["./"]["temporalCoverage"]  # dates read back from the documents on S3
    for part in graph["./"]["hasPart"]:
        body = fs.cat(f"packages/scan/{part['@id']}")
        assert __import__("hashlib").sha256(body).hexdigest() == graph[part["@id"]]["sha256"]
    local = tmp_path / "package.zip"
    fs.get("packages/scan/package.zip", str(local))
    with zipfile.ZipFile(local) as archive:
        assert f"data/{run.uid}/primary.csv" in archive.namelist()
    assert not [p for p in fs.find("packages") if ".partial-" in p]


def test_live_tiff_of_an_ophyd_async_detector(tmp_path):
    """stream_resource / stream_datum routed to their run; frames of shape (1, 240, 320) per
    event written as a TIFF of shape (events, 1, 240, 320)."""
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("ophyd_async")
    from ophyd_async.core import StaticPathProvider, UUIDFilenameProvider, init_devices
    from ophyd_async.sim import SimBlobDetector

    from intake_broker.export.live import LiveExporter

    RE = RunEngine()
    with init_devices():
        blob = SimBlobDetector(StaticPathProvider(UUIDFilenameProvider(), tmp_path), name="blob")
    catalog = intake_broker.BrokerCatalog(intake_broker.MemoryStore())
    live = LiveExporter("tiff", tmp_path / "live", streams=["primary"])
    RE.subscribe(catalog.insert)
    RE.subscribe(live)
    RE(count([blob], 3))  # the HDF5 file is closed at unstage, after the stop document
    first = catalog[-1]
    assert live.pending() == [first.uid] and live.manifest is None  # waits for its file
    RE(count([blob], 2))
    run = catalog[-1]
    assert list(live.manifest.runs) == [first.uid]  # written when the next run started
    assert live.pending() == [run.uid]
    live.flush()  # after RE(...) returned: the detector is unstaged, its file closed
    assert live.pending() == [] and list(live.manifest.runs) == [first.uid, run.uid]
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "live" / first.uid / "primary" / "blob.tif"),
        first.primary.read()["blob"].values,
    )
    frames = tifffile.imread(tmp_path / "live" / run.uid / "primary" / "blob.tif")
    want = run.primary.read()["blob"].values
    assert frames.shape == want.shape == (2, 1, 240, 320)
    np.testing.assert_array_equal(frames, want)
