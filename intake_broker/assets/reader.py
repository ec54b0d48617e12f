"""External assets: detector data kept in files that the documents point to.

Two kinds of pointer exist in the event model:

* ``resource`` + ``datum`` (ophyd, area detectors): each event value is a datum id; the datum's
  ``datum_kwargs`` and its resource's ``spec`` / ``resource_path`` / ``resource_kwargs`` tell a
  *handler* (found by ``spec``) what to read;
* ``stream_resource`` + ``stream_datum`` (ophyd-async): events carry nothing for the key; each
  stream_datum maps a range of ``seq_num`` to a range of ``indices`` of a stream_resource,
  read by a handler found by ``mimetype``.

:class:`HandlerRegistry` finds handlers (a catalog's own, then the ``databroker.handlers`` /
``intake_broker.handlers`` / ``intake_broker.mimetypes`` entry points, then the built-ins in
:mod:`intake_broker.assets.handlers`). :class:`AssetReader` turns the pointers of one run into
arrays for the dask chunks of a stream; nothing is read until a chunk is computed.

Where assets may be read from is said by :class:`~intake_broker.assets.roots.AssetRoots`: a
local catalog reads them anywhere, a guarded or served store only under configured roots, and
an :class:`AssetReader` reads only the resources of its own run.
"""

from __future__ import annotations

import importlib
import inspect
import os
import posixpath
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intake_broker import plugins
from intake_broker.assets import handlers as asset_handlers
from intake_broker.assets.roots import AssetOutsideRoots, AssetRoots
from intake_broker.errors import BrokerError, InvalidDocument
from intake_broker.store.documents import doc_label

__all__ = [  # AssetOutsideRoots is raised from here too (and found here by error name)
    "AssetNotFound",
    "AssetOutsideRoots",
    "AssetReadError",
    "AssetReader",
    "AssetRoots",
    "HandlerRegistry",
    "RunAssets",
    "UnknownAssetSpec",
    "apply_root_map",
    "check_asset_document",
    "register_handler",
]

#: A dask chunk of asset data holds this many bytes at least (several small frames per chunk);
#: a frame at least this large gets a chunk of its own, so reading one frame reads one frame.
TARGET_CHUNK_BYTES = 1 << 19

_runtime: dict[str, Any] = {}


class UnknownAssetSpec(BrokerError, KeyError):
    """No handler is registered for a resource ``spec`` or a stream_resource ``mimetype``."""


class AssetNotFound(BrokerError, FileNotFoundError):
    """An asset file is missing or cannot be opened."""


class AssetReadError(BrokerError, OSError):
    """An asset exists but reading it failed or gave data unlike its descriptor."""


def register_handler(key: str, handler: Any, *, overwrite: bool = True) -> None:
    """Register a handler class for a resource ``spec`` or (when ``key`` holds a ``/``) a
    stream_resource ``mimetype`` for every catalog of this process."""
    if key in _runtime and not overwrite:
        raise ValueError(f"a handler for {key!r} is registered already: {_runtime[key]}")
    _runtime[key] = handler


def _load(value: Any) -> Any:
    """A handler given as a class or as a ``"module:Class"`` / ``"module.Class"`` string."""
    if not isinstance(value, str):
        return value
    module, _, name = value.partition(":") if ":" in value else value.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _entry_point_handlers() -> dict[str, Any]:
    """Handlers of installed plugins by spec and mimetype (the first group naming one wins)."""
    found: dict[str, Any] = {}
    for group in (*plugins.SPEC_GROUPS, plugins.MIMETYPE_GROUP):
        for name, point in plugins.entry_points(group).items():
            found.setdefault(name, point)
    return found


