"""NeXus/HDF5 (h5py): a file per run with standard names, and the documents to import it back.

Layout of ``<uid>.nxs``::

    /                         NXroot   @default=entry
    /entry                    NXentry  @default=data: title, start_time, end_time, and the start
                                       document's keys the mapping places (entry_identifier, ...)
      instrument/<device>     NXpositioner / NXdetector / ... (the mapping): the mapped stream's
                              keys (links, no copy), units, and the device's configuration
      sample, user, monitor   NXsample, NXuser, NXmonitor where the mapping puts something
      data                    NXdata @signal @axes @<axis>_indices: what NeXus readers plot
      streams/<stream>        NXcollection: every stream's arrays under their Bluesky names
                              (frames in external files are read and written in)
      bluesky                 NXcollection: the run's documents: ``documents`` (JSON ``[name,
                              doc]`` of every document but events) and ``events/<n>`` (one
                              group per descriptor: uid, seq_num, time, data, timestamps,
                              filled as columns; data links to streams/ where they are equal)

Where names go is the "NeXus dictionary" (:func:`load_mapping`): a YAML file; the default
(``nexus_default.yml`` beside this module) places common ophyd devices. :func:`read_documents`
gives a file's documents back for ``intake-broker ingest``: exactly those exported, or, for a
NeXus file another program wrote, a best-effort run built from its default NXdata.
"""

from __future__ import annotations

import fnmatch
import json
import time as _time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from intake_broker.errors import BadMapping, ExportError, InvalidDocument
from intake_broker.export.base import (
    Destination,
    Exporter,
    RunExport,
    blocks,
    safe_name,
    select_fields,
    select_streams,
    to_json,
)
from intake_broker.views.datakeys import asset_kind

DEFAULT_MAPPING = Path(__file__).with_name("nexus_default.yml")
#: The ``@format`` of /entry/bluesky in the files we write (what ingest looks for).
DOCUMENTS_FORMAT = "intake-broker documents 1"
#: Longest YAML mapping file read, in bytes.
MAX_MAPPING_BYTES = 1_000_000
_KNOWN_CLASSES = {
    "/entry": "NXentry",
    "/entry/instrument": "NXinstrument",
    "/entry/sample": "NXsample",
    "/entry/user": "NXuser",
    "/entry/monitor": "NXmonitor",
}
_EVENT_ROWS = 100_000


# -- the mapping ----------------------------------------------------------------------------------


def load_mapping(source: str | Path | dict | None = None) -> dict[str, Any]:
    """The NeXus dictionary: the default, a YAML file, or a dict of the same keys (checked).

    Keys: ``stream`` (whose keys are placed), ``devices`` (``match``, ``class``, ``field``),
    ``fields`` (``match``, ``path``, ``class``), ``start`` (start key -> path), ``application``
    (``definition`` and ``required`` paths). See ``nexus_default.yml``.
    """
    import yaml

    if source is None:
        source = DEFAULT_MAPPING
    if isinstance(source, dict):
        raw, where = source, "the mapping"
    else:
        path = Path(source)
        if not path.is_file():
            raise BadMapping(f"NeXus mapping {str(source)!r}: no such file")
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise BadMapping(f"NeXus mapping {str(source)!r} is over {MAX_MAPPING_BYTES} bytes")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise BadMapping(f"NeXus mapping {str(source)!r} is not YAML: {err}") from None
        where = str(source)
    if not isinstance(raw, dict):
        raise BadMapping(f"{where}: expected a mapping with keys stream, devices, fields, start")
    unknown = sorted(set(raw) - {"stream", "devices", "fields", "start", "application"})
    if unknown:
        raise BadMapping(
            f"{where}: unknown keys {unknown}; a NeXus mapping has stream, devices, fields, "
            "start and application"
        )
    out: dict[str, Any] = {
        "stream": str(raw.get("stream") or "primary"),
        "devices": list(raw.get("devices") or []),
        "fields": list(raw.get("fields") or []),
        "start": dict(raw.get("start") or {}),
        "application": raw.get("application"),
    }
    for i, rule in enumerate(out["devices"]):
        if not isinstance(rule, dict) or not {"match", "class"} <= set(rule):
            raise BadMapping(
                f"{where}: devices[{i}] = {rule!r}; each is {{match: PATTERN, class: NXclass, "
                "field: NAME}}"
            )
        _check_class(rule["class"], f"{where}: devices[{i}]")
    for i, rule in enumerate(out["fields"]):
        if not isinstance(rule, dict) or not {"match", "path"} <= set(rule):
            raise BadMapping(
                f"{where}: fields[{i}] = {rule!r}; each is {{match: PATTERN, path: "
                "/entry/GROUP/NAME, class: NXclass}}"
            )
        _check_path(rule["path"], f"{where}: fields[{i}]")
        _check_class(rule.get("class", "NXcollection"), f"{where}: fields[{i}]")
    for key, path in out["start"].items():
        _check_path(path, f"{where}: start[{key!r}]")
    app = out["application"]
    if app is not None and (not isinstance(app, dict) or "definition" not in app):
        raise BadMapping(
            f"{where}: application = {app!r}; expected {{definition: NXname, required: [paths]}}"
        )
    return out


