"""Simulation outputs on any fsspec filesystem: finding them, telling their format, and reading
their structure (global attributes, groups, variables) without reading their data.

What is read of an output when a catalog lists it is :class:`OutputInfo`: JSON-safe, small, and
cached per file version (path plus size and modification time or ETag), so a folder is scanned
once per process (and once at all with a store's ``cache`` file).

Formats:

``netcdf4`` / ``hdf5``
    HDF5 files (NetCDF-4 or plain HDF5), read through h5netcdf (``*.nc``, ``*.nc4``, ``*.h5``,
    ``*.hdf5``, ``*.he5``; told apart from NetCDF-3 by the file's signature).
``netcdf3``
    Classic NetCDF files, read through xarray's scipy backend.
``zarr``
    Zarr stores (a folder ``*.zarr``, version 2 or 3), read through zarr.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from intake_broker.errors import CorruptFile

#: File names taken as simulation outputs when a folder is given.
FILE_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5", ".he5")
ZARR_SUFFIX = ".zarr"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NETCDF3_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05")

# Limits: what one output may hold for a catalog to take it (beyond them it is refused or the
# attribute is left out, with a warning naming the file).
MAX_ATTRIBUTES = 1_000  # attributes of one group or variable
MAX_ATTRIBUTE_CHARS = 1_000_000  # one attribute's text (JSON attributes included)
MAX_ATTRIBUTE_ITEMS = 10_000  # elements of one array attribute
MAX_VARIABLES = 10_000  # variables of one output, all groups together
MAX_GROUPS = 1_000  # groups of one output
MAX_SCALARS = 1_000  # 0-d variables read as configuration, per group
MAX_NDIM = 32

#: Attributes the netCDF libraries keep for themselves, never metadata.
_HIDDEN_ATTRIBUTES = frozenset(
    {
        "_NCProperties",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_nc3_strict",
        "DIMENSION_LIST",
        "REFERENCE_LIST",
        "CLASS",
        "NAME",
        "_ARRAY_DIMENSIONS",
    }
)


class SimulationOutputWarning(UserWarning):
    """An output (or part of one) was left out of a catalog; the message names the file."""


@dataclass
class VariableInfo:
    """One variable of an output, as read from its metadata."""

    name: str
    dims: list[str]
    shape: list[int]
    #: The numpy dtype xarray gives when it opens the variable (after masking and scaling).
    dtype: str
    attrs: dict[str, Any] = field(default_factory=dict)
    #: Rows (along the first dimension) per stored chunk; None when stored contiguously.
    chunk_rows: int | None = None
    #: The value of a 0-d variable (what becomes configuration), when it is a number or text.
    value: Any = None


@dataclass
class GroupInfo:
    """One group (``/`` the root) and its variables."""

    path: str
    variables: list[VariableInfo] = field(default_factory=list)


@dataclass
class OutputInfo:
    """The structure and metadata of one output, without its data."""

    url: str
    name: str
    format: str
    #: What identifies this version of the file (size, time, ETag).
    key: list[Any]
    size: int | None
    mtime: float | None
    attrs: dict[str, Any]
    groups: list[GroupInfo]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputInfo:
        groups = [
            GroupInfo(g["path"], [VariableInfo(**v) for v in g["variables"]])
            for g in data["groups"]
        ]
        return cls(**{**data, "groups": groups})


# -- values ---------------------------------------------------------------------------------


class _TooLarge(ValueError):
    pass


def json_value(value: Any, depth: int = 0) -> Any:
    """An attribute value as JSON holds it: numpy scalars and arrays become Python numbers and
    lists, bytes become text, NaN and infinities stay floats. Raises ``_TooLarge`` beyond the
    limits and ``ValueError`` for what JSON cannot hold."""
    if depth > 32:
        raise _TooLarge("nested more than 32 levels")
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str | np.str_):
        value = str(value)
        if len(value) > MAX_ATTRIBUTE_CHARS:
            raise _TooLarge(f"{len(value):,} characters (at most {MAX_ATTRIBUTE_CHARS:,})")
        return value.replace("\x00", "")
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise ValueError(f"the integer {number} does not fit in 64 bits")
        return number
    if isinstance(value, float | np.floating):
        return float(value)
    if value is None:
        return None
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
        if array.size > MAX_ATTRIBUTE_ITEMS:
            raise _TooLarge(f"{array.size:,} elements (at most {MAX_ATTRIBUTE_ITEMS:,})")
        if array.ndim == 0:
            return json_value(array.item(), depth + 1)
        items = [json_value(v, depth + 1) for v in (array.tolist() if array.ndim else [])]
        return items[0] if isinstance(value, np.ndarray) and len(items) == 1 else items
    if isinstance(value, Mapping):
        return {str(k): json_value(v, depth + 1) for k, v in value.items()}
    raise ValueError(f"a {type(value).__name__} is not a number, text or list")


def json_attributes(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The attributes of a group or variable as JSON values; each one that cannot be held is
    left out with a :class:`SimulationOutputWarning` naming ``where`` and the attribute."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        if name in _HIDDEN_ATTRIBUTES:
            continue
        if len(out) >= MAX_ATTRIBUTES:
            warnings.warn(
                f"{where}: more than {MAX_ATTRIBUTES:,} attributes; the rest are left out",
                SimulationOutputWarning,
                stacklevel=2,
            )
            break
        try:
            out[str(name)] = json_value(value)
        except ValueError as err:
            warnings.warn(
                f"{where}: attribute {name!r} is left out ({err})",
                SimulationOutputWarning,
                stacklevel=2,
            )
    return out


def decoded_dtype(dtype: np.dtype, attrs: Mapping[str, Any]) -> np.dtype:
    """The dtype xarray gives a variable it decodes with CF masking and scaling (its rules:
    scaled values are floats; integers with a fill value become floats)."""
    if dtype.kind in "SUO" or dtype.kind == "V":
        return np.dtype(object)
    scale = [attrs[k] for k in ("scale_factor", "add_offset") if k in attrs]
    if scale:
        kinds = [np.asarray(v).dtype for v in scale]
        if dtype.itemsize <= 2 and all(k == np.float32 for k in kinds):
            return np.dtype("float32")
        return np.dtype("float64") if any(k.kind == "f" for k in kinds) else np.dtype("float64")
    if dtype.kind in "iu" and ("_FillValue" in attrs or "missing_value" in attrs):
        return np.dtype("float32") if dtype.itemsize <= 2 else np.dtype("float64")
    return dtype


def _scalar(value: Any) -> Any:
    try:
        plain = json_value(value)
    except ValueError:
        return None
    if isinstance(plain, float) and not math.isfinite(plain):
        return None
    return plain if isinstance(plain, int | float | str | bool) else None


# -- finding outputs -----------------------------------------------------------------------


def has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def is_output_name(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    return name.endswith(FILE_SUFFIXES) or name.endswith(ZARR_SUFFIX)


def version_key(fs: Any, path: str, info: Mapping[str, Any] | None = None) -> list[Any]:
    """What identifies one version of an output: size and time (or ETag) of the file, or of a
    zarr store's metadata."""
    if info is None or info.get("type") == "directory":
        for meta in ("zarr.json", ".zmetadata", ".zattrs", ".zgroup"):
            try:
                info = fs.info(f"{path.rstrip('/')}/{meta}")
                break
            except (FileNotFoundError, OSError):
                continue
        else:
            info = info or {}
    assert info is not None
    stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified") or info.get("created")
    return [info.get("size"), str(stamp)]


