"""One simulation output as a Bluesky run: its start document (from the global attributes,
through a :class:`MetadataMapping`), its streams and descriptors (from groups and variables) and
its stop document. Pure functions of an :class:`~.outputs.OutputInfo`: the same output gives the
same documents, with the same uids, in every process.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intake_broker.errors import InvalidDocument
from intake_broker.store.validation import check_json, safe_uid

from .outputs import (
    GroupInfo,
    OutputInfo,
    SimulationOutputWarning,
    VariableInfo,
    as_epoch,
    cf_time,
    dumps,
)

#: uuid5 namespace of the uids of simulation runs, descriptors and stops.
NAMESPACE = uuid.UUID("6b0e1f9c-3d2a-5e8b-9a41-7c2f0d5e8b13")

#: Which global attributes become which start keys (first one present wins). A user's mapping
#: is laid over this one; ``None`` removes a key.
DEFAULT_MAPPING: dict[str, tuple[str, ...]] = {
    "uid": ("uid", "uuid"),
    "time": ("time", "start_time", "date_created", "creation_date"),
    "plan_name": ("plan_name", "simulation", "model"),
    "scan_id": ("scan_id", "run_number"),
    "sample": ("sample", "sample_name"),
    "stop.time": ("stop_time", "end_time", "date_finished"),
    "stop.exit_status": ("exit_status",),
}

#: Global attributes holding a JSON object merged into the start document (what
#: :func:`~intake_broker_simulation.export.write_run` writes).
DEFAULT_JSON_ATTRIBUTES = ("bluesky_start",)

#: A global attribute naming each stream's descriptor uid (JSON), as ``write_run`` writes it.
DESCRIPTOR_UIDS = "bluesky_descriptor_uids"

_EXIT_STATUSES = ("success", "abort", "fail")


@dataclass
class MetadataMapping:
    """How global attributes become a run's start (and stop) document.

    Parameters
    ----------
    mapping : dict
        ``{start key: attribute name or list of names}``, laid over :data:`DEFAULT_MAPPING`
        (``None`` removes a default). Keys may be dotted (``"sample.name": "specimen"``);
        ``stop.time`` and ``stop.exit_status`` fill the stop document. ``time`` and
        ``stop.time`` take numbers (epoch seconds) or ISO-8601 texts, ``scan_id`` integers.
    json_attributes : list of str
        Attributes holding a JSON object merged into the start document first.
    required : list of str
        Start keys an output must have; one lacking any is left out of the catalog with a
        warning naming the file and the attributes looked for.
    finished_attribute : str, optional
        An attribute whose absence means the simulation has not finished: its run has no stop
        document. Without it every output is a finished run.

    Attributes not used by the mapping are kept in ``start["attributes"]``.
    """

    mapping: Mapping[str, str | Sequence[str] | None] | None = None
    json_attributes: Sequence[str] = DEFAULT_JSON_ATTRIBUTES
    required: Sequence[str] = ()
    finished_attribute: str | None = None
    rules: dict[str, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        rules = dict(DEFAULT_MAPPING)
        for key, names in (self.mapping or {}).items():
            if not isinstance(key, str) or not key or len(key) > 512:
                raise InvalidDocument(f"mapping: {key!r} is not a start key (a dotted text)")
            if names is None:
                rules.pop(key, None)
                continue
            names = (names,) if isinstance(names, str) else tuple(names)
            if not names or not all(isinstance(n, str) and n for n in names):
                raise InvalidDocument(
                    f"mapping: start key {key!r} maps to {names!r}; give an attribute name, a "
                    "list of them, or null to remove it"
                )
            rules[key] = names
        self.rules = rules
        self.json_attributes = tuple(self.json_attributes)
        self.required = tuple(self.required)
        unknown = [k for k in self.required if k not in self.rules]
        if unknown:
            raise InvalidDocument(
                f"required: {unknown} are not keys of the mapping ({sorted(self.rules)}); "
                "map them to attributes first"
            )

    def arguments(self) -> dict[str, Any]:
        return {
            "mapping": dict(self.mapping or {}),
            "json_attributes": list(self.json_attributes),
            "required": list(self.required),
            "finished_attribute": self.finished_attribute,
        }


def _set(doc: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        nested = doc.get(part)
        if not isinstance(nested, dict):
            nested = doc[part] = {}
        doc = nested
    doc[parts[-1]] = value


@dataclass
class StreamInfo:
    """One stream of a simulation run: variables of one group sharing their first dimension."""

    name: str
    group: str
    dim: str
    rows: int
    variables: list[VariableInfo]
    #: The dimension's CF time coordinate, whose values are the events' times.
    time_variable: VariableInfo | None
    configuration: list[VariableInfo]
    chunk_rows: int
    descriptor: dict = field(default_factory=dict)


@dataclass
class SimulationRun:
    """A simulation output as a run: documents and where each stream's values are."""

    info: OutputInfo
    start: dict
    stop: dict | None
    streams: dict[str, StreamInfo]

    @property
    def uid(self) -> str:
        return self.start["uid"]

    def descriptors(self) -> list[dict]:
        return [s.descriptor for s in self.streams.values()]