def _check_class(name: Any, where: str) -> None:
    if not (isinstance(name, str) and name.startswith("NX") and name[2:].isidentifier()):
        raise BadMapping(f"{where}: {name!r} is not a NeXus base class name (NXdetector, ...)")


def _check_path(path: Any, where: str) -> None:
    parts = str(path).split("/")
    if (
        not isinstance(path, str)
        or not path.startswith("/entry/")
        or len(parts) < 3
        or not all(p.isidentifier() for p in parts[1:])
    ):
        raise BadMapping(f"{where}: {path!r} is not a path /entry/GROUP/.../NAME of identifiers")


def _first(rules: list[dict], name: str) -> dict | None:
    return next((r for r in rules if fnmatch.fnmatchcase(name, str(r["match"]))), None)


def place(key: str, data_key: dict, mapping: dict) -> tuple[str, str]:
    """``(path, class of its group)`` of a data key of the mapped stream."""
    rule = _first(mapping["fields"], key)
    if rule is not None:
        return rule["path"], rule.get("class", "NXcollection")
    device = str(data_key.get("object_name") or key)
    rule = _first(mapping["devices"], device) or {"class": "NXcollection", "field": "value"}
    if key == device:
        name = str(rule.get("field") or "value")
    elif key.startswith(device + "_"):
        name = key[len(device) + 1 :]
    else:
        name = key
    return f"/entry/instrument/{safe_name(device)}/{safe_name(name)}", rule["class"]


# -- writing --------------------------------------------------------------------------------------


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def _group(h5: Any, path: str, nx_class: str | None = None) -> Any:
    """The group at ``path``, created with NX_class attributes (known ones by name)."""
    node = h5["/"]
    sofar = ""
    for part in path.strip("/").split("/"):
        sofar += "/" + part
        if part not in node:
            child = node.create_group(part)
            child.attrs["NX_class"] = _KNOWN_CLASSES.get(sofar, "NXcollection")
        node = node[part]
    if nx_class is not None and path not in _KNOWN_CLASSES:
        node.attrs["NX_class"] = nx_class
    return node


def _text_dtype() -> Any:
    import h5py

    return h5py.string_dtype()