class HandlerRegistry:
    """Handlers by resource spec and by stream_resource mimetype.

    Priority: ``extra`` (a catalog's ``handler_registry``), then :func:`register_handler`, then
    installed entry points, then the built-ins. Entries load lazily; a broken plugin warns.
    """

    def __init__(self, extra: Mapping[str, Any] | None = None):
        self._sources: list[tuple[str, Mapping[str, Any]]] = [
            ("the catalog's handler_registry", dict(extra or {})),
            ("intake_broker.assets.register_handler", _runtime),
            ("entry points", _entry_point_handlers()),
            ("intake-broker's built-ins", asset_handlers.BUILTIN),
        ]
        self._loaded: dict[str, Any] = {}

    def known(self) -> list[str]:
        """Every spec and mimetype some source provides."""
        return sorted({key for _, source in self._sources for key in source})

    def __contains__(self, key: str) -> bool:
        return any(key in source for _, source in self._sources)

    def __getitem__(self, key: str) -> Any:
        if key in self._loaded:
            return self._loaded[key]
        for where, source in self._sources:
            if key not in source:
                continue
            value = source[key]
            try:
                handler = value.load() if hasattr(value, "load") else _load(value)
            except Exception as err:  # a broken plugin must not break the catalog
                warnings.warn(
                    f"handler for {key!r} from {where} ({value}) failed to load: {err}",
                    stacklevel=2,
                )
                continue
            self._loaded[key] = handler
            return handler
        what = "mimetype" if "/" in key else "spec"
        raise UnknownAssetSpec(
            f"no handler for {what} {key!r}; registered: {', '.join(self.known()) or 'none'}. "
            "More come from the 'databroker.handlers' entry points (pip install "
            "area-detector-handlers for AD_HDF5, AD_TIFF, ...), from a catalog's "
            "handler_registry, or from intake_broker.assets.register_handler()"
        )

    def as_dict(self) -> dict[str, Any]:
        """Every loadable handler by key (what event-model's ``Filler`` takes)."""
        out = {}
        for key in self.known():
            try:
                out[key] = self[key]
            except UnknownAssetSpec:
                pass
        return out


def apply_root_map(root: str, path: str, root_map: Mapping[str, str]) -> str:
    """``path`` below ``root`` relocated by ``root_map`` (``{old_root: new_root}``)."""
    root = root_map.get(root, root)
    if not root:
        return path
    if "://" in root:
        return posixpath.join(root, path)
    return os.path.join(root, path)


def _stream_uri_path(uri: str, root_map: Mapping[str, str]) -> str:
    """A stream_resource ``uri`` as a path or fsspec URL, relocated by ``root_map``."""
    path = uri.removeprefix("file://localhost").removeprefix("file://")
    for old, new in sorted(root_map.items(), key=lambda kv: -len(kv[0])):
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def asset_location(kind: str, doc: Mapping[str, Any], root_map: Mapping[str, str]) -> str:
    """Where a ``resource`` (``root`` + ``resource_path``) or ``stream_resource`` (``uri``)
    document's asset is, relocated by ``root_map``: what its handler is given."""
    if kind == "resource":
        return apply_root_map(doc.get("root") or "", doc["resource_path"], root_map)
    return _stream_uri_path(doc["uri"], root_map)


def check_asset_document(kind: str, doc: Any, roots: AssetRoots, store: Any = None) -> None:
    """Refuse a ``resource`` / ``stream_resource`` whose asset lies outside ``roots`` (or
    whose handler parameters name a URL or a ``..`` path): what a guarded or served store
    checks at insert. Roots naming start keys are expanded for the run the document names
    (its start looked up in ``store``). Other documents, and everything when ``roots`` is
    unconfined, pass."""
    if not roots.confined or kind not in ("resource", "stream_resource"):
        return
    what = doc_label(kind, doc)
    if not isinstance(doc, Mapping):
        return  # not a document: validation refuses it
    if roots.templated:
        start = None
        if store is not None and isinstance(doc.get("run_start"), str):
            try:
                start = store.run(doc["run_start"]).start
            except KeyError:
                start = None  # no run (or not one the writer sees): only fixed roots
        roots = roots.for_run(start)
    try:
        location = asset_location(kind, doc, roots.root_map)
    except (KeyError, TypeError, AttributeError) as err:
        field_ = "resource_path and root" if kind == "resource" else "uri"
        raise InvalidDocument(
            f"{what} has no usable {field_} ({type(err).__name__}: {err}); a {kind} must "
            "name its asset with strings"
        ) from None
    roots.check(location, what)
    roots.check_parameters(doc.get("resource_kwargs" if kind == "resource" else "parameters"), what)


#: Handler arguments the reader sets itself; a document cannot choose them when confined.
_RESERVED = ("storage_options", "asset_roots")


