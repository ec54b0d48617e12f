"""The members of a federation: :class:`Member` (a store opened when first needed), and the
members as written in YAML, resolved to stores to open and checked first.

A member is written as

``nsls2.yml``
    every store entry of that file (federation entries of it are left out: include them by
    name), each named ``nsls2/<entry>``;
``nsls2.yml#csx``
    one entry, named ``nsls2/csx``; if the entry is itself a federation, its members;
``csx``
    a catalog found by :mod:`intake_broker.catalogs.discovery` (a YAML entry or an entry point);
``{catalog: nsls2.yml, entry: csx, name: CSX}``
    the same with a chosen name (``name`` prefixes a whole file's entries);

and ``members`` may be a mapping ``{name: member}`` instead of a list. Relative paths are
relative to the folder of the YAML file that names them; ``${VARIABLES}`` are expanded.

Nothing is opened here: a member becomes a picklable opener that the federation calls on a
worker thread. A federation that contains itself, directly or through other files, is an error
naming the chain of files and lines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intake_broker.catalogs.files import (
    CatalogFileError,
    CatalogSpec,
    check_entry,
    expand_variables,
    open_entry,
    resolve_path,
)
from intake_broker.errors import BrokerError, RunNotFound
from intake_broker.queries import Eq, Query
from intake_broker.store.contract import DocumentStore, RunRecord
from intake_broker.views.catalog import BrokerCatalog, _and


class Member:
    """One member of a federation: a store, a catalog (whose filter and asset options are
    kept), or a callable returning either, called the first time the member is needed (on a
    worker thread, under the federation's timeout) and again after a failure."""

    def __init__(self, name: str, source: Any):
        self.name = name
        self._source = source
        self._lock = threading.Lock()
        self.store: DocumentStore | None = None
        self.query: Query | None = None
        self.assets: dict[str, Any] = {}
        if isinstance(source, DocumentStore | BrokerCatalog):
            self._bind(source)
        elif not callable(source):
            raise TypeError(
                f"federation member {name!r} is a {type(source).__name__}; give a "
                "DocumentStore, a BrokerCatalog, or a callable returning one"
            )

    def _bind(self, obj: Any) -> None:
        if isinstance(obj, BrokerCatalog):
            self.query = obj.query
            self.assets = dict(getattr(obj, "_assets", {}) or {})
            self.store = obj.store
        elif isinstance(obj, DocumentStore):
            self.store = obj
        else:
            raise BrokerError(
                f"federation member {self.name!r} opened as a "
                f"{type(obj).__name__}, not a catalog of Bluesky runs"
            )

    def open(self) -> DocumentStore:
        """The member's store, opened now if it was not yet."""
        with self._lock:
            if self.store is None:
                self._bind(self._source())
            assert self.store is not None  # _bind sets it or raises
            return self.store

    def runs(self, query: Query | None, **kwargs: Any) -> list[RunRecord]:
        return self.open().runs(_and(self.query, query), **kwargs)

    def count(self, query: Query | None) -> int:
        return self.open().count(_and(self.query, query))

    def find(self, uid: str) -> RunRecord | None:
        """The run with this uid if the member holds it (and its filter admits it)."""
        store = self.open()
        if self.query is not None:
            found = store.runs(_and(self.query, Eq("uid", uid)), limit=1)
            return found[0] if found else None
        try:
            return store.run(uid)
        except RunNotFound:
            return None

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        if self.store is not None:
            state["_source"] = None  # opened: the store travels, not how to open it
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


_MAPPING_KEYS = ("catalog", "entry", "name")
_FORMS = (
    "a YAML file (nsls2.yml), an entry of one (nsls2.yml#csx), the name of a discovered "
    "catalog (csx), or a mapping {catalog: nsls2.yml, entry: csx, name: CSX}"
)


@dataclass(frozen=True)
class EntryOpener:
    """Opens one entry of a YAML catalog file (picklable, unlike a lambda)."""

    path: str
    entry: str

    def __call__(self) -> Any:
        return open_entry(self.path, self.entry)


@dataclass(frozen=True)
class EntryPointOpener:
    """Opens a catalog registered in the ``intake.catalogs`` entry points."""

    name: str

    def __call__(self) -> Any:
        from intake_broker.catalogs.discovery import load_entry_point

        return load_entry_point(self.name)


@dataclass(frozen=True)
class ResolvedMember:
    name: str
    source: Any
    key: Any


@dataclass
class Resolved:
    """The members to open, and those left out with the reason (a driver not installed)."""

    members: list[ResolvedMember] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, other: Resolved, prefix: str | None = None) -> None:
        for member in other.members:
            name = f"{prefix}/{member.name}" if prefix else member.name
            self.members.append(ResolvedMember(name, member.source, member.key))
        for name, why in other.skipped.items():
            self.skipped[f"{prefix}/{name}" if prefix else name] = why


