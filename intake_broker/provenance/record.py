"""What a derived run's start document says about where it came from.

A derived run is an ordinary run (start, descriptor, events, stop) whose start document carries

``derived_from``
    the uids of its input runs, a top-level list, so ``derived_from contains "<uid>"`` finds
    every run computed from a run, on every store;
``derived_name``
    a readable name made from a template (:data:`DEFAULT_NAME`, configurable per pipeline);
``provenance``
    a mapping (:data:`PROVENANCE_KEY`) with ``schema`` (:data:`SCHEMA`), ``key`` (the
    idempotency key: a SHA-256 of the code's name, version and source hash, the parameters
    and the input uids), ``inputs``
    (per input: ``uid``, ``scan_id``, ``streams``, ``fields``, ``event_ranges`` as
    ``{stream: [first seq_num, last seq_num]}``), ``code`` (``name``, ``version``,
    ``qualname``, ``module``, ``source_sha256``, ``packages``: versions of the libraries
    it ran with), ``parameters``, ``environment`` (``python``, ``platform``) and ``times``
    (``started``, ``finished``, epoch seconds).

Every part is JSON, so the query language reaches it: ``provenance.code.name == "fit_peaks"``.

``derived_from`` and ``provenance.inputs`` name other runs, which a reader of the derived run
may not be allowed to see: the access guard (:class:`~intake_broker.access.GuardedStore`)
shows such an input as withheld (``None`` in ``derived_from``, ``{"withheld": true}`` in
``provenance.inputs``) and accepts searches on these keys only for uids the reader can see.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import string
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from intake_broker.errors import BrokerError

#: The start-document key holding the provenance mapping.
PROVENANCE_KEY = "provenance"
#: The start-document key listing the input uids (searchable with ``contains``).
DERIVED_FROM_KEY = "derived_from"
#: The start-document key of the derived run's readable name.
NAME_KEY = "derived_name"
#: The version of the provenance mapping's layout.
SCHEMA = "intake-broker/provenance/1"
#: The default naming scheme: code name, version and the first input's scan_id (or its
#: derived name, for an input that is itself derived).
DEFAULT_NAME = "{code.name}-v{code.version}/{input.scan_id}"
#: The libraries whose versions every provenance record lists (those installed).
PACKAGES = ("intake_broker", "numpy", "xarray", "dask", "event_model", "scipy", "pandas")
#: The longest derived name; longer ones are cut.
MAX_NAME = 200
#: The largest parameters mapping, as JSON characters.
MAX_PARAMETERS = 100_000


class ProvenanceError(BrokerError, ValueError):
    """A derived run cannot be described: bad parameters or naming scheme."""


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, no spaces); raises for non-JSON values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ProvenanceError(
            f"pipeline parameters must be JSON values (numbers, strings, lists, dicts): {err}"
        ) from None


def check_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters as a plain dict, checked to be JSON and of bounded size."""
    params = dict(parameters or {})
    for key in params:
        if not isinstance(key, str):
            raise ProvenanceError(f"parameter names are strings, got {key!r}")
    text = canonical_json(params)
    if len(text) > MAX_PARAMETERS:
        raise ProvenanceError(
            f"the parameters are {len(text)} characters of JSON, more than {MAX_PARAMETERS}; "
            "pass large inputs as runs, not parameters"
        )
    return json.loads(text)


