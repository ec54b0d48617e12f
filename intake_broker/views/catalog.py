"""Catalogs: a store's runs as an intake catalog, and each run as a catalog of its streams.

``BrokerCatalog`` keeps the databroker 1.2 notebook API: ``cat[-1]`` (newest), ``cat[uid]``,
``cat[uid_prefix]``, ``cat[scan_id]``, ``len(cat)``, iteration newest-first and
``cat.search(query)`` returning a catalog. Every read goes through :meth:`BrokerCatalog._runs`,
where the catalog's filter (a search, and later an access policy) is applied: one place.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from intake.catalog import Catalog

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.console import plural
from intake_broker.errors import (
    AmbiguousUID,
    NotSupported,
    RunIndexError,
    RunNotFound,
    StreamNotFound,
)
from intake_broker.queries import Eq, PartialUID, Query, as_query
from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord
from intake_broker.views.filling import fill_documents  # also registers coerce="delayed"
from intake_broker.views.stream import Stream

#: Runs oldest first: the order positions in a slice (``cat[-3:]``) count in.
OLDEST_FIRST: tuple[tuple[str, int], ...] = (("time", 1),)
#: The most runs one slice gives at once.
MAX_SLICE = 10_000

_PAGE = 500
_HEX = set(string.hexdigits + "-")


def _and(a: Query | None, b: Query | None) -> Query | None:
    if a is None:
        return b
    return a if b is None else a & b


class BrokerCatalog(Catalog):
    """The runs of a :class:`~intake_broker.store.DocumentStore` as an intake catalog.

    Parameters
    ----------
    store : DocumentStore
        Where the documents are.
    query : Query, dict or str, optional
        Only runs matching this are in the catalog (what ``search`` narrows): a query object,
        a MongoDB-style dict, a text in the query language or an encoded query (JSON).
    handler_registry : dict, optional
        Asset handlers by resource spec, added to the installed ones (``databroker.handlers``
        entry points).
    root_map : dict, optional
        Relocation of asset roots: ``{old_root: new_root}``.
    asset_storage_options : dict, optional
        fsspec options for opening asset files at URLs (e.g. an S3 ``endpoint_url``).
    annotations : str, optional
        Where to keep annotations of these runs when the store cannot (read-only files, a
        MongoDB you may not write): ``"sqlite:///~/notes.db"``, ``"postgresql://..."``, a
        service URL, or ``"memory"`` (see :mod:`intake_broker.store.annotations`).
    transforms : dict, optional
        databroker's document patches: ``{"start"|"stop"|"resource"|"descriptor": function}``
        (functions or ``"package.module.function"`` import paths), each given a document of
        its kind as it is read and returning it fixed; searches match the stored documents
        (see :mod:`intake_broker.store.transforms`).
    """

    container = "catalog"
    version = "0.1.0"
    #: Whether the catalog merges other catalogs (a federation's members may be federations).
    merges_members: ClassVar[bool] = False
    #: Whether the driver reads ``${VARIABLES}`` and relative paths of its YAML entry itself
    #: (:class:`~intake_broker.catalogs.entries.EntryArguments`), the same way under plain
    #: ``intake.open_catalog`` and ``intake_broker.open_catalog``.
    reads_yaml_arguments: ClassVar[bool] = False
    partition_access = False

    def __init__(
        self,
        store: DocumentStore,
        *,
        query: Query | Mapping | None = None,
        handler_registry: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        asset_storage_options: Mapping[str, Any] | None = None,
        name: str | None = None,
        annotations: str | None = None,
        transforms: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        #: the YAML entry this catalog was opened from (a driver sets it before this runs)
        self._yaml: EntryArguments = self.__dict__.get("_yaml") or EntryArguments.of(
            kwargs.get("metadata")
        )
        if transforms:  # databroker's document patches, applied as documents are read
            from intake_broker.store.transforms import TransformedStore

            store = TransformedStore(store, transforms)
        if annotations is not None:
            from intake_broker.store.annotations import attach_annotations

            if isinstance(annotations, str) and annotations.startswith("sqlite"):
                # sqlite:///notes.db in a YAML entry is beside the YAML file, as every path is
                annotations = self._yaml.path(annotations, "annotations")
            store = attach_annotations(store, annotations)
        self._store = store
        self._query = _as_catalog_query(query)
        self._assets = {
            "handler_registry": dict(handler_registry or {}),
            "root_map": dict(root_map or {}),
            "storage_options": dict(asset_storage_options or {}),
        }
        super().__init__(name=name or "bluesky", **kwargs)

    # -- the one place where runs are read ------------------------------------------------

    @property
    def store(self) -> DocumentStore:
        """The store behind this catalog."""
        return self._store

    @property
    def asset_options(self) -> dict[str, Any]:
        """``handler_registry``, ``root_map`` and ``storage_options`` for this catalog's assets."""
        return dict(self._assets)

    @property
    def query(self) -> Query | None:
        """The filter every run of this catalog matches (None: every run of the store)."""
        return self._query

    def _runs(self, query: Query | None = None, **kwargs: Any) -> list[RunRecord]:
        return self._store.runs(_and(self._query, query), **kwargs)

    def _make_run(self, record: RunRecord) -> Run:
        return Run(
            self._store,
            record,
            assets=self._assets,
            timezone=self.metadata.get("timezone"),
            catalog=self,
        )

    # -- lookups --------------------------------------------------------------------------

    def _lookup(self, key: Any) -> RunRecord:
        if isinstance(key, bool):
            raise RunNotFound(
                f"{key!r} is not a run key; use a uid, a uid prefix, a scan_id or a negative index"
            )
        if isinstance(key, int) or type(key).__name__.startswith("int"):
            key = int(key)
            if key < 0:
                found = self._runs(skip=-key - 1, limit=1)
                if not found:
                    raise RunIndexError(
                        f"index {key} is out of range: this catalog has {plural(len(self), 'run')}"
                    )
                return found[0]
            found = self._runs(Eq("scan_id", key), limit=1)
            if not found:
                raise RunNotFound(f"no run with scan_id {key} in this catalog")
            return found[0]
        if not isinstance(key, str):
            raise RunNotFound(
                f"{key!r} is not a run key; use a uid, a uid prefix, a scan_id or a negative index"
            )
        if self._query is None:
            try:
                return self._store.run(key)
            except RunNotFound:
                pass
        else:
            found = self._runs(Eq("uid", key), limit=1)
            if found:
                return found[0]
        if key and set(key) <= _HEX:
            found = self._runs(PartialUID(key), limit=11, sort=(("uid", 1),))
            if len(found) == 1:
                return found[0]
            if found:
                raise AmbiguousUID(key, [r.uid for r in found])
        raise RunNotFound(f"no run with uid or uid prefix {key!r} in this catalog")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return self._slice(key)
        return self._make_run(self._lookup(key))

    def _slice(self, key: slice) -> list[Run]:
        """``cat[-3:]``: runs by position in time order, oldest first (``cat[-1]`` is the
        newest, so ``cat[-3:]`` is ``[cat[-3], cat[-2], cat[-1]]``)."""
        for part in (key.start, key.stop, key.step):
            if part is not None and (isinstance(part, bool) or not isinstance(part, int)):
                raise TypeError(f"slice positions are integers, got {key!r}")
        if key.step == 0:
            raise ValueError("slice step cannot be zero")
        start, stop, step = key.indices(len(self))
        positions = range(start, stop, step)
        if len(positions) > MAX_SLICE:
            raise ValueError(
                f"a slice gives at most {MAX_SLICE} runs, this one {len(positions)}; "
                "iterate the catalog (cat.values()) instead"
            )
        if not positions:
            return []
        lo, hi = min(positions), max(positions)
        page = self._runs(sort=OLDEST_FIRST, skip=lo, limit=hi - lo + 1)
        return [self._make_run(page[p - lo]) for p in positions if p - lo < len(page)]

    @property
    def v1(self) -> Any:
        """This catalog through databroker's v1 API: ``db = cat.v1; db[-1].table()``
        (:class:`intake_broker.compat.Broker`)."""
        # compat sits above the views: loaded by name, when asked for
        return importlib.import_module("intake_broker.compat.v1").Broker(self)

    @property
    def v2(self) -> BrokerCatalog:
        """This catalog (``v1`` and ``v2`` are symmetric, as in databroker)."""
        return self

    def __contains__(self, key: Any) -> bool:
        try:
            self._lookup(key)
        except KeyError:
            return False
        return True

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_") or not re.fullmatch(r"[0-9a-fA-F-]+", item):
            raise AttributeError(item)
        try:
            return self[item]
        except KeyError as err:
            raise AttributeError(item) from err

    def __len__(self) -> int:
        return self._store.count(self._query)

    def __iter__(self) -> Iterator[str]:
        for record in self._records():
            yield record.uid

    def _records(self) -> Iterator[RunRecord]:
        skip = 0
        while True:
            page = self._runs(sort=NEWEST_FIRST, skip=skip, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            skip += _PAGE

    def keys(self) -> Iterator[str]:
        return iter(self)

    def values(self) -> Iterator[Run]:
        return (self._make_run(r) for r in self._records())

    def items(self) -> Iterator[tuple[str, Run]]:
        return ((r.uid, self._make_run(r)) for r in self._records())

    def _get_entries(self) -> Mapping:
        return _LazyRuns(self)

    def _ipython_key_completions_(self) -> list[str]:
        return [r.uid for r in self._runs(limit=50)]

    def __dir__(self) -> list[str]:
        return list(self.__dict__) + [a for a in dir(type(self)) if not a.startswith("__")]

    def __repr__(self) -> str:
        try:
            runs = plural(len(self), "run")
        except Exception as err:  # a store that does not answer: say so, do not fail a repr
            runs = f"runs unknown ({type(err).__name__}: {str(err)[:80]})"
        query = f", search {_short(self._query)}" if self._query is not None else ""
        return f"<{type(self).__name__} {self.name!r}: {runs}{query}, {self._where()}>"

    def _where(self) -> str:
        from intake_broker.views.describe import store_location

        where = store_location(self._store)
        if self._yaml.file is not None:
            where += f", entry {self._yaml.entry!r} of {self._yaml.file}"
        return where

    # -- intake idioms ----------------------------------------------------------------------

    def _entry_spec(self) -> dict[str, Any]:
        """This catalog as an intake YAML entry: driver, description, args, metadata, with
        ``${VARIABLES}`` as written in its file and credentials redacted."""
        import inspect
        import json

        cached = self.__dict__.get("_entry_spec_cache")
        if cached is not None:
            return cached
        from intake_broker.views.describe import driver_name, json_safe, redact

        yaml = self._yaml
        if yaml.raw_args or yaml.driver:
            args = dict(yaml.raw_args)
            driver = yaml.driver or driver_name(type(self))
        else:
            driver = driver_name(type(self))
            captured = dict(getattr(self, "_captured_init_kwargs", None) or {})
            positional = getattr(self, "_captured_init_args", None) or ()
            names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
            captured.update(zip(names, positional, strict=False))
            args = {
                k: v
                for k, v in captured.items()
                if k not in ("metadata", "query", "name") and _plain(v)
            }
        if self._query is not None:
            args["query"] = json.dumps(self._query.encode(), sort_keys=True)
        metadata = {
            k: v for k, v in (self.metadata or {}).items() if k not in ("catalog_dir", "members")
        }
        spec: dict[str, Any] = {"driver": driver}
        description = self.description or yaml.description
        if description:
            spec["description"] = description
        spec["args"] = redact(json_safe(args))
        if metadata:
            spec["metadata"] = redact(json_safe(metadata))
        self.__dict__["_entry_spec_cache"] = spec
        return spec

    def describe(self) -> dict[str, Any]:
        """What this catalog is (intake's ``describe``): name, container, driver, args (as in
        its YAML entry, credentials redacted), metadata, store and where it was opened from."""
        spec = self._entry_spec()
        return {
            "name": self.name,
            "container": "catalog",
            "driver": spec["driver"],
            "plugin": spec["driver"],
            "description": spec.get("description"),
            "args": spec["args"],
            "metadata": spec.get("metadata", {}),
            "store": self._where(),
            "user_parameters": [],
        }

    def serialize(self) -> str:
        """This catalog as a YAML catalog file with one entry, loadable by
        ``intake.open_catalog`` (the same driver and arguments, a search as its ``query``).

        The runs are not listed: they are in the store, which the entry names.
        """
        from intake_broker.views.describe import dump_yaml

        return dump_yaml({"sources": {self.name: self._entry_spec()}})

    yaml = serialize  # intake's "YAML block referring to this catalog": the same entry here

    def walk(self, sofar: dict | None = None, prefix: list | None = None, depth: int = 2) -> dict:
        """Every run (``depth=1``), and every stream as ``"<uid>.<stream>"`` (``depth=2``,
        intake's default), newest first. Reads each run's descriptors at depth 2."""
        out: dict[str, Any] = {} if sofar is None else sofar
        prefix = list(prefix or [])
        if depth < 1:
            return out
        for uid, run in self.items():
            out[".".join([*prefix, uid])] = run
            if depth > 1:
                run.walk(out, [*prefix, uid], depth - 1)
        return out

    def discover(self) -> dict[str, Any]:
        """intake's ``discover``: a catalog of ``shape[0]`` runs, with its metadata."""
        from intake_broker.views.describe import json_safe

        runs = len(self)
        return {
            "container": "catalog",
            "dtype": None,
            "shape": (runs,),
            "npartitions": runs,
            "metadata": json_safe(
                {k: v for k, v in (self.metadata or {}).items() if k != "catalog_dir"}
            ),
        }

    def to_dask(self) -> Any:
        """A catalog holds runs, not one dataset: an error saying what to call instead."""
        raise NotSupported(
            f"{type(self).__name__} {self.name!r} is a catalog of {plural(len(self), 'run')}, "
            "not one dataset; choose a run (cat[-1], cat[uid], cat[scan_id]) and call "
            "run.to_dask() (every stream, as an xarray.DataTree) or run.primary.to_dask()"
        )

    read = to_dask

    # -- search and writing ---------------------------------------------------------------

    def search(
        self, query: Query | Mapping | str | None = None, *, saved: str | None = None, **kwargs: Any
    ) -> BrokerCatalog:
        """The runs of this catalog that also match ``query``, as a catalog.

        ``query`` is a :mod:`intake_broker.queries` object (combine with ``&``, ``|``, ``~``),
        a MongoDB-style dict as databroker took (``{"plan_name": "scan"}``) or a text in the
        query language (``'plan_name == "scan" and scan_id > 4'``); ``saved`` names a query
        stored with :meth:`save_query`.
        """
        if kwargs:  # databroker handed these to pymongo's find(), which refused unknown ones
            raise TypeError(
                f"search() got unexpected keyword arguments {sorted(kwargs)}; give the query "
                "as its first argument (cat.search({'plan_name': 'scan'}) or a query object) "
                "and a saved query as saved="
            )
        if isinstance(query, str):  # naive times in the catalog's time zone (YAML metadata)
            from intake_broker.queries.expression import parse_query

            query = parse_query(query, timezone=self.metadata.get("timezone"))
        query = as_query(query)
        if saved is not None:
            from intake_broker.catalogs.saved import saved_query

            query = _and(query, saved_query(saved))
        combined = _and(self._query, query)
        found = _rebuild_catalog(type(self), self._store)
        found.__setstate__(
            {
                "_query": combined,
                "_assets": self._assets,
                "_yaml": self._yaml,
                "name": self.name,  # its repr shows the search
                "metadata": dict(self.metadata),
            }
        )
        return found

    def save_query(self, name: str, query: Query | Mapping | str) -> None:
        """Store ``query`` under ``name`` for ``search(saved=name)`` in later sessions."""
        from intake_broker.catalogs.saved import save_query

        if isinstance(query, str):
            from intake_broker.queries.expression import parse_query

            query = parse_query(query)
        save_query(name, as_query(query))

    def merge(
        self,
        stream: str = "primary",
        *,
        dim: str = "run",
        coords: Sequence[str] = ("scan_id",),
        join: str = "outer",
        fields: Sequence[str] | None = None,
    ):
        """One stream of every run of this catalog (newest first) as one lazy
        ``xarray.Dataset`` along ``dim``: ``cat.search("plan_name == 'scan'").merge(coords=
        ["scan_id", "temperature"])``. See :func:`intake_broker.views.mux.merge_runs`."""
        from intake_broker.views.mux import merge_runs

        return merge_runs(self.values(), stream, dim=dim, coords=coords, join=join, fields=fields)

    def insert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Store one document; ``RE.subscribe(cat.insert)`` records a live experiment."""
        self._store.insert(name, doc)

    def export(self, format: str, dest: Any, **kwargs: Any) -> Any:
        """Write every run of this catalog (newest first) to ``dest`` in ``format``; returns
        the manifest. Resumable: runs already written whole are skipped. See
        :func:`intake_broker.export.export_runs` for the formats and options."""
        from intake_broker.export import export_runs

        return export_runs(self.values(), format, dest, total=len(self), **kwargs)

    def _load(self) -> None:  # intake calls this on construction; there is nothing to preload
        pass

    def __reduce__(self):
        # Pickle the store itself, not the constructor's arguments: a catalog over a memory
        # store arrives with its runs, and a subclass (a driver's catalog) keeps its class.
        return (
            _rebuild_catalog,
            (type(self), self._store),
            {
                "_query": self._query,
                "_assets": self._assets,
                "_yaml": self._yaml,
                "name": self.name,
                "metadata": dict(self.metadata or {}),
            },
        )

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _as_catalog_query(query: Query | Mapping | str | None) -> Query | None:
    """A catalog's ``query`` argument as a query: text is the query language, or an encoded
    query (JSON, what :meth:`BrokerCatalog.serialize` writes)."""
    if isinstance(query, str):
        if query.lstrip().startswith("{"):
            from intake_broker.queries.base import decode_query

            return decode_query(query)
        from intake_broker.queries.expression import parse_query

        return parse_query(query)
    return as_query(query)


def _plain(value: Any) -> bool:
    """Whether an argument can be written in a YAML entry (plain data, no objects)."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return False


def _short(query: Query | None, limit: int = 120) -> str:
    text = repr(query)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rebuild_catalog(cls: type[BrokerCatalog], store: DocumentStore) -> BrokerCatalog:
    catalog = cls.__new__(cls)
    BrokerCatalog.__init__(catalog, store)
    return catalog


class _LazyRuns(Mapping):
    """The ``_entries`` intake's base class expects, answered from the store page by page."""

    def __init__(self, catalog: BrokerCatalog):
        self._catalog = catalog

    def __getitem__(self, key: Any) -> Run:
        return self._catalog[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog)

    def __len__(self) -> int:
        return len(self._catalog)

    def __contains__(self, key: object) -> bool:
        return key in self._catalog


class Run(Catalog):
    """One run: a catalog of its streams (``run.primary``, ``run["baseline"]``).

    ``run.metadata`` holds the ``start`` and ``stop`` documents (``stop`` is None while the run
    is acquiring or if it never ended); ``run.documents()`` replays every document.
    """

    container = "catalog"
    version = "0.1.0"

    def __init__(
        self,
        store: DocumentStore,
        record: RunRecord,
        *,
        assets: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        catalog: BrokerCatalog | None = None,
        **kwargs: Any,
    ):
        self._store = store
        self._record = record
        #: the catalog entry (driver, args) of the catalog this run was found in, if known
        self._catalog_entry = _catalog_entry(catalog)
        self._asset_options = dict(assets or {})
        self._assets = store.asset_reader(record.uid, **self._asset_options)
        self._descriptors: list[dict] | None = None
        metadata: dict[str, Any] = {"start": record.start, "stop": record.stop}
        if record.origin:
            metadata["origin"] = list(record.origin)
        if timezone:
            metadata["timezone"] = timezone
        super().__init__(name=record.uid, metadata=metadata, **kwargs)

    @property
    def uid(self) -> str:
        return self._record.uid

    @property
    def start(self) -> dict:
        """The run's start document."""
        return self._record.start

    @property
    def stop(self) -> dict | None:
        """The run's stop document (None while the run is acquiring or if it never ended)."""
        return self._record.stop

    @property
    def store(self) -> DocumentStore:
        """The store the run is read from."""
        return self._store

    @property
    def complete(self) -> bool:
        """Whether the run has a stop document."""
        return self._record.complete

    @property
    def descriptors(self) -> list[dict]:
        """The run's descriptors, oldest first (read once)."""
        if self._descriptors is None:
            self._descriptors = self._store.descriptors(self.uid)
        return self._descriptors

    def _load(self) -> None:
        pass

    # -- provenance (see intake_broker.provenance) ---------------------------------------

    @property
    def provenance(self) -> Any:
        """The lineage of this run (:class:`~intake_broker.provenance.graph.Lineage`): the
        runs it was computed from, recursively, looked up in the store it was read from (a
        federation's members, if it came from one). Inputs you may not see are withheld.
        ``.to_prov()`` gives W3C PROV-JSON; a raw run's lineage is the run alone."""
        return self.lineage()

    def lineage(self, within: Any = None, **limits: Any) -> Any:
        """The lineage of this run with its inputs looked up in ``within`` (a catalog or a
        store, or a list of them asked in order; default: the store this run was read from).
        ``limits``: ``max_depth``, ``max_nodes`` (see
        :func:`intake_broker.provenance.graph.lineage`)."""
        from intake_broker.provenance.graph import lineage

        if within is None:
            return lineage(self, self._store, **limits)
        places = list(within) if isinstance(within, list | tuple) else [within]
        stores = [p.store if isinstance(p, BrokerCatalog) else p for p in places]
        return lineage(self, stores, **limits)

    @property
    def derived(self) -> BrokerCatalog:
        """The runs computed from this run, in the store it was read from (a catalog,
        searchable like any other): ``derived_from contains "<this uid>"``."""
        from intake_broker.provenance.record import DERIVED_FROM_KEY
        from intake_broker.queries import Contains

        options = self._asset_options
        catalog = BrokerCatalog(
            self._store,
            handler_registry=options.get("handler_registry"),
            root_map=options.get("root_map"),
            asset_storage_options=options.get("storage_options"),
        )
        return catalog.search(Contains(DERIVED_FROM_KEY, self.uid))

    # -- annotations (see intake_broker.store.annotations) -------------------------------

    def _keeper(self) -> Any:
        from intake_broker.store.abilities import Annotations, require

        return require(self._store, Annotations, "keep annotations")

    @property
    def annotations(self) -> list[dict]:
        """The annotations of this run you may see (tags, fields, note, author, visibility,
        version, ...), oldest first; read from the store each time."""
        return self._keeper().annotations(self.uid)

    @property
    def tags(self) -> list[str]:
        """Every tag of the annotations of this run you may see, sorted."""
        return sorted({t for a in self.annotations for t in a["tags"]})

    def _change(self, **change: Any) -> dict:
        from intake_broker.store.annotations import annotation_change

        keeper = self._keeper()
        return keeper.change_annotation(self.uid, annotation_change(keeper, self.uid, **change))

    def tag(
        self,
        *tags: str,
        visibility: str = "private",
        groups: tuple[str, ...] | list[str] = (),
        if_version: int | None = None,
        stream: str | None = None,
        seq_range: tuple[int, int] | None = None,
    ) -> dict:
        """Add ``tags`` to your annotation of this run of ``visibility`` (``private``,
        ``proposal``, ``groups`` with ``groups=[...]``, ``public``); returns it.

        ``if_version``: change it only if it is still at that version (0: not created yet),
        else :class:`~intake_broker.errors.AnnotationConflict` with the current value."""
        return self._change(
            add_tags=tags,
            visibility=visibility,
            groups=groups,
            if_version=if_version,
            stream=stream,
            seq_range=seq_range,
        )

    def untag(
        self,
        *tags: str,
        visibility: str | None = None,
        groups: tuple[str, ...] | list[str] = (),
        if_version: int | None = None,
    ) -> list[dict]:
        """Remove ``tags`` from the annotations of this run of ``visibility`` (None: from every
        annotation you may see that holds one of them); returns those changed."""
        from intake_broker.store.annotations import _tags

        wanted = set(_tags(tags, "tags"))
        changed = []
        for annotation in self.annotations:
            if not wanted & set(annotation["tags"]):
                continue
            if visibility is not None and (
                annotation["visibility"] != visibility
                or (groups and sorted(groups) != annotation["groups"])
            ):
                continue
            changed.append(
                self._change(
                    remove_tags=sorted(wanted),
                    visibility=annotation["visibility"],
                    groups=annotation["groups"],
                    stream=annotation["stream"],
                    seq_range=annotation["seq_range"],
                    author=annotation["author"] if annotation["visibility"] == "private" else None,
                    if_version=if_version,
                )
            )
        return changed

    def annotate(
        self,
        *,
        note: str | None = None,
        visibility: str = "private",
        groups: tuple[str, ...] | list[str] = (),
        stream: str | None = None,
        seq_range: tuple[int, int] | None = None,
        if_version: int | None = None,
        remove: tuple[str, ...] | list[str] = (),
        **fields: Any,
    ) -> dict:
        """Set ``fields`` (JSON values: ``rating=4``, ``sample_offset=[0.1, 0]``) and/or the
        ``note`` of your annotation of this run of ``visibility``; ``remove`` names fields to
        drop. ``stream`` and ``seq_range`` attach it to a stream or a range of its events.
        Returns the annotation; see :meth:`tag` for ``if_version``."""
        return self._change(
            fields=fields,
            remove_fields=remove,
            note=note,
            visibility=visibility,
            groups=groups,
            stream=stream,
            seq_range=seq_range,
            if_version=if_version,
        )

    def annotation_history(self, annotation_id: str | None = None) -> list[dict]:
        """Every change of the annotations of this run you may see (of one when
        ``annotation_id`` is given), oldest first: ``who``, ``time``, ``version``, ``before``,
        ``after``."""
        history = self._keeper().annotation_history(self.uid)
        if annotation_id is not None:
            history = [e for e in history if e["annotation"] == annotation_id]
        return history

    def annotation_as_of(self, annotation_id: str, version: int) -> dict | None:
        """The annotation ``annotation_id`` as it was at ``version`` (None before it existed)."""
        found = None
        for entry in self.annotation_history(annotation_id):
            if entry["version"] <= version:
                found = entry["after"]
        return found

    def undo_annotation(self, annotation_id: str, version: int | None = None) -> dict:
        """Undo the change that made ``version`` (None: the latest) of an annotation: its
        tags, fields and note go back to what they were before it, as a new version."""
        from intake_broker.errors import BadAnnotation
        from intake_broker.store.annotations import restore_change

        history = self.annotation_history(annotation_id)
        if not history:
            raise BadAnnotation(f"run {self.uid!r} has no annotation {annotation_id!r} you see")
        entries = [e for e in history if version is None or e["version"] == version]
        if not entries:
            raise BadAnnotation(
                f"annotation {annotation_id!r} has no version {version}; it has versions "
                f"1 to {history[-1]['version']}"
            )
        keeper = self._keeper()
        return keeper.change_annotation(self.uid, restore_change(keeper, self.uid, entries[-1]))

    def _stream_names(self) -> list[str]:
        names: list[str] = []
        for descriptor in self.descriptors:
            if descriptor.get("name", "primary") not in names:
                names.append(descriptor.get("name", "primary"))
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self._stream_names())

    def __len__(self) -> int:
        return len(self._stream_names())

    def __contains__(self, key: object) -> bool:
        return key in self._stream_names()

    def _get_entries(self) -> dict[str, Stream]:
        return {name: self[name] for name in self._stream_names()}

    def __getitem__(self, name: str) -> Any:
        """A stream (``run["primary"]``), or a path into one as databroker 2 spells it:
        ``run["primary/data/det"]`` is ``run["primary"]["data"]["det"]``."""
        if isinstance(name, str) and "/" in name:
            first, *rest = name.split("/")
            node: Any = self[first]
            for part in rest:
                node = node[part]
            return node
        descriptors = [d for d in self.descriptors if d.get("name", "primary") == name]
        if not descriptors:
            raise StreamNotFound(
                f"run {self.uid[:8]} has no stream {name!r}; it has {self._stream_names()}"
            )
        zone = self.metadata.get("timezone")
        return Stream(
            self._store,
            self.uid,
            name,
            descriptors,
            assets=self._assets,
            metadata={"timezone": zone} if zone else None,
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        try:
            return self[item]
        except KeyError as err:
            raise AttributeError(item) from err

    def __dir__(self) -> list[str]:
        return (
            self._stream_names()
            + list(self.__dict__)
            + [a for a in dir(type(self)) if not a.startswith("__")]
        )

    def _ipython_key_completions_(self) -> list[str]:
        return self._stream_names()

    def __repr__(self) -> str:
        start = self._record.start
        return (
            f"<Run {self.uid} scan_id={start.get('scan_id')} "
            f"plan={start.get('plan_name')!r} streams={self._stream_names()}"
            f"{'' if self.complete else ' (incomplete)'}>"
        )

    def items(self) -> Iterator[tuple[str, Stream]]:
        return ((name, self[name]) for name in self._stream_names())

    # -- intake idioms ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What this run is (intake's ``describe``): uid, plan, scan_id, streams, whether it
        is complete, the start and stop documents and the catalog it was found in."""
        from intake_broker.views.describe import json_safe

        start = self._record.start
        out: dict[str, Any] = {
            "name": self.uid,
            "container": "catalog",
            "description": (
                f"run {self.uid}: plan {start.get('plan_name')!r}, scan_id "
                f"{start.get('scan_id')}" + ("" if self.complete else " (incomplete)")
            ),
            "streams": self._stream_names(),
            "complete": self.complete,
            "metadata": json_safe(self.metadata),
            "user_parameters": [],
        }
        if self._catalog_entry is not None:
            out["catalog"] = self._catalog_entry
        return out

    def serialize(self) -> str:
        """A YAML catalog file whose one entry is this run's catalog narrowed to this run:
        ``intake.open_catalog(file)[uid][uid]`` is the run again (needs the catalog it was
        found in, e.g. ``cat[uid]`` rather than a run built by hand)."""
        import json

        from intake_broker.views.describe import dump_yaml

        if self._catalog_entry is None:
            raise NotSupported(
                f"run {self.uid[:8]} was not found through a catalog, so there is no entry to "
                "write; serialize the catalog it came from (cat.serialize())"
            )
        entry = dict(self._catalog_entry)
        args = dict(entry.get("args") or {})
        args["query"] = json.dumps(Eq("uid", self.uid).encode(), sort_keys=True)
        entry["args"] = args
        entry["description"] = self.describe()["description"]
        return dump_yaml({"sources": {self.uid: entry}})

    yaml = serialize

    def walk(self, sofar: dict | None = None, prefix: list | None = None, depth: int = 1) -> dict:
        """The run's streams by name (``"<stream>"``, or ``"<uid>.<stream>"`` below a
        catalog's walk)."""
        out: dict[str, Any] = {} if sofar is None else sofar
        if depth >= 1:
            for name in self._stream_names():
                out[".".join([*(prefix or []), name])] = self[name]
        return out

    def discover(self) -> dict[str, Any]:
        """intake's ``discover``: a catalog of ``shape[0]`` streams, with its metadata."""
        from intake_broker.views.describe import json_safe

        names = self._stream_names()
        return {
            "container": "catalog",
            "dtype": None,
            "shape": (len(names),),
            "npartitions": len(names),
            "metadata": json_safe(self.metadata),
        }

    def to_dask(self) -> Any:
        """Every stream of the run, lazily: an ``xarray.DataTree`` with one node per stream
        (``tree["primary"].to_dataset()``), each the stream's ``to_dask()`` dataset."""
        import xarray as xr

        tree = {name: self[name].to_dask() for name in self._stream_names()}
        return xr.DataTree.from_dict(tree, name=self.uid)

    def read(self) -> Any:
        """Every stream of the run in memory: an ``xarray.DataTree`` (see :meth:`to_dask`)."""
        import xarray as xr

        tree = {name: self[name].read() for name in self._stream_names()}
        return xr.DataTree.from_dict(tree, name=self.uid)

    def values(self) -> Iterator[Stream]:
        return (self[name] for name in self._stream_names())

    def documents(self, fill: str = "no") -> Iterator[tuple[str, dict]]:
        """Every document of the run as ``(name, doc)`` in time order, events as pages.

        ``fill="yes"`` replaces references to external assets with their arrays (read by the
        run's asset reader, as stream reads are: a remote run is filled on its server),
        ``"delayed"`` with ``dask.delayed`` values, ``"no"`` leaves them as references.
        """
        if fill not in ("no", "yes", "delayed"):
            raise ValueError(f"fill must be 'no', 'yes' or 'delayed', not {fill!r}")
        docs = self._store.documents(self.uid)
        if fill == "no":
            yield from docs
            return
        yield from fill_documents(docs, self._assets, delayed=fill == "delayed")

    def canonical(
        self, *, fill: str = "no", strict_order: bool = True
    ) -> Iterator[tuple[str, dict]]:
        """databroker 1.2's old name for :meth:`documents`; warns as databroker did
        (``UserWarning``). ``strict_order`` is accepted and has no effect: documents always
        come in time order here."""
        import warnings

        warnings.warn(
            "canonical() is databroker's old name for documents(); call run.documents(fill=...)",
            UserWarning,
            stacklevel=2,
        )
        yield from self.documents(fill=fill)

    def read_canonical(self) -> Iterator[tuple[str, dict]]:
        """databroker 1.2's old name for ``documents(fill="yes")``; warns as databroker did
        (``UserWarning``): use :meth:`documents`."""
        import warnings

        warnings.warn(
            "read_canonical() is databroker's old name for documents(fill='yes'); "
            "call run.documents(fill='yes')",
            UserWarning,
            stacklevel=2,
        )
        yield from self.documents(fill="yes")

    # -- shaping and other returns (intake_broker.views.mux / .returns) --------------------

    def align(
        self,
        streams: Sequence[str],
        *,
        on: str = "primary",
        method: str = "previous",
        tolerance: Any = None,
    ):
        """The streams on the time axis of stream ``on``, as one ``xarray.Dataset`` (lazy):
        ``run.align(["primary", "baseline", "monitor"], method="previous", tolerance=0.5)``.
        See :func:`intake_broker.views.mux.align` for the rules at the edges."""
        from intake_broker.views.mux import align

        return align(self, streams, on=on, method=method, tolerance=tolerance)

    def to_datatree(self, lazy: bool = True):
        """The run as an ``xarray.DataTree``: a node per stream, configuration as
        ``<stream>/config/<device>`` nodes, start and stop as the root's attributes."""
        from intake_broker.views.returns import to_datatree

        return to_datatree(self, lazy=lazy)

    def export(self, format: str, dest: Any, **kwargs: Any) -> Any:
        """Write this run to ``dest`` (a folder or fsspec URL) in ``format``: ``jsonl``,
        ``msgpack``, ``csv``, ``tsv``, ``parquet``, ``zarr``, ``nexus``, ...; returns the
        manifest (files, sizes, SHA-256). ``streams=`` and ``fields=`` choose data; other
        keywords are the format's options. See :func:`intake_broker.export.export_runs`."""
        from intake_broker.export import export_runs

        return export_runs([self], format, dest, total=1, **kwargs)

    def __reduce__(self):
        return (
            Run,
            (self._store, self._record),
            {
                "_asset_options": self._asset_options,
                "_assets": self._assets,
                "metadata": self.metadata,
                "_catalog_entry": self._catalog_entry,
            },
        )

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _catalog_entry(catalog: BrokerCatalog | None) -> dict[str, Any] | None:
    if catalog is None:
        return None
    try:
        return catalog._entry_spec()
    except Exception:  # a catalog that cannot say its entry leaves its runs without one
        return None


class MemoryCatalog(BrokerCatalog):
    """A catalog over a new, empty :class:`~intake_broker.store.memory.MemoryStore`.

    Registered for intake as ``bluesky-memory-catalog``.
    """

    def __init__(self, *, validate: bool = True, **kwargs: Any):
        from intake_broker.store.memory import MemoryStore

        super().__init__(MemoryStore(validate=validate), **kwargs)