class _Where:
    """Where a member is written, for errors: a YAML file and field, or a Python call."""

    def __init__(self, spec: CatalogSpec | None, keys: tuple):
        self.spec, self.keys = spec, keys

    def at(self, key: Any) -> _Where:
        return _Where(self.spec, (*self.keys, key))

    def error(self, problem: str) -> BrokerError:
        if self.spec is None:
            return BrokerError(f"federation member {self.keys[-1] if self.keys else ''}: {problem}")
        return self.spec.error(self.keys, problem)


def _federation(cls: type | None) -> bool:
    return isinstance(cls, type) and issubclass(cls, BrokerCatalog) and cls.merges_members


def _bluesky(cls: type | None) -> bool:
    return cls is None or (isinstance(cls, type) and issubclass(cls, BrokerCatalog))


def _cycle(chain: tuple, node: tuple, where: _Where) -> BrokerError:
    loop = [*chain[chain.index(node) :], node]
    steps = []
    for i, (path, entry) in enumerate(loop):
        line = CatalogSpec.read(path).line("sources", entry, "args", "members")
        steps.append(
            f"{path}" + (f", line {line}" if i < len(loop) - 1 else "") + f" (entry {entry!r})"
        )
    return where.error(
        "circular reference: " + " -> ".join(steps) + ". A federation cannot "
        "contain itself; name the store entries (file.yml#entry) or whole files "
        "(file.yml, whose federation entries are left out) instead"
    )


def check_members(spec: CatalogSpec, name: str, chain: tuple = ()) -> Resolved:
    """Resolve the members of the federation entry ``name`` of ``spec`` without opening them.

    Raises
    ------
    CatalogFileError
        A missing file or entry, a bad member, or a cycle (naming the chain of files).
    """
    node = (spec.path, name)
    keys = ("sources", name, "args", "members")
    if node in chain:
        raise _cycle(chain, node, _Where(spec, keys))
    members = (spec.sources[name].get("args") or {}).get("members")
    return resolve_members(
        members, spec.catalog_dir, chain=(*chain, node), where=_Where(spec, keys)
    )


def resolve_members(
    members: Any, base: str | None, *, chain: tuple = (), where: _Where | None = None
) -> Resolved:
    """The members of a federation: what to open and under which name (see module doc).

    Parameters
    ----------
    members : list or mapping
        As written in YAML, or catalogs, stores and callables returning either.
    base : str, optional
        The folder relative paths start from (default: the working directory).
    """
    where = where or _Where(None, ())
    base = base or os.getcwd() + os.sep
    items: list[tuple[str | None, Any, Any]]
    if isinstance(members, Mapping):
        items = [(str(k), k, v) for k, v in members.items()]
    elif isinstance(members, list | tuple):
        items = [(None, i, v) for i, v in enumerate(members)]
    else:
        raise where.error(
            f"members must be a list or a mapping of {_FORMS}; got {type(members).__name__}"
        )
    if not items:
        raise where.error("a federation needs at least one member: " + _FORMS)
    resolved = Resolved()
    for given, key, value in items:
        resolved.add(_resolve_one(given, value, base, chain, where.at(key)))
    return _unique(resolved, where)


