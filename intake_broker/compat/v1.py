"""databroker's v1 API -- ``Broker``, ``Header``, ``get_table`` ... -- over our catalogs.

Notebooks and beamline profiles written for databroker 1.x run with only their import changed::

    from intake_broker.compat import Broker      # was: from databroker import Broker
    db = Broker.named("csx")                      # our discovery, or ~/.config/databroker/csx.yml
    h = db[-1]
    h.table()                                     # indexed by seq_num from 1, as databroker gave

What is answered is databroker 1.2.5's behaviour, checked against golden files it recorded
(``tests/compat``); the deliberate differences are listed in the README. Reads go through the
catalog (the store contract, its access guard, its asset reader): a table is built from event
columns, not from one event document at a time.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import numpy as np

from intake_broker.errors import BadQuery, BrokerError, NotSupported, RunNotFound
from intake_broker.queries import Comparison, FullText, Query, as_query
from intake_broker.views.catalog import BrokerCatalog, Run
from intake_broker.views.datakeys import asset_kind, field_dtype, field_shape
from intake_broker.views.filling import fill_documents

#: "Every stream" (databroker's sentinel for ``stream_name``).
ALL = "__ALL__"
#: The most headers a slice (``db[-n:]``) or a list of keys gives at once.
MAX_HEADERS = 10_000
#: The most fields (regular expressions) a ``fields=`` list may hold.
MAX_FIELDS = 1_000
#: databroker's human-friendly time formats for ``since``/``until``, read in the local zone.
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H",
    "%Y-%m-%d",
    "%Y-%m",
    "%Y",
)
_DOC_KINDS = {
    "start": "RunStart",
    "stop": "RunStop",
    "descriptor": "EventDescriptor",
    "event": "Event",
    "resource": "Resource",
    "datum": "Datum",
}


class Document(dict):
    """A document as databroker 1.x gave it: a dict whose keys may also be read as attributes
    (``h.start.plan_name``; databroker warned that this spelling may go, and so do we)."""

    def __init__(self, kind: str, doc: Mapping[str, Any]):
        super().__init__(doc)
        self._kind = kind

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            value = self[key]
        except KeyError:
            raise AttributeError(
                f"{self._kind} document has no key {key!r}; it has {sorted(self)}"
            ) from None
        warnings.warn(
            "Dot access may be removed in a future version. Use ['key'] instead of .key",
            stacklevel=2,
        )
        return value

    def to_dict(self) -> dict:
        """A plain dict copy."""
        return dict(self)

    def __reduce__(self):
        return (Document, (self._kind, dict(self)))


def _wrap(name: str, doc: Mapping[str, Any]) -> Document:
    return Document(_DOC_KINDS.get(name, name), doc)


def _headers(headers: Any) -> list[Header]:
    if isinstance(headers, Header):
        return [headers]
    found = list(headers)
    for h in found:
        if not isinstance(h, Header):
            raise TypeError(f"expected a Header or a list of Headers, got {type(h).__name__}")
    return found


def _compile_fields(fields: Iterable[str]) -> re.Pattern:
    """databroker's reading of ``fields``: each entry a regular expression matching a whole key."""
    fields = list(fields)
    if len(fields) > MAX_FIELDS:
        raise BadQuery(f"fields lists at most {MAX_FIELDS} keys, got {len(fields)}")
    for f in fields:
        if not isinstance(f, str) or len(f) > 200:
            raise BadQuery(f"each field must be a key or regular expression (<= 200 chars): {f!r}")
    try:
        return re.compile("|".join(f"(?:{f})\\Z" for f in (fields or [".*"])))
    except re.error as err:
        raise BadQuery(f"fields {fields!r} holds an invalid regular expression: {err}") from None