def _construct(
    cls: Any,
    path: str,
    kwargs: Mapping[str, Any],
    storage_options: Mapping[str, Any],
    roots: AssetRoots | None = None,
) -> Any:
    kwargs = dict(kwargs)
    roots = roots or AssetRoots.anywhere()
    if roots.confined:  # e.g. an endpoint_url a client chose: never
        for key in _RESERVED:
            kwargs.pop(key, None)
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    if storage_options and "storage_options" in parameters:
        kwargs["storage_options"] = dict(storage_options)
    if "asset_roots" in parameters:
        kwargs["asset_roots"] = roots
    return cls(path, **kwargs)


@dataclass
class RunAssets:
    """The asset documents of one run, indexed."""

    resources: dict[str, dict] = field(default_factory=dict)
    datums: dict[str, tuple[str, dict]] = field(default_factory=dict)
    stream_resources: dict[str, dict] = field(default_factory=dict)
    stream_datums: list[dict] = field(default_factory=list)

    @classmethod
    def from_documents(cls, docs) -> RunAssets:
        assets = cls()
        for kind, doc in docs:
            if kind == "resource":
                assets.resources[doc["uid"]] = doc
            elif kind == "stream_resource":
                assets.stream_resources[doc["uid"]] = doc
            elif kind == "stream_datum":
                assets.stream_datums.append(doc)
            elif kind == "datum_page":
                _index_datum_page(assets.datums, doc)
        return assets


def _index_datum_page(datums: dict[str, tuple[str, dict]], page: Mapping[str, Any]) -> None:
    """Add ``datum id -> (resource uid, datum_kwargs)`` of every datum of a datum page."""
    kwargs = page["datum_kwargs"]
    keys = list(kwargs)
    resource = page["resource"]
    for i, datum_id in enumerate(page["datum_id"]):
        datums[datum_id] = (resource, {k: kwargs[k][i] for k in keys})