#: Bytes of one dask chunk when the file does not say (contiguous variables).
CHUNK_BYTES = 64 * 2**20


def _data_key(group: str, var: VariableInfo) -> dict[str, Any]:
    dtype = np.dtype(var.dtype)
    if len(var.shape) > 1:
        kind = "array"
    else:
        kind = {"f": "number", "i": "integer", "u": "integer", "b": "boolean"}.get(
            dtype.kind, "string"
        )
    source = var.attrs.get("source")
    key: dict[str, Any] = {
        "dtype": kind,
        "shape": list(var.shape[1:]),
        "dims": list(var.dims[1:]),
        "source": source
        if isinstance(source, str)
        else f"simulation:{group.rstrip('/')}/{var.name}",
    }
    if dtype.kind in "biuf":
        key["dtype_numpy"] = dtype.str
    for name in ("units", "long_name", "object_name", "precision"):
        value = var.attrs.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            key[name] = value
    return key


def _stream_names(groups: list[GroupInfo], primary: str) -> list[tuple[str, GroupInfo, str]]:
    """``(stream name, group, dimension)`` for every set of variables sharing their first
    dimension: the root group's ``primary`` dimension (else its largest set) is ``primary``,
    its other sets are named after their dimension; a subgroup's largest set is named after
    the group (``a/b`` -> ``a_b``), its others ``<group>_<dimension>``."""
    out: list[tuple[str, GroupInfo, str]] = []
    taken: set[str] = set()
    for group in groups:
        counts: dict[str, int] = {}
        for var in group.variables:
            if var.shape:
                counts[var.dims[0]] = counts.get(var.dims[0], 0) + 1
        if not counts:
            continue
        dims = sorted(counts, key=lambda d: (d != primary, -counts[d], list(counts).index(d)))
        label = group.path.strip("/").replace("/", "_")
        for i, dim in enumerate(dims):
            if not label:
                name = "primary" if i == 0 else dim
            else:
                name = label if i == 0 else f"{label}_{dim}"
            base, n = name, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            out.append((name, group, dim))
    return out


def _warn(info: OutputInfo, problem: str) -> None:
    warnings.warn(f"{info.url}: {problem}", SimulationOutputWarning, stacklevel=3)


def derived_uid(info: OutputInfo) -> str:
    """The uid of an output without a uid attribute: from its name, size, attributes and
    structure, so the same file has the same uid wherever and whenever it is read."""
    structure = [
        [g.path, [[v.name, v.dims, v.shape, v.dtype] for v in g.variables]] for g in info.groups
    ]
    digest = hashlib.sha256(
        dumps([info.name, info.size, info.attrs, structure]).encode()
    ).hexdigest()
    return str(uuid.uuid5(NAMESPACE, digest))