class _FieldSelection:
    """What ``fields=`` keeps of one descriptor, and what it adds from configuration and the
    start and stop documents (databroker's ``_extract_extra_data``)."""

    def __init__(self, start: dict, stop: dict, descriptor: dict, fields: list[str] | None):
        keys = list(descriptor["data_keys"])
        self.extra_data: dict[str, Any] = {}
        self.extra_ts: dict[str, float] = {}
        if fields is None:
            self.keys = keys
            return
        pattern = _compile_fields(fields)
        self.keys = [k for k in keys if pattern.match(k)]
        selected = set(self.keys)
        config = descriptor.get("configuration", {}).values()
        config_data = {k: v for c in config for k, v in c.get("data", {}).items()}
        config_ts = {k: v for c in config for k, v in c.get("timestamps", {}).items()}
        sources: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...] = (
            (config_data, config_ts),
            (start, defaultdict(lambda: start["time"])),
            (stop, defaultdict(lambda: stop["time"])),
        )
        for data, ts in sources:
            found = {k for k in data if pattern.match(k)} - selected
            self.extra_data.update({k: data[k] for k in found})
            self.extra_ts.update({k: ts[k] for k in found})
            selected |= found

    @property
    def discarded(self) -> bool:
        return bool(self.extra_data) or self.keys is not None


def local_epoch(value: Any) -> Any:
    """``since``/``until`` as databroker read them: one of :data:`TIME_FORMATS` or a naive
    ``datetime`` in the local zone, an aware ``datetime``, or epoch seconds (as they are)."""
    if isinstance(value, str):
        text = value.strip()
        for fmt in TIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(
                f"failed to parse time: {text!r}; use epoch seconds, a datetime or one of "
                + ", ".join(repr(f) for f in TIME_FORMATS)
            )
    if isinstance(value, datetime):
        return (value.astimezone() if value.tzinfo is None else value).timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"since/until must be a time, got {type(value).__name__}")
    return value


def search_query(kwargs: dict[str, Any], text_search: str | None = None) -> Query | None:
    """A databroker v1 search (``db(plan_name="scan", since="2024-03")``) as one query."""
    kwargs = dict(kwargs)
    if "since" in kwargs and "start_time" in kwargs:
        raise TypeError("cannot use both 'since' and its deprecated name 'start_time'")
    if "until" in kwargs and "stop_time" in kwargs:
        raise TypeError("cannot use both 'until' and its deprecated name 'stop_time'")
    since = kwargs.pop("since", kwargs.pop("start_time", None))
    until = kwargs.pop("until", kwargs.pop("stop_time", None))
    parts: list[Query] = []
    if since:
        parts.append(Comparison("ge", "time", local_epoch(since)))
    if until:
        parts.append(Comparison("le", "time", local_epoch(until)))
    if text_search:
        parts.append(FullText(text_search))
    if kwargs:
        parts.append(as_query(kwargs))
    if not parts:
        return None
    return _all(parts)


def _all(parts: list[Query]) -> Query:
    query = parts[0]
    for part in parts[1:]:
        query = query & part
    return query


