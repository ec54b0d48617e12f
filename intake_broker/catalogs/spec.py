"""A YAML catalog file read with the line of every field, its structure checked (a JSON
schema), and the text-level rules of the format: ``${VARIABLES}`` and relative paths.

:mod:`intake_broker.catalogs.files` checks the entries against their drivers and opens them.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import threading
from collections.abc import Iterator
from typing import Any

import yaml

from intake_broker.catalogs.arguments import describe_value
from intake_broker.errors import BrokerError, UnknownDriver

FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["sources"],
    "properties": {
        "sources": {"type": "object", "additionalProperties": {"$ref": "#/$defs/entry"}},
        "metadata": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        "name": {"type": "string"},
        "description": {"type": "string"},
    },
    "$defs": {
        "entry": {
            "type": "object",
            "required": ["driver"],
            "additionalProperties": False,
            "properties": {
                "driver": {"type": ["string", "array", "object"]},
                "args": {"type": "object"},
                "description": {"type": "string"},
                "metadata": {"type": "object", "properties": {"timezone": {"type": "string"}}},
                "parameters": {"type": "object"},
                "direct_access": {"enum": ["forbid", "allow", "force"]},
                "cache": {"type": "array"},
            },
        }
    },
}
_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


class CatalogFileError(BrokerError, ValueError):
    """A YAML catalog file is wrong; ``path``, ``line`` and ``field`` say where.

    The message reads ``<file>, line <n>, entry '<name>', field '<field>': <problem>``.
    """

    def __init__(self, path: str, line: int | None, keys: tuple | None, problem: str):
        keys = tuple(keys or ())
        self.path, self.line, self.problem = path, line, problem
        self.field = ".".join(map(str, keys)) or None
        where = str(path) + (f", line {line}" if line else "")
        if len(keys) > 1 and keys[0] == "sources":
            where += f", entry {keys[1]!r}"
            keys = keys[2:]
        if keys:
            where += f", field {'.'.join(map(str, keys))!r}"
        super().__init__(f"{where}: {problem}")


class UnknownDriverError(CatalogFileError, UnknownDriver):
    """A catalog file names a driver that is not installed."""


# -- reading a file with its line numbers ----------------------------------------------------


class CatalogSpec:
    """One YAML catalog file, parsed, its structure checked, with the line of every field.

    Use :meth:`read` (cached while the file is unchanged) rather than the constructor.
    """

    _cache: dict[tuple, CatalogSpec] = {}
    _lock = threading.Lock()

    def __init__(self, path: str, text: str):
        self.path = path
        if "://" in path:
            self.catalog_dir = posixpath.dirname(path) + "/"
        else:
            self.catalog_dir = os.path.dirname(os.path.abspath(path)) + os.sep
        self._checked: set[str] = set()
        try:
            loader = yaml.SafeLoader(text)
            try:
                self._root = loader.get_single_node()
                # the YAML as parsed (a mapping holding "sources" once _check_structure passed)
                self.data: Any = loader.construct_document(self._root) if self._root else None
            finally:
                loader.dispose()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise CatalogFileError(
                path, mark.line + 1 if mark else None, None, f"not valid YAML: {err}"
            ) from None
        self._check_structure()

    @classmethod
    def read(cls, path: str | os.PathLike, storage_options: dict | None = None) -> CatalogSpec:
        """The parsed file at ``path`` (a local path or an fsspec URL)."""
        path = os.fspath(path)
        if "://" not in path:
            path = os.path.abspath(os.path.expanduser(path))
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                raise CatalogFileError(path, None, None, "catalog file does not exist") from None
            key = (path, stat.st_mtime_ns, stat.st_size)
            with cls._lock:
                if key in cls._cache:
                    return cls._cache[key]
            with open(path, encoding="utf-8") as f:
                spec = cls(path, f.read())
            with cls._lock:
                cls._cache[key] = spec
            return spec
        import fsspec

        try:
            with fsspec.open(path, "rt", **(storage_options or {})) as f:
                return cls(path, f.read())
        except FileNotFoundError:
            raise CatalogFileError(path, None, None, "catalog file does not exist") from None

    # -- where things are --

    def line(self, *keys: Any) -> int | None:
        """The line (1-based) of the field at ``keys``, or of its nearest existing parent."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                for key_node, value in node.value:
                    if key_node.value == str(key):
                        line, node = key_node.start_mark.line + 1, value
                        break
                else:
                    return line
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(key, int)
                and key < len(node.value)
            ):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def error(
        self, keys: tuple, problem: str, cls: type[CatalogFileError] = CatalogFileError
    ) -> CatalogFileError:
        """An error at the field ``keys`` (e.g. ``("sources", "csx", "args", "paths")``)."""
        return cls(self.path, self.line(*keys), keys, problem)

    # -- contents --

    @property
    def name(self) -> str:
        return self.data.get("name") or os.path.splitext(posixpath.basename(self.path))[0]

    @property
    def stem(self) -> str:
        """The file name without its extension: how a federation names this file's entries."""
        return os.path.splitext(posixpath.basename(self.path))[0]

    @property
    def description(self) -> str | None:
        return self.data.get("description")

    @property
    def metadata(self) -> dict:
        return dict(self.data.get("metadata") or {})

    @property
    def sources(self) -> dict[str, dict]:
        return self.data["sources"]

    def entry_driver(self, name: str) -> Any:
        return self.sources[name].get("driver")

    def _check_structure(self) -> None:
        data = self.data
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            raise self.error(
                ("sources",) if isinstance(data, dict) else (),
                (
                    "no 'sources:' mapping; an intake catalog lists its entries under 'sources:' "
                    "with 'driver:' and 'args:', e.g.\nsources:\n  csx:\n    driver: "
                    "bluesky-msgpack-catalog\n    args: {paths: [runs/]}"
                ),
            )
        import jsonschema

        validator = jsonschema.Draft202012Validator(FILE_SCHEMA)
        errors = sorted(validator.iter_errors(data), key=lambda e: self.line(*e.absolute_path) or 0)
        if errors:
            keys, problem = _schema_problem(errors[0])
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise self.error(keys, problem + more)
        for name, entry in self.sources.items():
            if not isinstance(name, str):
                raise self.error(("sources", name), f"entry name {name!r} must be a string")
            if entry.get("args") is None:
                entry["args"] = {}
        check_timezone(self, ("metadata", "timezone"), self.metadata.get("timezone"))


