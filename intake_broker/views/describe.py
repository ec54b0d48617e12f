"""What intake's idioms show of a catalog, a run or a stream: plain data, no Python objects,
no secrets.

``describe()``, ``serialize()`` / ``yaml()`` and the reprs of :mod:`intake_broker.views` are
built from these helpers: :func:`json_safe` turns values into what JSON and YAML hold,
:func:`redact` hides credentials (``password``, ``secret``, ``key``, ``token`` fields and the
password of a URL) unless they are ``${VARIABLE}`` or ``{{ env(...) }}`` references,
:func:`store_location` says where a store keeps its runs, :func:`driver_name` gives the intake
driver name a catalog class is registered under.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["driver_name", "dump_yaml", "json_safe", "redact", "store_location"]

#: Field names whose values are credentials.
SECRET_FIELDS = re.compile(
    r"(^|_)(password|passwd|pwd|secret|token|api_?key|key|credentials?|session_token)$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)")
_REFERENCE = re.compile(r"\$\{[^}]*\}|\{\{.*?\}\}")
REDACTED = "<redacted>"


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-able data: numpy scalars and arrays become numbers and lists, other
    objects their ``repr``; non-finite floats stay floats (YAML writes ``.nan``/``.inf``)."""
    if depth > 64:
        return repr(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else value
    if isinstance(value, np.generic):
        return json_safe(value.item(), depth + 1)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist(), depth + 1)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return repr(value)


def redact(value: Any, field: str = "") -> Any:
    """``value`` with credentials replaced by ``<redacted>`` (references kept as written)."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, field) for v in value]
    if isinstance(value, str):
        if SECRET_FIELDS.search(field) and value and not _is_reference(value):
            return REDACTED
        return _URL_PASSWORD.sub(
            lambda m: m["head"] + (m["pw"] if _is_reference(m["pw"]) else REDACTED), value
        )
    return value


def _is_reference(text: str) -> bool:
    return _REFERENCE.fullmatch(text.strip()) is not None


def store_location(store: Any) -> str:
    """Where a store keeps its runs, in words (``NativeStore('sqlite:///...', ...)``, ...)."""
    from intake_broker.store.memory import MemoryStore

    if isinstance(store, MemoryStore):
        return "in memory"
    members = getattr(store, "members", None)
    if isinstance(members, Mapping) or isinstance(members, list | tuple):
        names = list(members)
        return f"a federation of {len(names)} stores ({', '.join(map(str, names))})"
    text = repr(store)
    if text.startswith("<") and " object at 0x" in text:
        return type(store).__name__
    return redact(text)


@functools.cache
def _registered() -> dict[str, str]:
    from importlib.metadata import entry_points

    names: dict[str, str] = {}
    for ep in entry_points(group="intake.drivers"):
        if ep.name.startswith("bluesky"):
            names.setdefault(ep.value.replace(":", "."), ep.name)
    return names


def driver_name(cls: type) -> str:
    """The intake driver name ``cls`` is registered under (``bluesky-native-catalog``), else
    its dotted class name (which intake also accepts as a driver)."""
    from intake_broker.plugins import CORE_DRIVERS

    registered = dict(_registered())
    for name, target in CORE_DRIVERS.items():
        registered.setdefault(target.replace(":", "."), name)
    for klass in (cls,):
        for dotted, name in registered.items():
            module, _, attr = dotted.rpartition(".")
            if attr == klass.__name__ and klass.__module__.startswith(module):
                return name
    return f"{cls.__module__}.{cls.__qualname__}"


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (``yaml.safe_dump``: never a Python object tag)."""
    import yaml

    return yaml.safe_dump(json_safe(data), default_flow_style=False, sort_keys=False)