class Broker:
    """databroker's v1 ``Broker`` over a :class:`~intake_broker.BrokerCatalog` (``cat.v1``).

    ``db[-1]``, ``db[-5:]``, ``db[uid]``, ``db[scan_id]`` give :class:`Header` s; ``db(...)``
    searches; ``get_table``, ``get_events``, ``get_documents``, ``get_images``, ``restream``
    and ``process`` read one or more headers. ``db.v2`` is the catalog.
    """

    def __init__(self, catalog: BrokerCatalog, *, external_fetchers: Mapping | None = None):
        if not isinstance(catalog, BrokerCatalog):
            raise TypeError(
                f"Broker wraps an intake-broker catalog, got {type(catalog).__name__}; "
                "use Broker.named(name), Broker.from_config(config) or catalog.v1"
            )
        self._catalog = catalog
        self.external_fetchers = dict(external_fetchers or {})
        self.prepare_hook: Callable[[str, Any], Any] = _wrap
        self.aliases: dict[str, Any] = {}
        self.filters: dict[str, Any] = {}
        self._config: dict | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def named(cls, name: str, auto_register: bool = True) -> Broker:
        """The catalog called ``name``: ``"temp"`` (a new one in memory), a databroker config
        file (``~/.config/databroker/{name}.yml``, ``{python}/../etc/databroker/{name}.yml``,
        ``/etc/databroker/{name}.yml``, read as databroker read it), or a catalog our
        discovery finds (``intake_broker.catalog[name]``)."""
        if name == "temp":
            return temp()
        from intake_broker.compat.config import lookup_config

        found = lookup_config(name)
        if found is not None:
            return cls.from_config(found, auto_register=auto_register, name=name)
        from intake_broker.catalogs.discovery import catalogs

        catalog = catalogs()[name]
        if isinstance(catalog, Broker):
            return catalog
        return cls(catalog)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], auto_register: bool = True, name: str | None = None
    ) -> Broker:
        """A Broker from a databroker configuration (a v0/v1 ``metadatastore``/``assets``
        dict, or ``{"uri": ...}`` of a YAML catalog); see :mod:`intake_broker.compat.config`."""
        from intake_broker.compat.config import catalog_from_config

        db = cls(catalog_from_config(config, auto_register=auto_register, name=name))
        db._config = dict(config)
        return db

    def get_config(self) -> dict | None:
        """The configuration this Broker was made from (None if it was not)."""
        return self._config

    @property
    def name(self) -> str:
        return self._catalog.name

    @property
    def v1(self) -> Broker:
        """This Broker (``v1`` and ``v2`` are symmetric, as in databroker)."""
        return self

    @property
    def v2(self) -> BrokerCatalog:
        """The catalog behind this Broker."""
        return self._catalog

    def __repr__(self) -> str:
        return f"<Broker {self.name!r} over {self._catalog!r}>"

    # -- lookups and searches -------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, str) and isinstance(key, Iterable):
            keys = list(key)
            if len(keys) > MAX_HEADERS:
                raise ValueError(f"at most {MAX_HEADERS} headers at once, got {len(keys)}")
            return [self[k] for k in keys]
        if isinstance(key, slice):
            if key.start is not None and key.start > -1:
                raise ValueError(
                    f"slice.start must be negative. You gave me key={key} "
                    f"The offending part is key.start={key.start}"
                )
            if key.stop is not None and key.stop > 0:
                raise ValueError(
                    f"slice.stop must be <= 0. You gave me key={key}. "
                    f"The offending part is key.stop = {key.stop}"
                )
            if key.start is None:
                raise ValueError(
                    "slice.start cannot be None because we do not support slicing infinitely "
                    "into the past; the size of the result is non-deterministic and could "
                    "become too large."
                )
            indices = range(key.start, key.stop or 0, key.step or 1)
            if len(indices) > MAX_HEADERS:
                raise ValueError(f"at most {MAX_HEADERS} headers at once, got {len(indices)}")
            return [self[i] for i in reversed(indices)]
        return Header(self._catalog[key], self)

    def __call__(self, text_search: str | Query | Mapping | None = None, **kwargs: Any) -> Results:
        """Runs matching metadata: ``db(plan_name="scan", since="2024-03-01", until=...)``,
        a text search ``db("LaB6")``, a query object or a MongoDB-style dict
        (``db({"scan_id": {"$gt": 3}})``). ``data_key="det"`` keeps runs having that key.
        Filters (:meth:`add_filter`) are ANDed in."""
        data_key = kwargs.pop("data_key", None)
        extra: Query | None = None
        if isinstance(text_search, Query | Mapping):
            extra, text_search = as_query(text_search), None
        parts = [
            q
            for q in (
                search_query(self.filters) if self.filters else None,
                extra,
                search_query(kwargs, text_search),
            )
            if q is not None
        ]
        catalog = self._catalog
        if parts:
            catalog = catalog.search(_all(parts))
        return Results(self, catalog, data_key)

    def add_filter(self, **kwargs: Any) -> None:
        """AND ``kwargs`` (a search as :meth:`__call__` takes it) into every later search."""
        search_query(kwargs)  # refuse a bad filter now, not at the next search
        self.filters.update(**kwargs)

    def clear_filters(self, **kwargs: Any) -> None:
        """Forget every filter."""
        self.filters.clear()

    def alias(self, key: str, **query: Any) -> None:
        """``db.alias("cal", purpose="calibration")``; then ``db.cal`` is ``db(purpose=...)``."""
        if hasattr(self, key) and key not in self.aliases:
            raise ValueError(f"'{key}' is not a legal alias.")
        self.aliases[key] = query

    def dynamic_alias(self, key: str, func: Callable[[], dict]) -> None:
        """An alias whose query ``func()`` makes each time it is used."""
        if hasattr(self, key) and key not in self.aliases:
            raise ValueError(f"'{key}' is not a legal alias.")
        self.aliases[key] = func

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            query = self.__dict__["aliases"][key]
        except KeyError:
            raise AttributeError(key) from None
        return self(**(query() if callable(query) else query))

    def stream_names_given_header(self, header: Header | None = None) -> list[str]:
        """The stream names of ``header`` (databroker 1.2.5 took no header and listed the
        catalog's run uids: a bug, not kept)."""
        if header is None:
            raise TypeError("stream_names_given_header(header): give the Header")
        return self._own(header).stream_names

    def fetch_external(self, start: dict, stop: dict) -> dict:
        return {k: func(start, stop) for k, func in self.external_fetchers.items()}

    # -- writing ----------------------------------------------------------------------------

    def insert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Store one document (``RE.subscribe(db.insert)``), through the catalog's store."""
        self._catalog.insert(name, doc)

    # -- reading ----------------------------------------------------------------------------

    def _own(self, header: Header) -> Header:
        """``header`` as a run of this Broker's catalog (a header of another catalog is looked
        up here by uid, as databroker did; RunNotFound when this catalog lacks it)."""
        if header.db is self:
            return header
        try:
            return Header(self._catalog[header.uid], self)
        except RunNotFound as err:
            raise RunNotFound(
                f"run {header.uid} (a header of {header.db.name!r}) is not in catalog "
                f"{self.name!r}; read it through its own Broker"
            ) from err

    @staticmethod
    def _no_registry(handler_registry: Any) -> None:
        if handler_registry is not None:
            raise NotImplementedError(
                "The handler_registry must be set when the Broker is initialized, usually "
                "specified in a configuration file (the catalog's handler_registry)."
            )

    def get_documents(
        self,
        headers: Any,
        stream_name: str = ALL,
        fields: list[str] | None = None,
        fill: bool = False,
        handler_registry: Any = None,
    ) -> Iterator[tuple[str, dict]]:
        """Every document of one or more runs, in databroker's order: start; descriptors,
        resources and datums; events (unpacked, by time across streams); stop.

        ``stream_name`` keeps one stream's descriptors and events; ``fields`` (regular
        expressions) keeps those data keys and adds matching configuration, start and stop
        values to each event; ``fill=True`` puts arrays in place of external references.
        """
        self._no_registry(handler_registry)
        for header in _headers(headers):
            yield from self._own(header)._documents(stream_name, fields, bool(fill))

    def restream(self, headers: Any, fields: list[str] | None = None, fill: bool = False):
        """Every document of the runs, as the RunEngine would emit them (``get_documents``)."""
        yield from self.get_documents(headers, fields=fields, fill=fill)

    stream = restream

    def process(
        self,
        headers: Any,
        func: Callable[[str, dict], Any],
        fields: list[str] | None = None,
        fill: bool = False,
    ) -> None:
        """Call ``func(name, doc)`` for every document of the runs."""
        for name, doc in self.get_documents(headers, fields=fields, fill=fill):
            func(name, doc)

    def get_events(
        self,
        headers: Any,
        stream_name: str = "primary",
        fields: list[str] | None = None,
        fill: bool = False,
        handler_registry: Any = None,
    ) -> Iterator[dict]:
        """The event documents of one stream of the runs (see :meth:`get_documents`)."""
        self._no_registry(handler_registry)
        for name, doc in self.get_documents(headers, stream_name, fields, fill):
            if name == "event":
                yield doc

    def get_table(
        self,
        headers: Any,
        stream_name: str = "primary",
        fields: list[str] | None = None,
        fill: bool = False,
        handler_registry: Any = None,
        convert_times: bool = True,
        timezone: str | None = None,
        localize_times: bool = True,
    ):
        """One stream of the runs as a ``pandas.DataFrame`` indexed by ``seq_num``.

        Columns: ``time`` then the data keys (those ``fields`` matches, with matching
        configuration, start and stop values as constant columns). ``fill=True`` holds
        external arrays, ``False`` their datum ids. ``convert_times`` (or ``localize_times``)
        makes ``time`` naive UTC datetimes -- databroker 1.2.5's result: it accepted
        ``timezone`` and converted to no zone; ``False`` for both leaves epoch seconds.
        """
        import pandas

        self._no_registry(handler_registry)
        frames = []
        for header in _headers(headers):
            frames += self._own(header)._tables(
                stream_name, fields, bool(fill), convert_times or localize_times
            )
        if not frames:
            result = pandas.DataFrame()
        else:
            result = pandas.concat(frames) if len(frames) > 1 else frames[0]
        result.index.name = "seq_num"
        return result

    def get_images(
        self, headers: Any, name: str, stream_name: str = "primary", handler_registry: Any = None
    ) -> Images:
        """The frames of ``name`` in the runs, as a lazy sequence (deprecated, as in
        databroker: use ``Header.data``, ``Header.xarray_dask`` or ``run[stream]["data"]``)."""
        if handler_registry is not None:
            raise NotImplementedError(
                "The handler_registry parameter is no longer supported and must be None."
            )
        warnings.warn(
            "Images and get_images are deprecated. Use Header.data(), "
            "Header.xarray() or Header.xarray_dask() instead.",
            stacklevel=2,
        )
        arrays = [self._own(h)._run[stream_name]["data"][name] for h in _headers(headers)]
        return Images(arrays)

    def fill_event(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "fill_event is no longer supported (nor was it by databroker 1.2): use "
            "get_events(..., fill=True) or Header.events(fill=True)"
        )

    def fill_events(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "fill_events is no longer supported (nor was it by databroker 1.2): use "
            "get_events(..., fill=True) or Header.events(fill=True)"
        )

    def stats(self) -> Any:
        """Storage statistics of the store, where it has them."""
        stats = getattr(self._catalog.store, "stats", None)
        if stats is None:
            raise NotSupported(f"the {type(self._catalog.store).__name__} has no stats()")
        return stats()


