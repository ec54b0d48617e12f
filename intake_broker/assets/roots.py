"""Where external assets may be read from: asset paths confined to configured roots.

A ``resource`` names a file by ``root`` + ``resource_path``, a ``stream_resource`` by ``uri``;
both are written by whoever inserts the documents. A store that others write into (a served
store, a :class:`~intake_broker.access.GuardedStore`) must therefore not open whatever a
document names: that would read other proposals' frames or any server-side file, and make the
server fetch URLs a client chose. :class:`AssetRoots` says where assets may be:

* ``paths``: local folders; a path is allowed when, with ``..`` and every symbolic link
  resolved (``os.path.realpath``), it lies inside one of them. Handlers are given the resolved
  path, so a link changed after the check is not followed;
* ``urls``: fsspec URL prefixes (``s3://bucket/detectors/``); a URL is allowed when it starts
  with one, has no ``.``/``..`` segment (also percent-encoded) and no ``::`` chaining;
* the targets of the catalog's ``root_map``, added by :meth:`AssetRoots.with_root_map`.

A root may name start-document keys: ``/data/{proposal_id}`` allows, for each run, only the
folders of the proposals its start names (:meth:`AssetRoots.for_run`); since a guarded writer
may only label runs with their own proposals, a user cannot point their run at the files of
another proposal even when all proposals share one mount.

The rule for defaults (see the README's "Assets" section):

* a local catalog over a store (a scientist's own, unguarded) reads assets wherever the
  RunEngine wrote them: :meth:`AssetRoots.anywhere`, unless the catalog is given
  ``asset_roots``;
* a :class:`~intake_broker.access.GuardedStore` and a served store (``intake-broker serve``)
  are confined: with no roots configured they read no external asset at all. Configure them
  with the catalog argument ``asset_roots`` (YAML ``args: {asset_roots: [...]}``), the
  ``GuardedStore(..., asset_roots=...)`` argument, ``create_app(..., asset_roots=...)`` /
  ``serve(..., asset_roots=...)``, or a ``root_map`` whose targets are the roots.

A resource outside the roots is refused when it is inserted (where the guard or the service
knows the roots) and again when it is read (by :class:`~intake_broker.assets.AssetReader`),
with :class:`AssetOutsideRoots`.
"""

from __future__ import annotations

import itertools
import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from intake_broker.errors import BrokerError

#: How to allow more, for the error messages.
HOW_TO_CONFIGURE = (
    "allow a folder or URL prefix with the catalog argument asset_roots (YAML: "
    "args: {asset_roots: [/data/detectors, 's3://bucket/detectors/']}), "
    "GuardedStore(..., asset_roots=...), `intake-broker serve --asset-root`, or map the "
    "files' old root to an allowed one with root_map"
)


class AssetOutsideRoots(BrokerError, PermissionError):
    """An asset path or URL lies outside the roots assets may be read from (see
    :class:`AssetRoots`)."""


def _local_path(location: str) -> str | None:
    """The local path of ``location`` (a path or a ``file://`` URL); None for other URLs."""
    if location.lower().startswith("file://"):
        rest = location[len("file://") :]
        if rest.lower().startswith("localhost/"):
            rest = rest[len("localhost") :]
        elif not rest.startswith("/"):
            return None  # file://otherhost/...: not on this machine
        return unquote(rest)
    if "://" in location:
        return None
    return location