class AssetReader:
    """Reads the external data of one run: what a stream's asset chunks call.

    Parameters
    ----------
    store, run_uid
        Where the run's documents are.
    handler_registry : dict, optional
        Extra handlers by spec / mimetype (a catalog's ``handler_registry``).
    root_map : dict, optional
        ``{old_root: new_root}`` relocations of asset files.
    storage_options : dict, optional
        fsspec options given to built-in handlers that open URLs (e.g. an S3 endpoint).
    asset_roots : AssetRoots, str or list of str, optional
        Where assets may be read from (see :mod:`intake_broker.assets.roots`); the targets of
        ``root_map`` are added. None: the store's ``asset_roots`` (a
        :class:`~intake_broker.access.GuardedStore` is confined), else anywhere.
    """

    def __init__(
        self,
        store,
        run_uid: str,
        *,
        handler_registry: Mapping | None = None,
        root_map: Mapping[str, str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        asset_roots: Any = None,
    ):
        self.store = store
        self.run_uid = run_uid
        self.handler_registry = dict(handler_registry or {})
        self.root_map = dict(root_map or {})
        self.storage_options = dict(storage_options or {})
        if asset_roots is None:
            asset_roots = getattr(store, "asset_roots", None)
        roots = AssetRoots.anywhere() if asset_roots is None else AssetRoots.of(asset_roots)
        self.asset_roots = roots.with_root_map(self.root_map)
        self._reset()

    def _reset(self) -> None:
        self._assets: RunAssets | None = None
        self._datums: dict[str, tuple[str, dict]] | None = None
        self._resources: dict[str, dict] = {}
        self._handlers: dict[str, Any] = {}
        self._registry_: HandlerRegistry | None = None
        self._roots: AssetRoots | None = None
        self._lock = threading.Lock()

    @property
    def _registry(self) -> HandlerRegistry:
        if self._registry_ is None:  # made on first use: opening a run scans no entry points
            self._registry_ = HandlerRegistry(self.handler_registry)
        return self._registry_

    def __getstate__(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "store",
                "run_uid",
                "handler_registry",
                "root_map",
                "storage_options",
                "asset_roots",
            )
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def assets(self) -> RunAssets:
        """Every asset document of the run (what stream_resource reads use)."""
        with self._lock:
            if self._assets is None:
                self._assets = self.store.run_assets(self.run_uid)
            return self._assets

    @property
    def datums(self) -> dict[str, tuple[str, dict]]:
        """``datum id -> (resource uid, datum_kwargs)``, from the store's datum pages only
        (stores index them; a store's ``run_assets`` may have to go through every document)."""
        with self._lock:
            if self._datums is None:
                if self._assets is not None:
                    self._datums = self._assets.datums
                else:
                    datums: dict[str, tuple[str, dict]] = {}
                    for page in self.store.datum_pages(self.run_uid):
                        _index_datum_page(datums, page)
                    self._datums = datums
            return self._datums

    def _resource(self, uid: str, key: str) -> dict:
        """The resource document ``uid`` (resource/datum assets)."""
        with self._lock:
            if self._assets is not None and uid in self._assets.resources:
                return self._assets.resources[uid]
            if uid in self._resources:
                return self._resources[uid]
        try:
            doc = self.store.resource(self.run_uid, uid)
        except KeyError:
            doc = None
        if doc is None or doc.get("run_start", self.run_uid) not in (None, self.run_uid):
            # a datum of this run may name only this run's resources (or an old one of none)
            raise AssetReadError(
                f"resource {uid!r} is not among the run's resources; {self._where(key)}"
            )
        with self._lock:
            self._resources[uid] = doc
        return doc

    # -- handlers -------------------------------------------------------------------------

    def _where(self, key: str) -> str:
        return (
            f"run {self.run_uid!r}, data key {key!r}, root_map in effect: {self.root_map or '{}'}"
        )

    def _handler(self, uid: str, key: str, stream: bool = False) -> Any:
        """The handler of resource ``uid`` (of stream_resource ``uid`` if ``stream``)."""
        with self._lock:
            if uid in self._handlers:
                return self._handlers[uid]
        kind = "stream_resource" if stream else "resource"
        if not stream:
            doc = self._resource(uid, key)
            cls = self._registry[doc["spec"]]
            kwargs = doc.get("resource_kwargs", {})
        else:
            doc = self.assets.stream_resources[uid]
            cls = self._registry[doc["mimetype"]]
            kwargs = doc.get("parameters", {})
        if doc.get("run_start", self.run_uid) not in (None, self.run_uid):
            raise AssetReadError(  # however the store found it, it is another run's
                f"{kind} {uid!r} is not among the run's resources; {self._where(key)}"
            )
        try:
            path = asset_location(kind, doc, self.root_map)
        except (KeyError, TypeError, AttributeError) as err:
            raise AssetReadError(
                f"{kind} {uid!r} names no usable path ({type(err).__name__}: {err}); "
                f"{self._where(key)}"
            ) from None
        what = f"{kind} {uid!r} of {self._where(key)}"
        roots = self._run_roots()
        path = roots.check(path, what)  # again at read: whatever was stored
        roots.check_parameters(kwargs, what)
        try:
            handler = _construct(cls, path, kwargs, self.storage_options, roots)
        except AssetOutsideRoots:
            raise
        except FileNotFoundError as err:
            raise AssetNotFound(
                f"asset file {path!r} is missing ({err}); {self._where(key)}. "
                "If the files moved, map their old root to the new one with "
                "root_map"
            ) from err
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise AssetReadError(
                f"cannot open asset {path!r} ({type(err).__name__}: {err}); {self._where(key)}"
            ) from err
        with self._lock:
            self._handlers[uid] = handler
        return handler

    def _run_roots(self) -> AssetRoots:
        """The asset roots for this run (roots naming start keys expanded with its start)."""
        if not self.asset_roots.templated:
            return self.asset_roots
        with self._lock:
            if self._roots is None:
                self._roots = self.asset_roots.for_run(self.store.run(self.run_uid).start)
            return self._roots

    def _call(self, key: str, func, *args, **kwargs) -> np.ndarray:
        try:
            return np.asarray(func(*args, **kwargs))
        except AssetOutsideRoots:
            raise
        except FileNotFoundError as err:
            raise AssetNotFound(f"asset file missing: {err}; {self._where(key)}") from err
        except (OSError, KeyError, IndexError, TypeError, ValueError) as err:
            raise AssetReadError(
                f"reading an asset failed ({type(err).__name__}: {err}); {self._where(key)}"
            ) from err

    # -- reading --------------------------------------------------------------------------

    def read_datums(
        self, key: str, datum_ids: Sequence[str], dtype: np.dtype, shape: tuple[int, ...]
    ) -> np.ndarray:
        """The frames of ``datum_ids`` (resource/datum assets) as one array.

        Runs of consecutive ``point_number`` s of one resource are read in one call when the
        handler offers ``read_points(first, stop)`` (the built-in AD_HDF5 handler does).
        """
        groups = self._datum_groups(key, datum_ids)
        if len(groups) == 1 and groups[0][1] is not None:
            handler, first, rows = groups[0][0], groups[0][1], len(datum_ids)
            frames = self._call(key, handler.read_points, first, first + rows)
            return _fit(frames, (rows, *shape), key).astype(dtype, copy=False)
        out = np.empty((len(datum_ids), *shape), dtype=dtype)
        row = 0
        for handler, first, calls in groups:
            if first is not None:
                frames = self._call(key, handler.read_points, first, first + len(calls))
                out[row : row + len(calls)] = _fit(frames, (len(calls), *shape), key)
            else:
                for i, kwargs in enumerate(calls):
                    out[row + i] = _fit(self._call(key, handler, **kwargs), shape, key)
            row += len(calls)
        return out

    def _datum_groups(self, key: str, datum_ids: Sequence[str]) -> list[tuple]:
        """``(handler, first point or None, [datum_kwargs...])`` for runs of datums."""
        datums = self.datums
        groups: list[tuple] = []
        for datum_id in datum_ids:
            try:
                resource_uid, kwargs = datums[datum_id]
            except KeyError:
                raise AssetReadError(
                    f"datum {datum_id!r} is not among the run's datums; {self._where(key)}"
                ) from None
            handler = self._handler(resource_uid, key)
            point = kwargs.get("point_number") if set(kwargs) == {"point_number"} else None
            bulk = point is not None and hasattr(handler, "read_points")
            if (
                groups
                and bulk
                and groups[-1][0] is handler
                and groups[-1][1] is not None
                and groups[-1][1] + len(groups[-1][2]) == point
            ):
                groups[-1][2].append(kwargs)
            else:
                groups.append((handler, point if bulk else None, [kwargs]))
        return groups

    def read_stream(
        self,
        key: str,
        descriptor_uid: str,
        seq_range: tuple[int, int],
        dtype: np.dtype,
        shape: tuple[int, ...],
    ) -> np.ndarray:
        """Rows ``seq_range`` of a stream_resource-backed key as one array."""
        lo, hi = seq_range
        out = np.empty((hi - lo, *shape), dtype=dtype)
        filled = np.zeros(hi - lo, dtype=bool)
        for sd in self.assets.stream_datums:
            resource = self.assets.stream_resources.get(sd["stream_resource"])
            if (
                sd.get("descriptor") != descriptor_uid
                or resource is None
                or resource["data_key"] != key
            ):
                continue
            first, last = max(lo, sd["seq_nums"]["start"]), min(hi, sd["seq_nums"]["stop"])
            if first >= last:
                continue
            offset = sd["indices"]["start"] + first - sd["seq_nums"]["start"]
            handler = self._handler(resource["uid"], key, stream=True)
            rows = self._call(key, handler.read, offset, offset + last - first, shape)
            out[first - lo : last - lo] = _fit(rows, (last - first, *shape), key)
            filled[first - lo : last - lo] = True
        if not filled.all():
            missing = lo + int(np.flatnonzero(~filled)[0])
            raise AssetReadError(f"no stream_datum covers seq_num {missing}; {self._where(key)}")
        return out


def _fit(array: np.ndarray, shape: tuple[int, ...], key: str) -> np.ndarray:
    if array.shape == shape:
        return array
    if array.size == int(np.prod(shape)):
        return array.reshape(shape)
    raise AssetReadError(
        f"data key {key!r}: the asset holds shape {list(array.shape)} but the "
        f"descriptor declares {list(shape)}"
    )


def frames_per_chunk(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """How many events of a key share a dask chunk (one for large frames)."""
    frame = max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    return max(1, TARGET_CHUNK_BYTES // frame)