def provenance_key(
    code: Mapping[str, Any], parameters: Mapping[str, Any], uids: Sequence[str]
) -> str:
    """The idempotency key of computing ``code`` (a :func:`code_record`: its name, version and
    source hash) with ``parameters`` on ``uids``: a derived run with this ``provenance.key``
    makes another computation unnecessary. Editing the function's source changes the key, so
    runs computed by the old source are computed again even when the version was not bumped."""
    identity = [code.get("name"), code.get("version"), code.get("source_sha256")]
    text = canonical_json([*identity, dict(parameters), list(uids)])
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=8)
def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The installed versions of :data:`PACKAGES` (and ``extra``), by import name."""
    from importlib import metadata

    names = {"intake_broker": "intake-broker", "event_model": "event-model"}
    found: dict[str, str] = {}
    for package in (*PACKAGES, *extra):
        try:
            found[package] = metadata.version(names.get(package, package))
        except metadata.PackageNotFoundError:
            module = sys.modules.get(package)
            version = getattr(module, "__version__", None)
            if isinstance(version, str):
                found[package] = version
    return found


def source_hash(func: Any) -> str | None:
    """SHA-256 of ``func``'s source text (None when Python cannot find it)."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def code_record(func: Any, name: str, version: str, packages: Sequence[str] = ()) -> dict[str, Any]:
    """What ``provenance.code`` says about ``func`` declared as ``name`` ``version``."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
    return {
        "name": name,
        "version": version,
        "module": module,
        "qualname": qualname,
        "source_sha256": source_hash(func),
        "packages": package_versions(tuple(packages)),
    }


def environment_record() -> dict[str, Any]:
    """What ``provenance.environment`` says: the Python and platform the code ran on."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
    }


def input_record(
    start: Mapping[str, Any],
    stop: Mapping[str, Any] | None,
    stream: str | None,
    fields: Sequence[str] | None,
) -> dict[str, Any]:
    """What ``provenance.inputs`` says about one input run: which streams, fields and events
    of it were read (``event_ranges``: first and last ``seq_num``, from its stop document)."""
    counts = dict((stop or {}).get("num_events") or {})
    streams = [stream] if stream is not None else sorted(counts)
    return {
        "uid": start["uid"],
        "scan_id": start.get("scan_id"),
        "streams": streams,
        "fields": list(fields) if fields is not None else None,
        "event_ranges": {s: [1, int(counts[s])] for s in streams if counts.get(s)},
    }


class _Namespace:
    """A mapping seen through attributes for naming templates (``{input.sample.name}``)."""

    def __init__(self, data: Any):
        self._data = data

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        data = self._data
        if isinstance(data, Mapping) and item in data:
            value = data[item]
            return _Namespace(value) if isinstance(value, Mapping) else value
        return ""

    def __format__(self, spec: str) -> str:
        return format(json.dumps(self._data, sort_keys=True, default=str), spec)


class _SafeFormatter(string.Formatter):
    """``str.format`` limited to attribute paths of plain data: no indexing, no dunders."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if "[" in field_name or any(p.startswith("_") for p in field_name.split(".")):
            raise ProvenanceError(
                f"naming scheme field {{{field_name}}}: use dotted names of code, input, "
                "inputs, parameters (e.g. {input.scan_id}); indexing and _names are not allowed"
            )
        return super().get_field(field_name, args, kwargs)


def derived_name(
    template: str,
    code: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any],
) -> str:
    """The name of a derived run from ``template``: fields ``code.*`` (name, version),
    ``input.*`` (the first input's start document: ``scan_id``, ``sample``...), ``inputs``
    (how many) and ``parameters.*``. A missing key formats as empty text; an input without a
    ``scan_id`` (a derived run) gives its own ``derived_name`` instead, so a chain reads
    ``fit_peaks-v1/reduce-v1/42``. Names never hold input uids (a reader of the derived run
    may not be allowed to see its inputs)."""
    first = dict(inputs[0]) if inputs else {}
    if first.get("scan_id") is None:
        first["scan_id"] = first.get(NAME_KEY) or ""
    try:
        name = _SafeFormatter().format(
            template,
            code=_Namespace(dict(code)),
            input=_Namespace(first),
            inputs=len(inputs),
            parameters=_Namespace(dict(parameters)),
        )
    except (KeyError, IndexError, ValueError, AttributeError) as err:
        if isinstance(err, ProvenanceError):
            raise
        raise ProvenanceError(
            f"naming scheme {template!r} cannot be formatted ({type(err).__name__}: {err}); "
            "its fields are code.name, code.version, input.<start key>, inputs, parameters.<name>"
        ) from None
    return name[:MAX_NAME]