def _resolved(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


def _split_url(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    return scheme.lower(), rest


def _fields(root: str) -> list[str]:
    """The start-document keys a root names (``{proposal_id}``); only plain keys."""
    found = []
    for _, name, spec, conversion in string.Formatter().parse(root):
        if name is None:
            continue
        if not name.replace("_", "a").replace("-", "a").isalnum() or spec or conversion:
            raise ValueError(
                f"asset root {root!r} may name start-document keys as {{key}} only, not {name!r}"
            )
        found.append(name)
    return found


def _safe_label(value: Any) -> str | None:
    """A start value usable as one path segment (None: not usable)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    bad = text in ("", ".", "..") or any(c in text for c in "/\\\0:") or len(text) > 255
    return None if bad else text


def _dotted(url: str) -> bool:
    """Whether a URL has a ``.``/``..`` segment or a backslash, as written or decoded."""
    seen = url
    for _ in range(3):  # double and triple encodings too
        segments = seen.replace("\\", "/").split("/")
        if "\\" in seen or any(s in (".", "..") for s in segments):
            return True
        decoded = unquote(seen)
        if decoded == seen:
            return False
        seen = decoded
    return True  # still encoded after three rounds: refuse rather than guess


@dataclass(frozen=True)
class AssetRoots:
    """The folders and URL prefixes external assets may be read from.

    Parameters
    ----------
    paths : sequence of str
        Local folders (resolved, symbolic links included, when the roots are made).
    urls : sequence of str
        fsspec URL prefixes such as ``s3://bucket/detectors/`` (a prefix is matched up to a
        ``/``: ``s3://bucket/det`` allows ``s3://bucket/det/x``, not ``s3://bucket/detx``).
    confined : bool
        False: any path or URL is allowed (:meth:`anywhere`, a local catalog's default).
    root_map : dict
        The ``{old_root: new_root}`` relocation applied before checking (see
        :meth:`with_root_map`).
    """

    paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    confined: bool = True
    root_map: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        paths, urls = [], []
        for entry in (*self.paths, *self.urls):
            if not isinstance(entry, str | os.PathLike) or not str(entry):
                raise ValueError(f"an asset root must be a folder or a URL prefix, not {entry!r}")
            entry = os.fspath(entry)
            local = _local_path(entry)
            if local is not None and _fields(local):
                paths.append(os.path.abspath(local))  # resolved when expanded (for_run)
                continue
            if local is not None:
                paths.append(_resolved(local))
                continue
            _fields(entry)
            scheme, rest = _split_url(entry)
            if not rest or "::" in entry or _dotted(rest):
                raise ValueError(
                    f"asset root {entry!r} is not a plain URL prefix such as 's3://bucket/data/'"
                )
            urls.append(f"{scheme}://{rest if rest.endswith('/') else rest + '/'}")
        object.__setattr__(self, "paths", tuple(dict.fromkeys(paths)))
        object.__setattr__(self, "urls", tuple(dict.fromkeys(urls)))
        object.__setattr__(self, "root_map", dict(self.root_map or {}))

    @classmethod
    def anywhere(cls) -> AssetRoots:
        """Roots allowing every path and URL: a scientist's own local catalog."""
        return cls(confined=False)

    @classmethod
    def of(cls, spec: Any) -> AssetRoots:
        """Roots from a configuration value: an :class:`AssetRoots`, None (confined, nothing
        allowed), a folder or URL prefix, or a list of them."""
        if isinstance(spec, AssetRoots):
            return spec
        if spec is None:
            return cls()
        if isinstance(spec, str | os.PathLike):
            spec = [spec]
        if not isinstance(spec, Iterable) or isinstance(spec, Mapping | bytes):
            raise ValueError(
                f"asset_roots must be a folder, a URL prefix or a list of them, not {spec!r}"
            )
        return cls(paths=tuple(spec))

    def merged(self, other: AssetRoots) -> AssetRoots:
        """Both sets of roots (confined unless both are unconfined)."""
        if not self.confined and not other.confined:
            return self
        return AssetRoots(
            paths=(*self.paths, *other.paths),
            urls=(*self.urls, *other.urls),
            root_map={**self.root_map, **other.root_map},
        )

    def with_root_map(self, root_map: Mapping[str, str] | None) -> AssetRoots:
        """These roots, plus the targets of ``root_map`` (relocated files are allowed where
        they were relocated to), with the mapping recorded for :func:`check_asset_document`."""
        if not self.confined or not root_map:
            return self
        targets = [t for t in root_map.values() if isinstance(t, str) and t]
        return AssetRoots(
            paths=(*self.paths, *targets),
            urls=self.urls,
            root_map={**self.root_map, **root_map},
        )

    @property
    def templated(self) -> bool:
        """Whether some root names start-document keys (see :meth:`for_run`)."""
        return any("{" in root for root in (*self.paths, *self.urls))

    def for_run(self, start: Mapping[str, Any] | None) -> AssetRoots:
        """These roots for the run of ``start``: each root naming start keys becomes one root
        per value of them (``/data/{proposal_id}`` with ``proposal_id: ["p-A", "p-B"]``: both
        folders); a root whose key is missing or not one plain path segment is dropped."""
        if not self.confined or not self.templated:
            return self
        start = start or {}
        out: dict[str, list[str]] = {"paths": [], "urls": []}
        for group, roots in (("paths", self.paths), ("urls", self.urls)):
            for root in roots:
                keys = _fields(root)
                if not keys:
                    out[group].append(root)
                    continue
                choices = []
                for key in keys:
                    value = start.get(key)
                    labels = [
                        _safe_label(v) for v in (value if isinstance(value, list) else [value])
                    ]
                    choices.append([v for v in labels if v is not None])
                for combo in itertools.product(*choices):
                    out[group].append(root.format(**dict(zip(keys, combo, strict=True))))
        return AssetRoots(tuple(out["paths"]), tuple(out["urls"]), root_map=self.root_map)

    def describe(self) -> str:
        """The allowed roots, for messages."""
        if not self.confined:
            return "any path or URL"
        allowed = [*self.paths, *self.urls]
        return ", ".join(repr(a) for a in allowed) if allowed else "none configured"

    def _refuse(self, location: str, what: str, why: str) -> AssetOutsideRoots:
        return AssetOutsideRoots(
            f"{what} names {str(location)[:200]!r}, which {why}; assets are read only under "
            f"the configured asset roots ({self.describe()}). To read it, {HOW_TO_CONFIGURE}"
        )

    def check(self, location: Any, what: str = "an asset") -> str:
        """``location`` (a path or URL) if it lies under these roots, as it must be opened
        (a local path fully resolved); else raise :class:`AssetOutsideRoots`."""
        if not self.confined:
            return location
        if not isinstance(location, str) or not location:
            raise self._refuse(str(location), what, "is not a path or URL")
        if "\0" in location or "::" in location:
            raise self._refuse(location, what, "holds a NUL character or fsspec '::' chaining")
        local = _local_path(location)
        if local is not None:
            try:
                real = _resolved(local)
            except (OSError, ValueError):
                raise self._refuse(location, what, "cannot be resolved") from None
            for root in self.paths:
                if "{" in root:
                    continue  # only as expanded for a run (for_run)
                if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                    return real
            raise self._refuse(location, what, "resolves outside them")
        scheme, rest = _split_url(location)
        if _dotted(rest):
            raise self._refuse(location, what, "has '.' or '..' segments")
        normal = f"{scheme}://{rest}"
        for prefix in self.urls:
            if "{" in prefix:
                continue
            if normal.startswith(prefix) or normal + "/" == prefix:
                return location
        raise self._refuse(location, what, "is not under an allowed URL prefix")

    def check_parameters(self, parameters: Any, what: str = "an asset") -> None:
        """Refuse handler parameters (``resource_kwargs``, ``parameters``) naming a URL, a
        ``..`` path or ``::`` chaining outside these roots: handlers may open what they name.
        (Absolute paths are allowed: an HDF5 dataset is one; the built-in handlers check
        every file they open, and so should other handlers, which are given the roots as
        ``asset_roots`` when their constructor takes it.)"""
        if not self.confined:
            return
        for key, value in _strings(parameters):
            if value is None:
                raise self._refuse("...", f"{what} (parameter {key!r})", "is nested too deeply")
            if "://" in value or "::" in value:
                self.check(value, f"{what} (parameter {key!r})")
            elif ".." in value.replace("\\", "/").split("/"):
                raise self._refuse(value, f"{what} (parameter {key!r})", "has '..' segments")


def _strings(value: Any, key: str = "", depth: int = 0) -> Iterable[tuple[str, str | None]]:
    """Every string inside ``value`` (dicts and lists) with its key; None for a value nested
    more than 8 levels deep."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping | list | tuple) and depth >= 8:
        yield key, None
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, str(k), depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, key, depth + 1)
