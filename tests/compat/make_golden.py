"""Record what databroker 1.2.5 itself answers, as golden files for ``tests/compat``.

Three steps, each runnable alone::

    python tests/compat/make_golden.py --inputs   # the runs (bluesky + ophyd.sim + h5py, this venv)
    python tests/compat/make_golden.py --venv     # a venv with databroker==1.2.5 and its era's pins
    python tests/compat/make_golden.py --record   # (run by the step above inside that venv)
    python tests/compat/make_golden.py            # --venv then --record (inputs kept)

The inputs are documents a RunEngine emitted (``golden/runs/*.jsonl``, one ``[name, doc]`` per
line, suitcase-jsonl's layout) with their asset files (``golden/assets``: NPY_SEQ frames and an
AD_HDF5 file). Resources name the root ``/intake-broker-golden/assets``; both databroker and the
tests relocate it with ``root_map``. databroker reads the runs through its own JSONL catalog and
``Broker``; every answer is written under ``golden/``: ``v1.json`` (headers, lookups, searches,
errors), ``tables/*.parquet`` (``get_table`` results; filled image columns as ``.npy`` beside
them) and ``documents/*.jsonl`` (``get_documents`` in databroker's order, arrays tagged).

The recording runs with ``TZ=America/New_York`` (the zone naive ``since``/``until`` are read in);
the tests set the same zone.

databroker 1.2.5 needs ``intake<=0.6.4`` and the numpy/pandas of early 2022, so the venv is made
with an older Python (``--python``; default: a 3.9 -- the one the golden files were recorded
with -- else a 3.10, found under ``~/.pyenv/versions`` or on PATH).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
RUNS = os.path.join(GOLDEN, "runs")
ASSETS = os.path.join(GOLDEN, "assets")
ROOT = "/intake-broker-golden/assets"  # the asset root written in the resources
TZ = "America/New_York"
#: The runs, oldest first (scan_id 1..6).
LABELS = ["scan_baseline", "count_conf", "npy_images", "ad_hdf5", "grid", "count_meta"]
#: databroker 1.2.5 and the releases of its time it works with.
PINS = [
    "databroker==1.2.5",
    "intake==0.6.4",
    "numpy==1.22.4",
    "pandas==1.4.4",
    "xarray==0.20.2",
    "dask[array,bag]==2022.2.0",
    "event-model==1.17.2",
    "jsonschema<4",
    "tzlocal==2.1",
    "zarr==2.11.3",
    "pims==0.5",
    "tifffile==2021.11.2",
    "h5py==3.6.0",
    "area-detector-handlers==0.0.10",
    "msgpack<1.1",
    "msgpack-numpy==0.4.7.1",
    "suitcase-msgpack==0.3.0",
    "suitcase-mongo==0.3.0",
    "pymongo<4",
    "bluesky-live==0.0.8",
    "pyarrow==7.0.0",
    "ophyd==1.6.4",  # the NPY_SEQ handler (databroker.handlers entry point)
]
DEFAULT_VENV = os.path.join(
    os.path.expanduser("~"), ".cache", "intake-broker", "databroker-1.2.5-venv"
)


# -- step 1: the input runs ----------------------------------------------------------------------


def make_inputs() -> None:
    """Run six plans on a RunEngine over ophyd.sim devices; write documents and asset files."""
    import bluesky.plans as bp
    import h5py
    import numpy as np
    from bluesky import RunEngine
    from bluesky.preprocessors import SupplementalData
    from ophyd.sim import SynSignalWithRegistry, det, det4, det_with_conf, motor, motor1, motor2

    from intake_broker.testing.factories import ad_hdf5_run

    shutil.rmtree(RUNS, ignore_errors=True)
    shutil.rmtree(ASSETS, ignore_errors=True)
    os.makedirs(RUNS)
    os.makedirs(os.path.join(ASSETS, "npy"))
    rng = np.random.default_rng(17)
    img = SynSignalWithRegistry(
        func=lambda: rng.integers(0, 1000, size=(6, 8)).astype("float64"),
        name="img",
        save_path=os.path.join(ASSETS, "npy"),
        labels={"detectors"},
    )
    RE = RunEngine({}, call_returns_result=False)
    baseline = SupplementalData(baseline=[motor1, motor2])
    plans = {
        "scan_baseline": lambda: bp.scan([det], motor, -1, 1, 5),
        "count_conf": lambda: bp.count([det_with_conf], 3),
        "npy_images": lambda: bp.count([img, det], 3),
        "grid": lambda: bp.grid_scan([det4], motor1, -1, 1, 3, motor2, -1, 1, 2),
        "count_meta": lambda: bp.count([det], 2),
    }
    for scan_id, label in enumerate(LABELS, start=1):
        docs: list[tuple[str, dict]] = []
        if label == "ad_hdf5":
            docs, _ = ad_hdf5_run(_Path(ASSETS), filename="scan.h5", n=4, shape=(6, 8))
            docs[0][1]["scan_id"] = scan_id
            docs[0][1]["sample"] = "hdf5-sample"
        else:
            RE.md["scan_id"] = scan_id - 1  # the RunEngine increments it
            RE.preprocessors[:] = [baseline] if label == "scan_baseline" else []
            md = {"sample": f"sample-{label}"}
            if label == "count_meta":
                md.update(purpose="calibration", user="Dan", operator={"name": "Ada"})
            RE(plans[label](), lambda name, doc, docs=docs: docs.append((name, doc)), **md)
        for name, doc in docs:
            if name == "resource":  # relocatable: databroker and the tests root_map it
                if label != "ad_hdf5":
                    doc["resource_path"] = "npy/" + doc["resource_path"]
                doc["root"] = ROOT
        with open(os.path.join(RUNS, f"{scan_id}-{label}.jsonl"), "w") as f:
            for name, doc in docs:
                f.write(json.dumps([name, doc], default=_plain) + "\n")
        time.sleep(1.1)  # whole seconds apart: naive since/until strings can tell them apart
    with h5py.File(os.path.join(ASSETS, "scan.h5"), "r") as f:  # small, committed
        assert f["/entry/data/data"].shape == (4, 6, 8)


class _Path(str):
    """A str that ``/`` joins, for ``ad_hdf5_run(root)`` (which calls ``root / filename``)."""

    def __truediv__(self, other: str) -> str:
        return os.path.join(self, other)


def _plain(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# -- step 2: the venv ----------------------------------------------------------------------------


def find_python() -> str:
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python")))
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python")))
    for name in ("python3.9", "python3.10"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    if not candidates:
        sys.exit("no Python 3.9 or 3.10 found: pass --python /path/to/python3.9")
    return candidates[0]


def make_venv(venv: str, python: str) -> str:
    exe = os.path.join(venv, "bin", "python")
    if not os.path.exists(exe):
        subprocess.run([python, "-m", "venv", venv], check=True)
    subprocess.run([exe, "-m", "pip", "install", "-q", *PINS], check=True)
    return exe


# -- step 3: the recording (runs inside the databroker 1.2.5 venv) -------------------------------


class _Encoder(json.JSONEncoder):
    def default(self, o):
        import numpy as np

        if isinstance(o, np.ndarray):
            return {"__ndarray__": o.tolist(), "dtype": o.dtype.str, "shape": list(o.shape)}
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        if hasattr(o, "items"):
            return dict(o.items())
        if isinstance(o, tuple):
            return list(o)
        return super().default(o)


def _dump(value):
    """Plain JSON values (doct Documents become dicts, arrays tagged)."""
    return json.loads(json.dumps(value, cls=_Encoder))


def _error(call):
    if isinstance(call, Exception):
        return _error(lambda: (_ for _ in ()).throw(call))
    try:
        result = call()
        if hasattr(result, "__next__"):
            result = list(result)
    except Exception as err:  # noqa: BLE001 -- what databroker raised is what we record
        return {
            "raised": type(err).__name__,
            "mro": [c.__name__ for c in type(err).__mro__],
            "message": str(err),
        }
    import pandas

    if isinstance(result, pandas.DataFrame):
        return {"returned": "DataFrame", "shape": list(result.shape), "columns": list(result)}
    return {"returned": _dump(result)}


def _write_table(df, name: str) -> dict:
    import numpy as np

    out = os.path.join(GOLDEN, "tables")
    os.makedirs(out, exist_ok=True)
    arrays = []
    columns = list(df.columns)
    df = df.copy()
    for column in list(df.columns):
        if df[column].dtype == object and len(df) and isinstance(df[column].iloc[0], np.ndarray):
            np.save(os.path.join(out, f"{name}.{column}.npy"), np.stack(list(df[column])))
            arrays.append(column)
            df = df.drop(columns=column)
    df.to_parquet(os.path.join(out, f"{name}.parquet"), version="2.6")
    return {
        "file": f"{name}.parquet",
        "columns": columns,
        "arrays": arrays,
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
    }


def _write_documents(pairs, name: str) -> str:
    out = os.path.join(GOLDEN, "documents")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
        for doc_name, doc in pairs:
            f.write(json.dumps([doc_name, doc], cls=_Encoder) + "\n")
    return f"{name}.jsonl"


def catalog_yaml(path: str) -> str:
    """A YAML catalog file with the entry ``golden``: the golden runs (JSONL), assets
    relocated (the same file is read by databroker's driver and by ours)."""
    with open(path, "w") as f:
        f.write(
            "sources:\n  golden:\n    driver: bluesky-jsonl-catalog\n    args:\n"
            f"      paths: ['{RUNS}/*.jsonl']\n      root_map: {{'{ROOT}': '{ASSETS}'}}\n"
        )
    return path


def run_notebook(catalog: str, imports: dict | None = None) -> dict:
    """Run notebook_databroker.py (its import lines replaced by ``imports``) on ``catalog``."""
    with open(os.path.join(HERE, "notebook_databroker.py")) as f:
        source = f.read()
    for old, new in (imports or {}).items():
        assert old in source, old
        source = source.replace(old, new)
    os.environ["GOLDEN_CATALOG"] = catalog
    namespace: dict = {"__name__": "notebook"}
    exec(compile(source, "notebook_databroker.py", "exec"), namespace)  # noqa: S102
    return _dump(namespace["RESULTS"])


def record() -> None:
    """Ask databroker 1.2.5 everything the tests compare, and write the answers."""
    import warnings

    import databroker
    import numpy as np
    from databroker._drivers.jsonl import BlueskyJSONLCatalog
    from databroker.core import discover_handlers
    from databroker.v1 import Broker

    assert databroker.__version__ == "1.2.5", databroker.__version__
    assert os.environ.get("TZ") == TZ
    time.tzset()
    warnings.simplefilter("ignore")
    shutil.rmtree(os.path.join(GOLDEN, "tables"), ignore_errors=True)
    shutil.rmtree(os.path.join(GOLDEN, "documents"), ignore_errors=True)

    def catalog(paths):
        return BlueskyJSONLCatalog(
            paths, handler_registry=discover_handlers(), root_map={ROOT: ASSETS}
        )

    files = sorted(glob.glob(os.path.join(RUNS, "*.jsonl")))
    db = Broker(catalog(files))
    other = Broker(catalog(files[:1]))  # a catalog of the first run alone
    golden: dict = {"databroker": databroker.__version__, "tz": TZ, "runs": {}}
    by_label = {}
    for path in files:
        label = os.path.basename(path)[:-6].split("-", 1)[1]
        with open(path) as f:
            by_label[label] = json.loads(f.readline())[1]["uid"]
    golden["uids"] = by_label

    for label, uid in by_label.items():
        h = db[uid]
        entry: dict = {
            "uid": h.uid,
            "start": _dump(h.start),
            "stop": _dump(h.stop),
            "descriptor_uids": [d["uid"] for d in h.descriptors],
            "stream_names": list(h.stream_names),
            "fields": sorted(h.fields()),
            "fields_by_stream": {s: sorted(h.fields(s)) for s in h.stream_names},
            "devices": sorted(h.devices()),
            "config_data": {dev: _dump(h.config_data(dev)) for dev in sorted(h.devices())},
            "tables": {},
            "documents": {},
            "data": {},
            "xarray": {},
        }
        externals = sorted(
            k for d in h.descriptors for k, v in d["data_keys"].items() if v.get("external")
        )
        for stream in h.stream_names:
            variants = {
                "default": {},
                "no_localize": {"localize_times": False},
                "raw_times": {"convert_times": False, "localize_times": False},
            }
            if externals and stream == "primary":
                variants["fill"] = {"fill": True}
            for variant, kwargs in variants.items():
                df = h.table(stream_name=stream, **kwargs)
                entry["tables"][f"{stream}/{variant}"] = _write_table(
                    df, f"{label}.{stream}.{variant}"
                )
            try:
                ds = h.xarray(stream_name=stream)
            except Exception as err:  # noqa: BLE001 -- AD_HDF5 frames come as (1, y, x)
                entry["xarray"][stream] = _error(err)
                continue
            entry["xarray"][stream] = {
                "variables": sorted(ds.variables),
                "data_vars": sorted(ds.data_vars),
                "coords": sorted(ds.coords),
                "dims": {k: list(v.dims) for k, v in ds.variables.items()},
                "dataframe_columns": list(ds.to_dataframe().columns) if not externals else None,
            }
        field = sorted(h.fields("primary"))[0]
        if label == "scan_baseline":  # fields: a data key, a start key, a regex
            for i, fields in enumerate((["det"], ["det", "plan_name"], ["mot.*"], ["nosuch"])):
                try:
                    df = h.table(fields=fields)
                except Exception as err:  # noqa: BLE001 -- "mot.*" also matches start["motors"]
                    entry["tables"][f"primary/fields{i}"] = {"fields": fields, **_error(err)}
                    continue
                entry["tables"][f"primary/fields{i}"] = {
                    "fields": fields,
                    **_write_table(df, f"{label}.primary.fields{i}"),
                }
        if label == "count_conf":
            df = h.table(fields=["det_with_conf"])
            entry["tables"]["primary/fields_conf"] = {
                "fields": ["det_with_conf"],
                **_write_table(df, f"{label}.primary.fields_conf"),
            }
        for fill in (False, True) if externals else (False,):
            name = f"{label}.fill{int(fill)}"
            entry["documents"][f"all/fill{int(fill)}"] = _write_documents(
                h.documents(fill=fill), name
            )
            entry["documents"][f"events/fill{int(fill)}"] = _write_documents(
                (("event", e) for e in h.events(fill=fill)), name + ".events"
            )
        if label == "scan_baseline":
            entry["documents"]["baseline"] = _write_documents(
                h.documents(stream_name="baseline"), f"{label}.baseline"
            )
            entry["documents"]["fields"] = _write_documents(
                db.get_documents(h, fields=["det", "plan_name"]), f"{label}.fields"
            )
        for f_ in sorted(h.fields("primary")):
            entry["data"][f_] = _dump(list(h.data(f_, fill=True)))
        entry["data_nosuch"] = _error(lambda h=h: h.data("nosuch"))
        entry["first_field"] = field
        golden["runs"][label] = entry

    # lookups
    uids = list(by_label.values())
    golden["lookups"] = {
        "-1": db[-1].uid,
        "-3": db[-3].uid,
        "slice-3": [h.uid for h in db[-3:]],
        "slice-5:-2": [h.uid for h in db[-5:-2]],
        "scan_id3": db[3].uid,
        "prefix": db[uids[2][:8]].uid,
        "list": [h.uid for h in db[[uids[0], -1]]],
    }
    # searches
    starts = [db[u].start["time"] for u in uids]

    def naive(t):  # local wall-clock text, second resolution (what notebooks type)
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    searches = {
        "plan_name=scan": {"plan_name": "scan"},
        "plan_name=count": {"plan_name": "count"},
        "purpose": {"purpose": "calibration"},
        "nested": {"operator.name": "Ada"},
        "scan_id_gt": {"scan_id": {"$gt": 3}},
        "since_float": {"since": starts[2]},
        "until_float": {"until": starts[2]},
        "since_text": {"since": naive(starts[3])},
        "until_text": {"until": naive(starts[2])},
        "range_text": {"since": naive(starts[1]), "until": naive(starts[3])},
        "since_year": {"since": time.strftime("%Y", time.localtime(starts[0]))},
        "none": {"plan_name": "nosuch"},
    }
    golden["searches"] = {
        name: {"kwargs": kwargs, "uids": [h.uid for h in db(**dict(kwargs))]}
        for name, kwargs in searches.items()
    }
    golden["searches"]["data_key"] = {
        "kwargs": {"data_key": "img"},
        "uids": [h.uid for h in db(data_key="img")],
    }
    db.add_filter(plan_name="count")
    golden["filters"] = {
        "filter": {"plan_name": "count"},
        "with_sample": [h.uid for h in db(sample="sample-count_meta")],
        "all": [h.uid for h in db()],
    }
    db.clear_filters()
    golden["filters"]["cleared"] = [h.uid for h in db()]

    # several headers at once
    hs = [db[by_label["count_conf"]], db[by_label["count_meta"]]]
    golden["multi"] = {
        "uids": [h.uid for h in hs],
        "table": _write_table(db.get_table(hs, fields=["det", "det_with_conf"]), "multi"),
        "documents": _write_documents(db.get_documents(hs), "multi"),
        "events": _write_documents((("event", e) for e in db.get_events(hs)), "multi.events"),
        "restream": _write_documents(db.restream(hs[0]), "multi.restream"),
    }
    processed: list = []
    db.process(hs[1], lambda name, doc: processed.append((name, doc)))
    golden["multi"]["process"] = _write_documents(processed, "multi.process")

    # images
    for label, key in (("npy_images", "img"), ("ad_hdf5", "cam_image")):
        try:
            images = db.get_images(db[by_label[label]], key)
        except Exception as err:  # noqa: BLE001 -- AD_HDF5 frames come as (1, y, x)
            golden.setdefault("images", {})[label] = _error(err)
            continue
        frames = np.stack([np.asarray(frame) for frame in images])
        os.makedirs(os.path.join(GOLDEN, "arrays"), exist_ok=True)
        np.save(os.path.join(GOLDEN, "arrays", f"get_images.{label}.npy"), frames)
        golden.setdefault("images", {})[label] = {
            "len": len(images),
            "frame_shape": list(images.frame_shape),
            "pixel_type": str(images.pixel_type),
        }

    # bad input
    first = other[-1]
    golden["errors"] = {
        "missing_uid": _error(lambda: db["deadbeef" * 4]),
        "missing_prefix": _error(lambda: db["zzzz"]),
        "out_of_range": _error(lambda: db[-100]),
        "missing_scan_id": _error(lambda: db[9999]),
        "bad_slice": _error(lambda: db[2:]),
        "field_not_in_stream": _error(lambda: db[-1].table(fields=["nosuch"])),
        "stream_not_in_run": _error(lambda: db[-1].table(stream_name="nosuch")),
        "config_unknown_device": _error(lambda: db[-1].config_data("nosuch")),
        "header_from_other_catalog": _error(lambda: db.get_table(first)),
        "header_item": _error(lambda: db[-1]["nosuch"]),
        "fill_events": _error(lambda: db.fill_events([])),
        "handler_registry": _error(lambda: db.get_table(db[-1], handler_registry={})),
    }
    # other's header is found in db too (same run), so also one db lacks:
    lone = Broker(catalog(files[-1:]))
    golden["errors"]["header_missing_from_catalog"] = _error(lambda: other.get_table(lone[-1]))
    golden["notebook"] = run_notebook(catalog_yaml(os.path.join(GOLDEN, "..", ".notebook.yml")))
    os.remove(os.path.join(GOLDEN, "..", ".notebook.yml"))
    with open(os.path.join(GOLDEN, "v1.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True, cls=_Encoder)
        f.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", action="store_true", help="(re)make the input runs")
    parser.add_argument("--venv", action="store_true", help="only make the databroker venv")
    parser.add_argument("--record", action="store_true", help="record (inside the venv)")
    parser.add_argument("--venv-path", default=DEFAULT_VENV)
    parser.add_argument("--python", default=None, help="Python 3.9/3.10 for the venv")
    args = parser.parse_args()
    if args.inputs:
        make_inputs()
        return
    if args.record:
        record()
        return
    exe = make_venv(args.venv_path, args.python or find_python())
    if args.venv:
        return
    if not os.path.isdir(RUNS):
        make_inputs()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TZ"] = TZ
    subprocess.run([exe, os.path.abspath(__file__), "--record"], check=True, env=env)


if __name__ == "__main__":
    main()