class Results:
    """The headers a search found, newest first (iterate it; ``len()`` counts them)."""

    def __init__(self, broker: Broker, catalog: BrokerCatalog, data_key: str | None):
        self._broker = broker
        self._catalog = catalog
        self._data_key = data_key

    def __iter__(self) -> Iterator[Header]:
        for run in self._catalog.values():
            header = Header(run, self._broker)
            if self._data_key is None or any(
                self._data_key in d["data_keys"] for d in run.descriptors
            ):
                yield header

    def __len__(self) -> int:
        if self._data_key is None:
            return len(self._catalog)
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<Results of {self._catalog.name!r}>"


class Header:
    """One run as databroker's v1 ``Header``: ``start``, ``stop``, ``descriptors``,
    ``table()``, ``data()``, ``events()``, ``documents()``, ``config_data()``, ``xarray()``.
    ``h.v2`` is the run (``run.primary.read()`` ...)."""

    def __init__(self, run: Run, db: Broker):
        self._run = run
        self.db = db
        self.ext = SimpleNamespace(**db.fetch_external(run.start, run.stop or {}))

    @property
    def v2(self) -> Run:
        """The run behind this header."""
        return self._run

    @property
    def uid(self) -> str:
        return self._run.uid

    @property
    def start(self) -> Any:
        return self.db.prepare_hook("start", self._run.start)

    @property
    def stop(self) -> Any:
        """The stop document; ``{}`` while the run has none (as databroker gave)."""
        return self.db.prepare_hook("stop", self._run.stop or {})

    @property
    def descriptors(self) -> list:
        """The descriptors, newest first (databroker's order)."""
        return sorted(
            (self.db.prepare_hook("descriptor", d) for d in self._run.descriptors),
            key=lambda d: d["time"],
            reverse=True,
        )

    @property
    def stream_names(self) -> list[str]:
        return list(self._run)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Header) and dict(self.start) == dict(other.start)

    def __hash__(self) -> int:
        return hash(self.uid)

    def __getitem__(self, k: str) -> Any:
        if k in ("start", "descriptors", "stop", "ext"):
            return getattr(self, k)
        raise KeyError(k)

    def get(self, *args: Any) -> Any:
        return getattr(self, *args)

    def keys(self) -> Iterator[str]:
        yield from ("start", "descriptors", "stop", "ext")

    def items(self) -> Iterator[tuple[str, Any]]:
        for k in self.keys():
            yield k, getattr(self, k)

    def values(self) -> Iterator[Any]:
        for k in self.keys():
            yield getattr(self, k)

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __repr__(self) -> str:
        start = self._run.start
        return (
            f"<Header uid={self.uid!r} scan_id={start.get('scan_id')} "
            f"plan_name={start.get('plan_name')!r}>"
        )

    # -- what the run holds ---------------------------------------------------------------

    def fields(self, stream_name: str = ALL) -> set[str]:
        """The data keys of the run (or of one stream)."""
        out: set[str] = set()
        for d in self._run.descriptors:
            if stream_name == ALL or d.get("name") == stream_name:
                out.update(d["data_keys"])
        return out

    def devices(self, stream_name: str = ALL) -> set[str]:
        """The devices (object names) of the run (or of one stream)."""
        out: set[str] = set()
        for d in self._run.descriptors:
            if stream_name == ALL or d.get("name", "primary") == stream_name:
                out.update(d.get("object_keys", {}))
        return out

    def config_data(self, device_name: str) -> dict[str, list[dict]]:
        """``{stream_name: [configuration data, one per descriptor]}`` of one device."""
        out: dict[Any, list[dict]] = defaultdict(list)
        for d in sorted(self._run.descriptors, key=lambda d: d["time"]):
            config = d.get("configuration", {}).get(device_name)
            if config:
                out[d.get("name")].append(config["data"])
        return dict(out)

    # -- reading ------------------------------------------------------------------------------

    def table(
        self,
        stream_name: str = "primary",
        fields: list[str] | None = None,
        fill: bool = False,
        timezone: str | None = None,
        convert_times: bool = True,
        localize_times: bool = True,
    ):
        """One stream as a ``pandas.DataFrame`` (see :meth:`Broker.get_table`)."""
        return self.db.get_table(
            self,
            stream_name=stream_name,
            fields=fields,
            fill=fill,
            timezone=timezone,
            convert_times=convert_times,
            localize_times=localize_times,
        )

    def documents(
        self, stream_name: str = ALL, fields: list[str] | None = None, fill: bool = False
    ) -> Iterator[tuple[str, dict]]:
        """Every document of the run (see :meth:`Broker.get_documents`)."""
        yield from self.db.get_documents(self, stream_name=stream_name, fields=fields, fill=fill)

    def events(
        self, stream_name: str = "primary", fields: list[str] | None = None, fill: bool = False
    ) -> Iterator[dict]:
        """The event documents of one stream."""
        yield from self.db.get_events(self, stream_name=stream_name, fields=fields, fill=fill)

    def data(self, field: str, stream_name: str = "primary", fill: bool = True) -> Iterator[Any]:
        """The values of one field, event by event (filled by default)."""
        for event in self.events(stream_name=stream_name, fields=[field], fill=fill):
            yield event["data"][field]

    def xarray(self, stream_name: str = "primary"):
        """One stream as an ``xarray.Dataset`` in memory (variables: the data keys and
        ``time``; array dimensions ``dim_0``, ``dim_1`` ... -- as databroker gave)."""
        return _databroker_dims(self._run[stream_name].read())

    def xarray_dask(self, stream_name: str = "primary"):
        """One stream as a lazy, dask-backed ``xarray.Dataset`` (as :meth:`xarray`)."""
        return _databroker_dims(self._run[stream_name].to_dask())

    # -- the work behind get_documents and get_table -----------------------------------------

    def _documents(
        self, stream_name: str, fields: list[str] | None, fill: bool
    ) -> Iterator[tuple[str, Any]]:
        prepare = self.db.prepare_hook
        run = self._run
        start, stop = run.start, run.stop
        if fields is not None:
            _compile_fields(fields)
        docs: Iterable[tuple[str, dict]] = run.store.documents(run.uid)
        if fill:
            docs = fill_documents(docs, run._assets)
        yield "start", prepare("start", start)
        wanted: dict[str, _FieldSelection] = {}
        events: list[tuple[float, str, dict]] = []
        for name, doc in docs:
            if name in ("start", "stop"):
                continue
            if name == "descriptor":
                if stream_name == ALL or doc.get("name", "primary") == stream_name:
                    wanted[doc["uid"]] = _FieldSelection(start, stop or {}, doc, fields)
                    yield name, prepare(name, doc)
            elif name in ("event_page", "event"):
                if doc["descriptor"] not in wanted:
                    continue
                selection = wanted[doc["descriptor"]]
                rows = _unpack(doc) if name == "event_page" else [doc]
                for event in rows:
                    event = _select(event, selection)
                    if event["data"]:
                        events.append((event["time"], event["uid"], event))
            elif name == "datum_page":
                for datum in _unpack_datums(doc):
                    yield "datum", prepare("datum", datum)
            elif name == "resource":
                yield name, prepare(name, {**doc, "run_start": doc.get("run_start", run.uid)})
            else:
                yield name, prepare(name, doc)
        events.sort(key=lambda e: (e[0], e[1]))
        for _, _, event in events:
            yield "event", prepare("event", event)
        if stop is not None:
            yield "stop", prepare("stop", stop)

    def _tables(self, stream_name: str, fields: list[str] | None, fill: bool, times: bool) -> list:
        import pandas

        run = self._run
        frames = []
        for descriptor in sorted(run.descriptors, key=lambda d: d["time"]):
            if descriptor.get("name") != stream_name:
                continue
            selection = _FieldSelection(run.start, run.stop or {}, descriptor, fields)
            columns = run.store.read_events(descriptor["uid"], fields=selection.keys)
            seq = np.asarray(columns.seq_num)
            t = np.asarray(columns.time, dtype="float64")
            table: dict[str, Any] = {
                "time": pandas.to_datetime(t, unit="s").astype("datetime64[ns]") if times else t
            }
            for key in selection.keys:
                if key in columns.data:
                    table[key] = self._column(descriptor, key, columns.data[key], fill)
            if list(table) == ["time"]:
                continue  # no content
            for key, value in selection.extra_data.items():
                table[key] = _constant(value, len(seq))
            frame = pandas.DataFrame(table, index=seq, copy=False)
            frames.append(frame)
        return frames

    def _column(self, descriptor: dict, key: str, values: Any, fill: bool) -> Any:
        dk = descriptor["data_keys"][key]
        kind = asset_kind(dk)
        values = np.asarray(values)
        if fill and kind == "datum":
            arrays = self._run._assets.read_datums(
                key, [str(v) for v in values], field_dtype(dk), field_shape(dk)
            )
            out = np.empty(len(arrays), dtype=object)
            out[:] = list(arrays)
            return out
        if values.ndim > 1:  # an array per event: one object per row, as databroker gave
            out = np.empty(len(values), dtype=object)
            out[:] = list(values)
            return out
        return values