def _h5_values(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "OU":
        return np.asarray(
            ["" if v is None else str(v) for v in values.reshape(-1)], dtype=object
        ).reshape(values.shape)
    return values


def _append(group: Any, name: str, values: np.ndarray, attrs: dict | None = None) -> Any:
    values = _h5_values(np.asarray(values))
    if name not in group:
        dtype = _text_dtype() if values.dtype.kind == "O" else values.dtype
        rows = max(1, min(len(values), 1 << 16))
        dataset = group.create_dataset(
            name,
            shape=values.shape,
            maxshape=(None, *values.shape[1:]),
            dtype=dtype,
            chunks=(rows, *values.shape[1:]) if values.size else None,
        )
        dataset[...] = values
        for k, v in (attrs or {}).items():
            dataset.attrs[k] = v
        return dataset
    dataset = group[name]
    n = dataset.shape[0]
    dataset.resize(n + len(values), axis=0)
    dataset[n:] = values
    return dataset


class NexusExporter(Exporter):
    """A NeXus/HDF5 file per run: standard names by a mapping, the default NXdata, the
    documents embedded (``intake-broker ingest`` reads them back exactly)."""

    name = "nexus"
    carries_documents = True
    defaults: ClassVar[dict[str, Any]] = {"mapping": None, "compression": None, "documents": True}

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.mapping = load_mapping(self.options["mapping"])
        if self.options["compression"] not in (None, "gzip", "lzf"):
            raise ExportError("compression: None, 'gzip' or 'lzf' (HDF5 filters h5py has)")

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        try:
            import h5py
        except ImportError:
            raise ExportError(
                "the nexus format needs h5py: pip install 'intake-broker[export]'"
            ) from None
        record = self.new_record(run)
        whole = streams is None and fields is None
        rel = f"{safe_name(run.uid)}.nxs"
        with dest.writing(rel) as (path, files):
            with h5py.File(path, "w") as h5:
                self._write(h5, run, streams, fields, whole and self.options["documents"])
                h5.attrs["file_name"] = rel
            if self.mapping["application"]:
                _check_application(path, self.mapping["application"])
        record.files.extend(files)
        return record

    def _write(self, h5: Any, run: Any, streams: Any, fields: Any, documents: bool) -> None:
        start, stop = run.metadata["start"], run.metadata["stop"] or {}
        h5.attrs.update(
            {
                "NX_class": "NXroot",
                "default": "entry",
                "file_time": _iso(_time.time()),
                "creator": "intake-broker",
                "HDF5_Version": __import__("h5py").version.hdf5_version,
            }
        )
        entry = _group(h5, "/entry")
        entry["title"] = f"{start.get('plan_name', 'run')} {start.get('scan_id', '')}".strip()
        entry["start_time"] = _iso(start.get("time"))
        if stop.get("time") is not None:
            entry["end_time"] = _iso(stop["time"])
        app = self.mapping["application"]
        if app:
            entry["definition"] = str(app["definition"])
        for key, target in self.mapping["start"].items():
            if key in start:
                self._start_value(h5, target, start[key])
        names = select_streams(run, streams)
        for name in names:
            self._stream(h5, run, name, fields)
        self._default_plot(h5, run, names)
        if documents:
            self._documents(h5, run)

    @staticmethod
    def _start_value(h5: Any, target: str, value: Any) -> None:
        parent, _, name = target.rpartition("/")
        group = _group(h5, parent)
        if isinstance(value, dict):
            sub = group.require_group(name)
            sub.attrs.setdefault("NX_class", "NXcollection")
            for k, v in value.items():
                if str(k).isidentifier() and k not in sub:
                    sub[k] = v if isinstance(v, (int, float, str, bool)) else to_json(v)
            return
        if name not in group:
            group[name] = value if isinstance(value, (int, float, str, bool)) else to_json(value)

    def _stream(self, h5: Any, run: Any, name: str, fields: Any) -> None:
        stream = run[name]
        keys = select_fields(stream, fields)
        group = _group(h5, f"/entry/streams/{safe_name(name)}")
        group.attrs["stream_name"] = name
        dks = stream.layout.data_keys
        for block in blocks(stream, keys, self.block_bytes):
            _append(group, "time", block["time"].values, {"units": "s"})
            _append(group, "seq_num", block["seq_num"].values)
            for key in keys:
                attrs = {"units": dks[key]["units"]} if dks[key].get("units") else {}
                attrs["bluesky_data_key"] = key
                _append(group, safe_name(key), block[key].values, attrs)
        if "time" not in group:  # no events
            empty = stream(include=keys, seq_num=True).to_dask()
            _append(group, "time", empty["time"].values, {"units": "s"})
            _append(group, "seq_num", empty["seq_num"].values)
            for key in keys:
                _append(group, safe_name(key), empty[key].values)
        if name != self.mapping["stream"]:
            return
        for key in keys:  # standard names: links to the arrays just written
            path, nx_class = place(key, dks[key], self.mapping)
            parent, _, field = path.rpartition("/")
            target = _group(h5, parent, nx_class)
            if field not in target:
                target[field] = group[safe_name(key)]
        for descriptor in stream.layout.descriptors[:1]:  # configuration, as first recorded
            for device, conf in (descriptor.get("configuration") or {}).items():
                for ckey, value in (conf.get("data") or {}).items():
                    dk = (conf.get("data_keys") or {}).get(ckey, {})
                    if asset_kind(dk):
                        continue
                    path, nx_class = place(ckey, {**dk, "object_name": device}, self.mapping)
                    parent, _, field = path.rpartition("/")
                    target = _group(h5, parent, None if parent in h5 else nx_class)
                    if field not in target:
                        target[field] = (
                            value if not isinstance(value, (dict, list)) else (to_json(value))
                        )
                        if dk.get("units"):
                            target[field].attrs["units"] = dk["units"]

    def _default_plot(self, h5: Any, run: Any, names: list[str]) -> None:
        name = (
            self.mapping["stream"]
            if self.mapping["stream"] in names
            else (names[0] if names else None)
        )
        if name is None or f"/entry/streams/{safe_name(name)}" not in h5:
            return
        stream_group = h5[f"/entry/streams/{safe_name(name)}"]
        start = run.metadata["start"]
        dks = run[name].layout.data_keys
        present = [k for k in dks if safe_name(k) in stream_group]
        axes: list[str] = []
        for fields, _stream in (start.get("hints") or {}).get("dimensions") or []:
            axes += [f for f in fields if f in present and f != "time"]
        hinted: list[str] = []
        for descriptor in run[name].layout.descriptors:
            for hint in (descriptor.get("hints") or {}).values():
                hinted += [f for f in hint.get("fields", []) if f in present]
        numeric = [k for k in present if stream_group[safe_name(k)].dtype.kind in "iufb"]
        candidates = [k for k in hinted if k in numeric and k not in axes] + [
            k for k in numeric if k not in axes
        ]
        if not candidates:
            return
        signal = candidates[0]
        data = _group(h5, "/entry/data", "NXdata")
        data[safe_name(signal)] = stream_group[safe_name(signal)]
        ndim = stream_group[safe_name(signal)].ndim
        if not axes:
            axes = ["seq_num"]
        for axis in axes:
            data[safe_name(axis)] = stream_group[safe_name(axis)]
            data.attrs[f"{safe_name(axis)}_indices"] = 0
        data.attrs["signal"] = safe_name(signal)
        data.attrs["axes"] = [safe_name(axes[0])] + ["."] * (ndim - 1)
        h5["/entry"].attrs["default"] = "data"

    def _documents(self, h5: Any, run: Any) -> None:
        store = run.store
        group = _group(h5, "/entry/bluesky")
        group.attrs["format"] = DOCUMENTS_FORMAT
        lines = [to_json([n, d]) for n, d in run.documents() if n not in ("event", "event_page")]
        group.create_dataset("documents", data=np.asarray(lines, dtype=object), dtype=_text_dtype())
        _group(h5, "/entry/bluesky/events")
        descriptors = run.descriptors
        by_stream: dict[str, list[dict]] = {}
        for d in descriptors:
            by_stream.setdefault(d.get("name", "primary"), []).append(d)
        for i, descriptor in enumerate(descriptors):
            name = descriptor.get("name", "primary")
            out = _group(h5, f"/entry/bluesky/events/{i}")
            out.attrs["descriptor"] = descriptor["uid"]
            linked = f"/entry/streams/{safe_name(name)}"
            single = len(by_stream[name]) == 1 and linked in h5
            data = out.create_group("data")
            stamps = out.create_group("timestamps")
            filled = out.create_group("filled")
            json_keys: set[str] = set()
            for chunk in sorted(store.event_chunks(descriptor["uid"]), key=lambda c: c.seq_start):
                for lo in range(chunk.seq_start, chunk.seq_stop, _EVENT_ROWS):
                    cols = store.read_events(
                        descriptor["uid"],
                        seq_range=(lo, min(lo + _EVENT_ROWS, chunk.seq_stop)),
                        uids=True,
                    )
                    if not len(cols):
                        continue
                    _append(out, "uid", _uids(cols.uid))
                    _append(out, "seq_num", np.asarray(cols.seq_num))
                    _append(out, "time", np.asarray(cols.time))
                    for key, values in cols.data.items():
                        values = np.asarray(values)
                        dk = descriptor["data_keys"].get(key, {})
                        link_ok = (
                            single
                            and not asset_kind(dk)
                            and values.dtype.kind not in "OUS"
                            and safe_name(key) in h5[linked]
                        )
                        if link_ok and key not in data:
                            data[key] = h5[linked][safe_name(key)]
                            data[key].attrs["bluesky_linked"] = True
                            continue
                        if key in data and data[key].attrs.get("bluesky_linked"):
                            continue
                        if values.dtype.kind in "OUS" or key in json_keys:
                            json_keys.add(key)
                            values = np.asarray([to_json(v) for v in values], dtype=object)
                        _append(data, key, values)
                        if key in json_keys:
                            data[key].attrs["json"] = True
                    for key, values in cols.timestamps.items():
                        _append(stamps, key, np.asarray(values, dtype=float))
                    for key, values in cols.filled.items():
                        if not asset_kind(descriptor["data_keys"].get(key, {})):
                            continue  # stores keep a column for every key; events have external
                        _append(filled, key, np.asarray([to_json(v) for v in values], dtype=object))


def _uids(values: Any) -> np.ndarray:
    """Event uids as fixed-width ASCII (fast to write and read) when they all are ASCII."""
    array = np.asarray(values, dtype=object)
    try:
        return np.asarray(array, dtype="S")
    except UnicodeEncodeError:
        return array


def _check_application(path: Path, application: dict) -> None:
    import h5py

    required = [str(p) for p in application.get("required") or []]
    with h5py.File(path, "r") as h5:
        missing = [p for p in required if p not in h5]
    if missing:
        raise ExportError(
            f"the mapping names the application definition {application['definition']}, which "
            f"requires {', '.join(missing)}; the run has nothing the mapping places there: map "
            "data keys or start keys to those paths"
        )


# -- reading back ---------------------------------------------------------------------------------


def read_documents(path: str | Path) -> Iterator[tuple[str, dict]]:
    """The documents of a NeXus file: those an export embedded (exactly), else a run built
    from the file's default NXdata (best effort: one ``primary`` stream of its signal and axes,
    start from NXentry's title and times)."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InvalidDocument(f"{path}: not an HDF5 file ({err})") from None
    with h5:
        group = h5.get("/entry/bluesky")
        if group is not None and group.attrs.get("format") == DOCUMENTS_FORMAT:
            yield from _embedded(group, str(path))
        else:
            yield from _plain_nexus(h5, str(path))


def _text(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _embedded(group: Any, where: str) -> Iterator[tuple[str, dict]]:
    docs = [json.loads(line) for line in _text(group["documents"][()])]
    stop = [d for d in docs if d[0] == "stop"]
    for name, doc in docs:
        if name != "stop":
            yield name, doc
    for i in sorted(group["events"], key=int):
        events = group["events"][i]
        descriptor = events.attrs["descriptor"]
        if "uid" not in events:
            continue
        total = events["uid"].shape[0]
        for lo in range(0, total, _EVENT_ROWS):
            hi = min(lo + _EVENT_ROWS, total)
            page: dict[str, Any] = {
                "descriptor": descriptor,
                "uid": _text(events["uid"][lo:hi]),
                "seq_num": events["seq_num"][lo:hi].tolist(),
                "time": events["time"][lo:hi].tolist(),
                "data": {},
                "timestamps": {},
                "filled": {},
            }
            for key, dataset in events["data"].items():
                values = dataset[lo:hi]
                if dataset.attrs.get("json"):
                    page["data"][key] = [json.loads(v) for v in _text(values)]
                else:
                    page["data"][key] = values.tolist()
            for key, dataset in events["timestamps"].items():
                page["timestamps"][key] = dataset[lo:hi].tolist()
            for key, dataset in events["filled"].items():
                page["filled"][key] = [json.loads(v) for v in _text(dataset[lo:hi])]
            yield "event_page", page
    yield from ((name, doc) for name, doc in stop)


def _plain_nexus(h5: Any, where: str) -> Iterator[tuple[str, dict]]:
    import event_model

    entry_name = h5.attrs.get("default")
    entry_name = entry_name.decode() if isinstance(entry_name, bytes) else entry_name
    entries = [k for k in h5 if _nx_class(h5[k]) == "NXentry"]
    if entry_name not in h5:
        if not entries:
            raise InvalidDocument(f"{where}: no NXentry group; not a NeXus file")
        entry_name = entries[0]
    entry = h5[entry_name]
    data_name = entry.attrs.get("default")
    data_name = data_name.decode() if isinstance(data_name, bytes) else data_name
    if data_name not in entry:
        found = [k for k in entry if _nx_class(entry[k]) == "NXdata"]
        if not found:
            raise InvalidDocument(f"{where}: {entry_name} has no NXdata group to read as a run")
        data_name = found[0]
    data = entry[data_name]
    metadata: dict[str, Any] = {"nexus_file": Path(where).name, "plan_name": "nexus_import"}
    for key in ("title", "entry_identifier", "experiment_identifier"):
        if key in entry and entry[key].shape == ():
            value = entry[key][()]
            metadata[key] = value.decode() if isinstance(value, bytes) else value
    sample = entry.get("sample/name")
    if sample is not None and sample.shape == ():
        value = sample[()]
        metadata["sample"] = value.decode() if isinstance(value, bytes) else value
    start_time = _time.time()
    if "start_time" in entry:
        raw = entry["start_time"][()]
        try:
            start_time = datetime.fromisoformat(
                raw.decode() if isinstance(raw, bytes) else str(raw)
            ).timestamp()
        except ValueError:
            pass
    bundle = event_model.compose_run(metadata=metadata, time=start_time)
    yield "start", dict(bundle.start_doc)
    arrays = {k: v for k, v in data.items() if hasattr(v, "shape") and v.shape}
    if not arrays:
        raise InvalidDocument(f"{where}: {data.name} holds no arrays")
    rows = max(v.shape[0] for v in arrays.values())
    arrays = {k: v for k, v in arrays.items() if v.shape[0] == rows and v.dtype.kind in "iufb"}
    data_keys = {
        k: {
            "source": f"nexus:{v.name}",
            "dtype": "number" if len(v.shape) == 1 else "array",
            "shape": list(v.shape[1:]),
            "dtype_numpy": v.dtype.str,
            **({"units": _attr_text(v.attrs["units"])} if "units" in v.attrs else {}),
        }
        for k, v in arrays.items()
    }
    desc = bundle.compose_descriptor(name="primary", data_keys=data_keys)
    yield "descriptor", dict(desc.descriptor_doc)
    for lo in range(0, rows, _EVENT_ROWS):
        hi = min(lo + _EVENT_ROWS, rows)
        values = {k: v[lo:hi].tolist() for k, v in arrays.items()}
        page = desc.compose_event_page(
            data=values,
            timestamps={k: [start_time] * (hi - lo) for k in arrays},
            seq_num=list(range(lo + 1, hi + 1)),
            time=[start_time] * (hi - lo),
        )
        yield "event_page", dict(page)
    yield "stop", dict(bundle.compose_stop(exit_status="success"))


def _nx_class(node: Any) -> str:
    return _attr_text(node.attrs.get("NX_class", ""))


def _attr_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