def build_run(
    info: OutputInfo, mapping: MetadataMapping, primary: str = "time"
) -> SimulationRun | None:
    """The run of one output, or None (with a warning naming the file) when it lacks a
    required attribute. Attributes the mapping cannot use are warned about and kept."""
    attrs = dict(info.attrs)
    start: dict[str, Any] = {}
    used: set[str] = set()
    for name in mapping.json_attributes:
        if name not in attrs:
            continue
        used.add(name)
        try:
            merged = json.loads(attrs[name]) if isinstance(attrs[name], str) else None
        except ValueError as err:
            _warn(info, f"attribute {name!r} is not JSON ({err}); it is kept as text")
            used.discard(name)
            continue
        if not isinstance(merged, dict):
            _warn(info, f"attribute {name!r} is not a JSON object; it is kept as it is")
            used.discard(name)
            continue
        start.update(merged)
    stop_fields: dict[str, Any] = {}
    for key, names in mapping.rules.items():
        found = next((n for n in names if n in attrs), None)
        if found is None:
            if key in mapping.required:
                _warn(
                    info,
                    f"has none of the attributes {list(names)} that give {key!r}, which the "
                    "catalog requires; the output is left out",
                )
                return None
            continue
        value = attrs[found]
        used.add(found)
        if key in ("time", "stop.time"):
            value = as_epoch(value)
            if value is None:
                _warn(
                    info,
                    f"attribute {found!r} ({attrs[found]!r}) is not a time (epoch seconds or "
                    f"ISO-8601); {key!r} is taken from elsewhere",
                )
                used.discard(found)
                continue
        elif key == "scan_id":
            number = value if isinstance(value, int | float) else None
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                number = int(value)
            if number is None or isinstance(number, bool) or float(number) != int(number):
                _warn(info, f"attribute {found!r} ({value!r}) is not an integer scan_id")
                used.discard(found)
                continue
            value = int(number)
        elif key == "uid":
            if not safe_uid(value):
                _warn(info, f"attribute {found!r} ({value!r}) cannot be a uid; one is derived")
                used.discard(found)
                continue
        if key.startswith("stop."):
            stop_fields[key[5:]] = value
        else:
            _set(start, key, value)
    if not safe_uid(start.get("uid")):
        start["uid"] = derived_uid(info)
    when = as_epoch(start.get("time"))
    start["time"] = when if when is not None else (info.mtime or 0.0)
    rest = {k: v for k, v in attrs.items() if k not in used and k != DESCRIPTOR_UIDS}
    if rest:
        start["attributes"] = rest
    start["simulation_output"] = {"file": info.name, "format": info.format}
    descriptor_uids = _descriptor_uids(info, rest)
    try:
        check_json("the start document", "attributes", start)
    except InvalidDocument as err:
        _warn(info, f"its metadata cannot be a start document ({err}); the output is left out")
        return None
    uid = start["uid"]

    streams: dict[str, StreamInfo] = {}
    layout = _stream_names(info.groups, primary)
    main: dict[str, str] = {}
    for name, group, _ in layout:
        main.setdefault(group.path, name)
    for name, group, dim in layout:
        variables = [v for v in group.variables if v.shape and v.dims[0] == dim]
        rows = variables[0].shape[0]
        mismatched = [v.name for v in variables if v.shape[0] != rows]
        if mismatched:
            _warn(info, f"variables {mismatched} of dimension {dim!r} differ in length")
            variables = [v for v in variables if v.shape[0] == rows]
        time_var = next(
            (
                v
                for v in variables
                if v.name == dim
                and len(v.shape) == 1
                and np.dtype(v.dtype).kind in "iuf"
                and cf_time(v.attrs) is not None
            ),
            None,
        )
        data_vars = [v for v in variables if v is not time_var and v.name not in ("seq_num",)]
        config = [v for v in group.variables if not v.shape and v.value is not None]
        if name != main[group.path]:  # a group's scalars configure its main stream
            config = []
        chunk_rows = min((v.chunk_rows for v in variables if v.chunk_rows), default=None)
        if chunk_rows is None:
            row_bytes = max(
                (np.dtype(v.dtype).itemsize * math.prod(v.shape[1:]) for v in variables),
                default=8,
            )
            chunk_rows = max(1, CHUNK_BYTES // max(row_bytes, 1))
        stream = StreamInfo(name, group.path, dim, rows, data_vars, time_var, config, chunk_rows)
        stream.descriptor = _descriptor(uid, start["time"], stream, descriptor_uids.get(name))
        streams[name] = stream

    stop = None
    finished = mapping.finished_attribute
    if finished is None or finished in attrs:
        stop_time = stop_fields.get("time")
        status = stop_fields.get("exit_status", "success")
        if status not in _EXIT_STATUSES:
            _warn(info, f"exit status {status!r} is not one of {_EXIT_STATUSES}; kept as 'fail'")
            status = "fail"
        stop = {
            "uid": str(uuid.uuid5(NAMESPACE, f"{uid}/stop")),
            "run_start": uid,
            "time": float(stop_time) if stop_time is not None else start["time"],
            "exit_status": status,
            "reason": "",
            "num_events": {s.name: s.rows for s in streams.values()},
        }
    return SimulationRun(info, start, stop, streams)


def _descriptor_uids(info: OutputInfo, attrs: Mapping[str, Any]) -> dict[str, str]:
    """The descriptor uids an output names (``write_run`` keeps a run's own), by stream."""
    text = info.attrs.get(DESCRIPTOR_UIDS)
    if text is None:
        return {}
    try:
        uids = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        uids = None
    if not isinstance(uids, dict) or not all(safe_uid(u) for u in uids.values()):
        _warn(info, f"attribute {DESCRIPTOR_UIDS!r} is not a JSON object of uids; ignored")
        return {}
    return {str(k): v for k, v in uids.items()}


def _descriptor(run_uid: str, time: float, stream: StreamInfo, uid: str | None = None) -> dict:
    configuration: dict[str, Any] = {}
    for var in stream.configuration:
        obj = var.attrs.get("object_name")
        obj = obj if isinstance(obj, str) and obj else "parameters"
        entry = configuration.setdefault(obj, {"data": {}, "timestamps": {}, "data_keys": {}})
        entry["data"][var.name] = var.value
        entry["timestamps"][var.name] = time
        key = _data_key(stream.group, var)
        key.pop("dims", None)
        entry["data_keys"][var.name] = key
    object_keys: dict[str, list[str]] = {}
    data_keys = {}
    for var in stream.variables:
        data_keys[var.name] = _data_key(stream.group, var)
        obj = var.attrs.get("object_name")
        if isinstance(obj, str) and obj:
            object_keys.setdefault(obj, []).append(var.name)
    return {
        "uid": uid or str(uuid.uuid5(NAMESPACE, f"{run_uid}/{stream.name}")),
        "run_start": run_uid,
        "name": stream.name,
        "time": time,
        "data_keys": data_keys,
        "configuration": configuration,
        "object_keys": object_keys,
        "hints": {},
    }