def _databroker_dims(ds: Any) -> Any:
    """Our dataset as databroker 1.2.5 named it: no ``seq_num`` coordinate, and an array key's
    dimensions ``dim_0``, ``dim_1`` ... (kept as ``<key>_dim_0`` where two keys of different
    shapes would clash)."""
    ds = ds.drop_vars("seq_num", errors="ignore")
    renames = {
        dim: "dim_" + dim.rsplit("_dim_", 1)[-1]
        for dim in ds.dims
        if isinstance(dim, str) and "_dim_" in dim and dim.rsplit("_dim_", 1)[-1].isdigit()
    }
    sizes: dict[str, set[int]] = defaultdict(set)
    for old, new in renames.items():
        sizes[new].add(ds.sizes[old])
    if any(len(s) > 1 for s in sizes.values()):
        return ds
    for old, new in renames.items():
        ds = ds.rename_dims({old: new}) if old not in ds.variables else ds.rename({old: new})
    return ds


def _constant(value: Any, rows: int) -> Any:
    if isinstance(value, list | tuple | dict):
        # databroker's pandas could not broadcast a list over the rows either
        raise ValueError(
            f"Length of values ({len(value)}) does not match length of index ({rows}); "
            "a metadata list cannot be a table column -- name the data keys in fields"
        )
    return value