def _unique(resolved: Resolved, where: _Where) -> Resolved:
    seen: dict[Any, str] = {}
    out = Resolved(skipped=resolved.skipped)
    names: set[str] = set()
    for member in resolved.members:
        if member.key in seen:
            continue  # the same store named twice (a file and one of its entries): once
        if member.name in names:
            raise where.error(
                f"two members are named {member.name!r}; name them apart with "
                "{catalog: file.yml, name: NAME} or a mapping of members"
            )
        seen[member.key] = member.name
        names.add(member.name)
        out.members.append(member)
    return out


def _resolve_one(given: str | None, value: Any, base: str, chain: tuple, where: _Where) -> Resolved:
    if isinstance(value, DocumentStore | BrokerCatalog) or (
        callable(value) and not isinstance(value, str | Mapping)
    ):
        name = given or getattr(value, "name", None) or f"member{where.keys[-1]}"
        return Resolved([ResolvedMember(str(name), value, ("object", id(value)))])
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(_MAPPING_KEYS))
        if unknown or not isinstance(value.get("catalog"), str):
            problem = (
                f"unknown key {unknown[0]!r}"
                if unknown
                else "a member mapping needs 'catalog: <file.yml>'"
            )
            raise where.error(
                f"{problem}; a member mapping has the keys catalog (a YAML "
                "file, required), entry and name"
            )
        path = resolve_path(_expand(value["catalog"], where), base)
        entry = value.get("entry")
        return _from_file(
            path, None if entry is None else str(entry), value.get("name") or given, chain, where
        )
    if not isinstance(value, str) or not value:
        raise where.error(f"expected {_FORMS}; got {value!r}")
    text = _expand(value, where)
    file, hash_, entry = text.partition("#")
    if hash_ or file.endswith((".yml", ".yaml")) or "/" in file or os.sep in file:
        return _from_file(resolve_path(file, base), entry or None, given, chain, where)
    from intake_broker.catalogs.discovery import catalogs

    found = catalogs().find(text)
    if found is None:
        known = ", ".join(catalogs()) or "none"
        raise where.error(
            f"no catalog named {text!r} was found (found: {known}; "
            "`intake-broker catalogs` lists them with where they come from); "
            f"a member is {_FORMS}"
        )
    if found.path is None:
        return Resolved([ResolvedMember(given or text, EntryPointOpener(text), ("ep", text))])
    return _from_file(found.path, found.entry, given or text, chain, where)


def _expand(text: str, where: _Where) -> str:
    try:
        return expand_variables(text)
    except KeyError as err:
        raise where.error(f"environment variable {err.args[0]} is not set") from None
    except ValueError as err:
        raise where.error(str(err)) from None


def _from_file(
    path: str, entry: str | None, name: str | None, chain: tuple, where: _Where
) -> Resolved:
    try:
        spec = CatalogSpec.read(path)
    except CatalogFileError as err:
        if err.problem != "catalog file does not exist":
            raise
        raise where.error(f"member file {path!r} does not exist") from None
    if entry is None:
        resolved = Resolved()
        for each in spec.sources:
            check = check_entry(spec, each, chain, deep=False)
            member = f"{name or spec.stem}/{each}"
            if check.problem is not None:
                resolved.skipped[member] = check.problem.problem
            elif _bluesky(check.cls) and not _federation(check.cls):
                resolved.members.append(
                    ResolvedMember(member, EntryOpener(spec.path, each), (spec.path, each))
                )
        return resolved
    if entry not in spec.sources:
        raise where.error(
            f"{path} has no entry {entry!r}; its entries: {', '.join(map(str, spec.sources))}"
        )
    node = (spec.path, entry)
    if node in chain:
        raise _cycle(chain, node, where)
    check = check_entry(spec, entry, chain)
    member = name or f"{spec.stem}/{entry}"
    if check.problem is not None:
        return Resolved(skipped={member: check.problem.problem})
    if _federation(check.cls):
        resolved = Resolved()
        resolved.add(check_members(spec, entry, chain), prefix=name)
        return resolved
    if not _bluesky(check.cls):
        raise where.error(
            f"entry {entry!r} of {path} uses driver "
            f"{spec.entry_driver(entry)!r}, which is not a catalog of Bluesky "
            "runs"
        )
    return Resolved([ResolvedMember(member, EntryOpener(spec.path, entry), node)])