def mtime_of(info: Mapping[str, Any] | None) -> float | None:
    if not info:
        return None
    value = info.get("mtime") or info.get("LastModified") or info.get("created")
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def detect_format(fs: Any, path: str, is_dir: bool) -> str:
    """``zarr``, ``netcdf4`` or ``netcdf3`` from the output itself (its signature)."""
    if is_dir:
        return "zarr"
    with fs.open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "netcdf4"
    if head[:4] in NETCDF3_SIGNATURES:
        return "netcdf3"
    if not head:
        raise CorruptFile(f"{path}: the file is empty; expected a NetCDF, HDF5 or zarr output")
    raise CorruptFile(
        f"{path}: not a NetCDF or HDF5 file (it starts with {head[:8]!r}); expected the HDF5 "
        "signature or a NetCDF-3 'CDF' header"
    )


# -- reading structure ----------------------------------------------------------------------


def _variable(name: str, dims: Iterable[str], shape, dtype, attrs, chunks, where: str, read):
    dims, shape = [str(d) for d in dims], [int(n) for n in shape]
    if len(dims) != len(shape) or len(shape) > MAX_NDIM:
        raise CorruptFile(f"{where}: variable {name!r} has dimensions {dims} for shape {shape}")
    plain = json_attributes(attrs, f"{where}, variable {name!r}")
    dt = decoded_dtype(np.dtype(dtype), attrs)
    rows = int(chunks[0]) if chunks and len(chunks) else None
    value = _scalar(read()) if not shape else None
    return VariableInfo(
        name, dims, shape, dt.str if dt.kind != "O" else "object", plain, rows, value
    )