def _unpack(page: dict) -> Iterator[dict]:
    data, timestamps = page["data"], page["timestamps"]
    filled = page.get("filled") or {}
    for i in range(len(page["seq_num"])):
        yield {
            "descriptor": page["descriptor"],
            "uid": page["uid"][i],
            "time": page["time"][i],
            "seq_num": page["seq_num"][i],
            "data": {k: _item(v[i]) for k, v in data.items()},
            "timestamps": {k: _item(v[i]) for k, v in timestamps.items()},
            "filled": {k: _item(v[i]) for k, v in filled.items()},
        }


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _unpack_datums(page: dict) -> Iterator[dict]:
    kwargs = page.get("datum_kwargs", {})
    for i, datum_id in enumerate(page["datum_id"]):
        yield {
            "datum_id": datum_id,
            "datum_kwargs": {k: v[i] for k, v in kwargs.items()},
            "resource": page["resource"],
        }


def _select(event: dict, selection: _FieldSelection) -> dict:
    if not selection.discarded:
        return event
    keep = set(selection.keys)
    data = {k: v for k, v in event["data"].items() if k in keep}
    ts = {k: v for k, v in event["timestamps"].items() if k in keep}
    data.update(selection.extra_data)
    ts.update(selection.extra_ts)
    return {**event, "data": data, "timestamps": ts}