def _schema_problem(error: Any) -> tuple[tuple, str]:
    keys = tuple(error.absolute_path)
    instance, validator = error.instance, error.validator
    if validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        what = "a driver name such as bluesky-msgpack-catalog" if missing == ["driver"] else ""
        return keys, f"missing required key {missing[0]!r}" + (f" ({what})" if what else "")
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)
        hint = difflib.get_close_matches(str(extra[0]), allowed, n=1)
        return (*keys, extra[0]), (
            f"unknown key {extra[0]!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" Valid keys: {', '.join(allowed)}"
        )
    if validator == "type":
        wanted = error.validator_value
        wanted = [wanted] if isinstance(wanted, str) else wanted
        words = " or ".join(_JSON_TYPES.get(w, w) for w in wanted)
        return keys, f"expected {words}, got {describe_value(instance)}"
    if validator == "enum":
        return keys, (
            f"expected one of {', '.join(map(repr, error.validator_value))}, "
            f"got {describe_value(instance)}"
        )
    return keys, error.message


def check_timezone(spec: CatalogSpec, keys: tuple, zone: Any) -> None:
    """Raise an error at ``keys`` unless ``zone`` is None or an IANA time zone name."""
    if zone is None:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise spec.error(
            keys,
            f"unknown time zone {zone!r}; give an IANA name such as "
            "'America/New_York', 'Europe/Berlin' or 'UTC'",
        ) from None


# -- environment variables and paths ---------------------------------------------------------

_DOLLAR = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_VARIABLE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_JINJA_ENV = re.compile(r"\{\{\s*env\(\s*(['\"]?)(?P<name>[A-Za-z_]\w*)\1\s*\)\s*\}\}")


def strings_in(value: Any, keys: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """``(keys, text)`` of every string inside nested mappings and lists."""
    if isinstance(value, str):
        yield keys, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(v, (*keys, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, (*keys, i))


def variables(text: str) -> Iterator[tuple[str, bool]]:
    """``(name, has_default)`` of every ``${NAME}`` and ``{{ env(NAME) }}`` in ``text``.

    Raises
    ------
    ValueError
        A ``${`` that is not a well-formed reference.
    """
    for match in _DOLLAR.finditer(text):
        if match.group(0) == "$$":
            continue
        body = match.group("body")
        found = _VARIABLE.fullmatch(body or "")
        if body is None or found is None:
            raise ValueError(
                f"{match.group(0)!r} is not a variable reference; write ${{NAME}} "
                "or ${NAME:-default} (and $$ for a literal $)"
            )
        yield found["name"], found["default"] is not None
    for match in _JINJA_ENV.finditer(text):
        yield match["name"], False


def expand_variables(text: str, environ: dict | None = None) -> str:
    """``text`` with ``${NAME}`` and ``${NAME:-default}`` replaced (``$$`` becomes ``$``).

    Raises
    ------
    KeyError
        Naming the first unset variable that has no default.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        found = _VARIABLE.fullmatch(match.group("body") or "")
        if found is None:
            raise ValueError(f"malformed variable reference {match.group(0)!r}")
        value = env.get(found["name"])
        if value is None or (value == "" and found["default"] is not None):
            if found["default"] is None:
                raise KeyError(found["name"])
            return found["default"]
        return value

    return _DOLLAR.sub(replace, text)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(://|::)")
_SQLITE_RELATIVE = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/)(?!:)(?P<path>.+)$")


def resolve_path(value: str, base: str) -> str:
    """``value`` made absolute against the folder ``base`` when it is a relative local path.

    URLs are left alone except relative SQLite URLs (``sqlite:///runs.db``); ``~`` expands.
    """
    sqlite = _SQLITE_RELATIVE.match(value)
    if sqlite:
        return sqlite.group(1) + resolve_path(sqlite["path"], base)
    if not value or _URL.match(value):
        return value
    if value.startswith("~"):
        return os.path.expanduser(value)
    if os.path.isabs(value):
        return os.path.normpath(value) + ("/" if value.endswith("/") else "")
    if _URL.match(base):
        return posixpath.join(base, value)
    return os.path.normpath(os.path.join(base, value)) + ("/" if value.endswith("/") else "")