class _NoScales(Exception):
    """A dataset has a dimension without a netCDF dimension scale (plain HDF5)."""


_PURE_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


def _h5_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _scan_h5py(fileobj: Any, where: str) -> tuple[dict, list[GroupInfo]]:
    """What :func:`_scan_hdf5_h5netcdf` reads, straight from h5py (several times faster): a
    NetCDF-4 file's dimensions are its dimension scales. Raises ``_NoScales`` for a dataset
    without them (plain HDF5: h5netcdf names such dimensions)."""
    import h5py

    groups: list[GroupInfo] = []
    count = 0
    with h5py.File(fileobj, "r") as f:
        attrs = json_attributes(f.attrs, where)
        pending: list[Any] = [f]
        while pending:
            group = pending.pop(0)
            if len(groups) >= MAX_GROUPS:
                raise CorruptFile(f"{where}: more than {MAX_GROUPS:,} groups")
            info = GroupInfo(group.name)
            scalars = 0
            subgroups = []
            for name, item in group.items():
                if isinstance(item, h5py.Group):
                    subgroups.append(item)
                    continue
                if not isinstance(item, h5py.Dataset):
                    continue
                item_attrs = item.attrs
                names = list(item_attrs)  # names only: reading DIMENSION_LIST values is slow
                scale = "CLASS" in names and item_attrs["CLASS"] == b"DIMENSION_SCALE"
                if (
                    scale
                    and "NAME" in names
                    and _h5_text(item_attrs["NAME"]).encode().startswith(_PURE_DIMENSION)
                ):
                    continue  # a dimension, not a variable
                count += 1
                if count > MAX_VARIABLES:
                    raise CorruptFile(f"{where}: more than {MAX_VARIABLES:,} variables")
                if scale and item.ndim == 1:
                    dims = [name]
                else:
                    dims = []
                    for axis in item.dims:
                        if len(axis) == 0:
                            raise _NoScales(name)
                        dims.append(axis[0].name.rsplit("/", 1)[-1])
                if not item.shape:
                    scalars += 1
                    if scalars > MAX_SCALARS:
                        continue
                plain_attrs = {k: item_attrs[k] for k in names if k not in _HIDDEN_ATTRIBUTES}
                info.variables.append(
                    _variable(
                        name,
                        dims,
                        item.shape,
                        h5py.check_string_dtype(item.dtype) and np.dtype(object) or item.dtype,
                        plain_attrs,
                        item.chunks,
                        where,
                        lambda item=item: item[()],
                    )
                )
            groups.append(info)
            pending.extend(subgroups)
    return attrs, groups


def _scan_hdf5(fileobj: Any, where: str) -> tuple[dict, list[GroupInfo]]:
    try:
        return _scan_h5py(fileobj, where)
    except _NoScales:
        fileobj.seek(0)
        return _scan_hdf5_h5netcdf(fileobj, where)