class Images:
    """Frames of one data key over one or more runs, read one at a time (what databroker's
    deprecated ``get_images`` gave: ``len``, indexing, iteration, ``frame_shape``,
    ``pixel_type``)."""

    def __init__(self, arrays: list[Any]):
        self._arrays = arrays
        self._lengths = [int(a.shape[0]) for a in arrays]
        if not arrays:
            raise ValueError("no runs to read images from")
        self.frame_shape = tuple(arrays[0].shape[1:])
        self.pixel_type = np.dtype(arrays[0].dtype)

    def __len__(self) -> int:
        return sum(self._lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        if isinstance(i, slice):
            return np.stack([self[j] for j in range(*i.indices(len(self)))])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} of {n}")
        i %= n
        for array, length in zip(self._arrays, self._lengths, strict=True):
            if i < length:
                return np.asarray(array[i])
            i -= length
        raise IndexError(i)  # pragma: no cover -- the bounds were checked

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"<Images {len(self)} frames of {self.frame_shape} {self.pixel_type}>"


def temp() -> Broker:
    """A new Broker over an empty in-memory catalog (``Broker.named("temp")``)."""
    from intake_broker.views.catalog import MemoryCatalog

    return Broker(MemoryCatalog(name="temp"))


__all__ = ["ALL", "Broker", "BrokerError", "Document", "Header", "Images", "Results", "temp"]