def _scan_hdf5_h5netcdf(fileobj: Any, where: str) -> tuple[dict, list[GroupInfo]]:
    import h5netcdf

    groups: list[GroupInfo] = []
    with h5netcdf.File(fileobj, "r", phony_dims="access") as f:
        attrs = json_attributes(f.attrs, where)
        pending = [f]
        count = 0
        while pending:
            group = pending.pop(0)
            if len(groups) >= MAX_GROUPS:
                raise CorruptFile(f"{where}: more than {MAX_GROUPS:,} groups")
            info = GroupInfo(group.name if group.name.startswith("/") else "/" + group.name)
            scalars = 0
            for name, var in group.variables.items():
                count += 1
                if count > MAX_VARIABLES:
                    raise CorruptFile(f"{where}: more than {MAX_VARIABLES:,} variables")
                if not var.shape:
                    scalars += 1
                    if scalars > MAX_SCALARS:
                        continue
                info.variables.append(
                    _variable(
                        name,
                        var.dimensions,
                        var.shape,
                        var.dtype,
                        dict(var.attrs),
                        var.chunks,
                        where,
                        lambda var=var: var[()],
                    )
                )
            groups.append(info)
            pending.extend(group.groups.values())
    return attrs, groups


def _scan_xarray_dataset(ds: Any, path: str, where: str) -> GroupInfo:
    info = GroupInfo(path)
    for name, var in ds.variables.items():
        encoding = var.encoding
        chunks = (
            encoding.get("chunksizes") or encoding.get("chunks") or encoding.get("preferred_chunks")
        )
        if isinstance(chunks, dict):
            chunks = [chunks.get(d) for d in var.dims]
            chunks = chunks if chunks and chunks[0] else None
        info.variables.append(
            _variable(
                str(name),
                var.dims,
                var.shape,
                var.dtype,
                dict(var.attrs),
                chunks,
                where,
                lambda var=var: var.values,
            )
        )
    return info


def _scan_netcdf3(fileobj: Any, where: str) -> tuple[dict, list[GroupInfo]]:
    import xarray as xr

    with xr.open_dataset(
        fileobj, engine="scipy", decode_times=False, decode_timedelta=False, cache=False
    ) as ds:
        if len(ds.variables) > MAX_VARIABLES:
            raise CorruptFile(f"{where}: more than {MAX_VARIABLES:,} variables")
        return json_attributes(ds.attrs, where), [_scan_xarray_dataset(ds, "/", where)]


def _scan_zarr(fs: Any, path: str, url: str, storage_options: Mapping[str, Any]) -> tuple:
    import zarr

    if _is_local(fs):
        root = zarr.open_group(path, mode="r")
    else:
        root = zarr.open_group(url, mode="r", storage_options=dict(storage_options))
    where = url
    attrs = json_attributes(dict(root.attrs), where)
    groups: list[GroupInfo] = []
    pending = [("/", root)]
    count = 0
    while pending:
        gpath, group = pending.pop(0)
        if len(groups) >= MAX_GROUPS:
            raise CorruptFile(f"{where}: more than {MAX_GROUPS:,} groups")
        info = GroupInfo(gpath)
        for name, array in sorted(group.arrays()):
            count += 1
            if count > MAX_VARIABLES:
                raise CorruptFile(f"{where}: more than {MAX_VARIABLES:,} variables")
            array_attrs = dict(array.attrs)
            dims: Any = array_attrs.get("_ARRAY_DIMENSIONS") or getattr(
                array.metadata, "dimension_names", None
            )
            if dims is None:
                dims = [f"{name}_dim_{i}" for i in range(array.ndim)]
            info.variables.append(
                _variable(
                    name,
                    dims,
                    array.shape,
                    array.dtype,
                    array_attrs,
                    array.chunks,
                    where,
                    lambda array=array: array[()],
                )
            )
        groups.append(info)
        for name, sub in sorted(group.groups()):
            pending.append((f"{gpath.rstrip('/')}/{name}", sub))
    return attrs, groups


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def scan_output(
    fs: Any,
    path: str,
    url: str,
    info: Mapping[str, Any] | None,
    storage_options: Mapping[str, Any] | None = None,
) -> OutputInfo:
    """Read the structure and metadata of one output (no data but 0-d variables).

    Raises :class:`~intake_broker.errors.CorruptFile` naming ``url`` when it cannot be read.
    """
    is_dir = bool(info and info.get("type") == "directory") or path.rstrip("/").endswith(
        ZARR_SUFFIX
    )
    name = path.rstrip("/").rsplit("/", 1)[-1]
    try:
        fmt = detect_format(fs, path, is_dir)
        if fmt == "zarr":
            attrs, groups = _scan_zarr(fs, path, url, storage_options or {})
        else:
            with fs.open(path, "rb") as f:
                attrs, groups = (_scan_hdf5 if fmt == "netcdf4" else _scan_netcdf3)(f, url)
    except CorruptFile:
        raise
    except FileNotFoundError:
        raise
    except Exception as err:  # every reader has its own errors for a damaged file
        raise CorruptFile(
            f"{url}: cannot be read as a simulation output ({type(err).__name__}: {err}); "
            "expected a NetCDF-3, NetCDF-4/HDF5 file or a zarr store"
        ) from None
    return OutputInfo(
        url=url,
        name=name,
        format=fmt,
        key=version_key(fs, path, info),
        size=None if is_dir or not info else info.get("size"),
        mtime=mtime_of(info),
        attrs=attrs,
        groups=groups,
    )


# -- parsing attribute values -----------------------------------------------------------------

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


def as_epoch(value: Any) -> float | None:
    """Seconds since the epoch of a number or an ISO-8601 text (naive times are UTC); None if
    the value is neither."""
    from datetime import UTC, datetime

    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _ISO.match(value.strip()):
        text = value.strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return None


_TIME_UNITS = {
    "seconds": 1.0,
    "second": 1.0,
    "secs": 1.0,
    "sec": 1.0,
    "s": 1.0,
    "milliseconds": 1e-3,
    "millisecond": 1e-3,
    "ms": 1e-3,
    "microseconds": 1e-6,
    "microsecond": 1e-6,
    "us": 1e-6,
    "minutes": 60.0,
    "minute": 60.0,
    "min": 60.0,
    "hours": 3600.0,
    "hour": 3600.0,
    "h": 3600.0,
    "days": 86400.0,
    "day": 86400.0,
    "d": 86400.0,
}
_SINCE = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)


def cf_time(attrs: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(scale, offset)`` turning a CF time variable's values into epoch seconds
    (``units: "seconds since 1970-01-01"``), for the standard calendars; else None."""
    units = attrs.get("units")
    calendar = str(attrs.get("calendar", "standard")).lower()
    if not isinstance(units, str) or calendar not in (
        "standard",
        "gregorian",
        "proleptic_gregorian",
    ):
        return None
    match = _SINCE.match(units)
    if match is None or match.group(1).lower() not in _TIME_UNITS:
        return None
    reference = match.group(2).strip()
    if re.match(r"^\d{4}-\d{1,2}-\d{1,2}$", reference):
        reference += "T00:00:00"
    reference = re.sub(r"^(\d{4})-(\d)-", r"\1-0\2-", reference)
    reference = re.sub(r"^(\d{4}-\d{2})-(\d)\b", r"\1-0\2", reference)
    reference = reference.replace(" UTC", "+00:00").replace(" ", "T", 1)
    if reference.endswith(("+0", "+00")):  # "1970-01-01 00:00:00 +0"
        reference = reference.rsplit("+", 1)[0].rstrip("T") + "+00:00"
    offset = as_epoch(reference)
    if offset is None:
        return None
    return _TIME_UNITS[match.group(1).lower()], offset


def dumps(value: Any) -> str:
    """Canonical JSON (what a uid is derived from)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
