"""A stream of a run as a lazy, dask-backed ``xarray.Dataset``.

Shapes and dtypes come from the descriptors; the dask chunks follow the store's
:class:`~intake_broker.store.Chunk` s, one task per chunk reads every selected column at once.
Only ``time`` and ``seq_num`` are read when the dataset is built (they index it); every other
value is read when computed. The dataset's variables are databroker's: the data keys and the
``time`` coordinate (``stream(seq_num=True)`` adds ``seq_num`` as a coordinate along ``time``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from intake.source.base import DataSource, Schema

from intake_broker.assets import AssetReader, frames_per_chunk
from intake_broker.console import plural
from intake_broker.errors import ConfigurationNotFound, FieldNotFound
from intake_broker.store.contract import Chunk, DocumentStore
from intake_broker.views.datakeys import (
    asset_kind,
    field_attrs,
    field_dims,
    field_dtype,
    field_shape,
)

if TYPE_CHECKING:
    from dask.typing import Key

    from intake_broker.views.export import ZarrExport


def _fill_value(dtype: np.dtype):
    return np.nan if dtype.kind in "fc" else None


def _own(values) -> np.ndarray:
    """``values`` if they are an array of their own (one a store made for this read), else a
    copy (a store may hand out a view of memory it keeps, such as the memory store's)."""
    array = np.asarray(values)
    return array if array.flags.owndata else array.copy()


def _read_chunk(store: DocumentStore, chunk: Chunk, fields: list[str]):
    return store.read_events(
        chunk.descriptor, fields=fields, seq_range=(chunk.seq_start, chunk.seq_stop)
    )


def _take(columns, group: str, key: str, dtype: np.dtype, shape: tuple[int, ...], rows: int):
    values = getattr(columns, group).get(key)
    if values is None:  # this descriptor of the stream lacks the key
        if dtype.kind not in "fcO":
            dtype = np.dtype("float64") if dtype.kind in "iub" else np.dtype("object")
        return np.full((rows, *shape), _fill_value(dtype), dtype=dtype)
    array = np.asarray(values)
    if array.shape != (rows, *shape):
        raise ValueError(
            f"data key {key!r}: the descriptor declares shape {list(shape)} per event but the "
            f"stored events have shape {list(array.shape[1:])} ({array.shape[0]} of {rows} rows)"
        )
    return array if array.dtype == dtype else array.astype(dtype)


def _read_datum_chunk(
    store: DocumentStore,
    reader: AssetReader,
    chunk: Chunk,
    key: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
) -> np.ndarray:
    columns = _read_chunk(store, chunk, [key])
    return reader.read_datums(key, list(columns.data[key]), dtype, shape)


def _read_stream_chunk(
    reader: AssetReader, chunk: Chunk, key: str, dtype: np.dtype, shape: tuple[int, ...]
) -> np.ndarray:
    return reader.read_stream(
        key, chunk.descriptor, (chunk.seq_start, chunk.seq_stop), dtype, shape
    )


class StreamLayout:
    """What a stream is made of, learned from descriptors and chunk metadata only."""

    def __init__(
        self, store: DocumentStore, descriptors: Sequence[dict], reader: AssetReader | None = None
    ):
        self.store = store
        self.reader = reader
        self.descriptors = list(descriptors)
        self.data_keys: dict[str, dict] = {}
        for descriptor in self.descriptors:
            for key, dk in descriptor["data_keys"].items():
                self.data_keys.setdefault(key, dk)
        self.chunks: list[Chunk] = sorted(
            (c for d in self.descriptors for c in store.event_chunks(d["uid"])),
            key=lambda c: c.seq_start,
        )
        self.fields_of = {d["uid"]: set(d["data_keys"]) for d in self.descriptors}
        self._offsets: np.ndarray | None = None  # the first row of each chunk, when asked

    def __len__(self) -> int:
        return sum(c.rows for c in self.chunks)

    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """``time`` and ``seq_num`` of every event, in chunk order (reads only those columns)."""
        times, seqs = [], []
        per_descriptor = {
            d["uid"]: self.store.read_events(d["uid"], fields=[]) for d in self.descriptors
        }
        if len(per_descriptor) == 1 and self.chunks:
            # One descriptor: its chunks are consecutive ranges of its events; one slice
            # (copied: a store may hand out its own memory) instead of one per chunk.
            cols = next(iter(per_descriptor.values()))
            lo, hi = np.searchsorted(
                cols.seq_num, (self.chunks[0].seq_start, self.chunks[-1].seq_stop)
            )
            if hi - lo == len(self):
                return np.array(cols.time[lo:hi]), np.array(cols.seq_num[lo:hi])
        for chunk in self.chunks:
            cols = per_descriptor[chunk.descriptor]
            lo, hi = np.searchsorted(cols.seq_num, (chunk.seq_start, chunk.seq_stop))
            times.append(cols.time[lo:hi])
            seqs.append(cols.seq_num[lo:hi])
        if not times:
            return np.empty(0, float), np.empty(0, np.int64)
        return np.concatenate(times), np.concatenate(seqs)

    def row_reads(self, seq_num: np.ndarray, lo: int, hi: int) -> list[tuple[str, int, int, int]]:
        """The store reads ``(descriptor, seq_start, seq_stop, rows)`` that give the rows
        ``lo:hi`` of the stream (in the order of :meth:`index`, whose ``seq_num`` is given):
        one read per run of neighbouring chunks of one descriptor, not one per chunk."""
        reads: list[tuple[str, int, int, int]] = []
        if self._offsets is None:
            self._offsets = np.cumsum([0, *(c.rows for c in self.chunks)])
        offsets = self._offsets
        first = max(int(np.searchsorted(offsets, lo, side="right")) - 1, 0)
        for j in range(first, len(self.chunks)):
            chunk = self.chunks[j]
            start, stop = int(offsets[j]), int(offsets[j + 1])
            if stop <= lo:
                continue
            if start >= hi:
                break
            a, b = max(lo, start), min(hi, stop)
            first, last = int(seq_num[a]), int(seq_num[b - 1]) + 1
            if reads and reads[-1][0] == chunk.descriptor and reads[-1][2] <= first:
                uid, seq_start, _, rows = reads[-1]
                reads[-1] = (uid, seq_start, last, rows + b - a)
            else:
                reads.append((chunk.descriptor, first, last, b - a))
        return reads

    def read_rows(
        self, reads: Sequence[tuple[str, int, int, int]], fields: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """The values of the inline ``fields`` for ``reads`` (from :meth:`row_reads`), one
        array per field; a descriptor without a field gives its fill value (NaN / None)."""
        parts: dict[str, list[np.ndarray]] = {key: [] for key in fields}
        for uid, seq_start, seq_stop, rows in reads:
            columns = self.store.read_events(
                uid,
                fields=[f for f in fields if f in self.fields_of[uid]],
                seq_range=(seq_start, seq_stop),
            )
            if len(columns.seq_num) != rows:
                raise ValueError(
                    f"descriptor {uid!r} gave {len(columns.seq_num)} events for seq_num "
                    f"{seq_start}..{seq_stop - 1}, where its chunks list {rows}"
                )
            for key in fields:
                parts[key].append(_take(columns, "data", key, *self._field_spec(key, "data"), rows))
        return {
            key: arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            for key, arrays in parts.items()
        }

    def inline(self, key: str) -> bool:
        """Whether ``key``'s values are in the events (not in external files)."""
        return self._asset_kind(key, "data") is None

    def _field_spec(self, key: str, group: str) -> tuple[np.dtype, tuple[int, ...]]:
        if group == "timestamps":
            return np.dtype("float64"), ()
        return field_dtype(self.data_keys[key]), field_shape(self.data_keys[key])

    def _filled_dtype(self, key: str, group: str, descriptors: set[str]) -> np.dtype:
        """The dtype of ``key`` over these descriptors: its own, or -- when one of them lacks
        the key and the dtype has no missing value -- float64 (numbers, NaN) or object."""
        dtype = self._field_spec(key, group)[0]
        if dtype.kind in "fcO" or all(key in self.fields_of[uid] for uid in descriptors):
            return dtype
        return np.dtype("float64") if dtype.kind in "iub" else np.dtype("object")

    def _asset_kind(self, key: str, group: str) -> str | None:
        return None if group == "timestamps" else asset_kind(self.data_keys[key])

    def asset_chunks(self, key: str) -> list[Chunk]:
        """The stored chunks cut to a few frames each, so that reading a frame reads little.

        A chunk whose seq_nums have gaps stays whole (its rows cannot be cut by seq_num).
        """
        step = frames_per_chunk(*self._field_spec(key, "data")[::-1])
        out = []
        for chunk in self.chunks:
            if chunk.seq_stop - chunk.seq_start != chunk.rows or chunk.rows <= step:
                out.append(chunk)
                continue
            for lo in range(chunk.seq_start, chunk.seq_stop, step):
                hi = min(lo + step, chunk.seq_stop)
                out.append(Chunk(chunk.descriptor, lo, hi, hi - lo))
        return out

    def _asset_tasks(self, key: str, chunks: Sequence[Chunk]) -> list[tuple]:
        """One task per chunk reading the asset values of ``key``."""
        if self.reader is None:
            raise ValueError(
                f"data key {key!r} is kept in external files; open the stream "
                "through a catalog so it knows the asset handlers"
            )
        dtype, shape = self._field_spec(key, "data")
        if self._asset_kind(key, "data") == "stream":
            return [(_read_stream_chunk, self.reader, chunk, key, dtype, shape) for chunk in chunks]
        return [
            (_read_datum_chunk, self.store, self.reader, chunk, key, dtype, shape)
            for chunk in chunks
        ]

    def arrays(
        self,
        fields: Iterable[str],
        group: str = "data",
        index: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every value of the fields now (what ``read()`` uses): one store read per chunk --
        or one for the whole stream when it has one descriptor -- without scheduling a dask
        task per chunk and field. ``index``, when given, receives one ``(time, seq_num)``
        pair for the whole stream.

        One read: its columns are the result (no copy). Several: each field's result array
        is allocated once and every read's rows are copied into their place in it (no list
        of parts joined at the end: the peak is about the result, not twice it)."""
        fields = list(fields)
        inline = [f for f in fields if self._asset_kind(f, group) is None]
        if len(self.descriptors) == 1 and self.chunks:
            # One descriptor: one read over all its chunks, columns used as they come.
            uid, rows = self.descriptors[0]["uid"], sum(c.rows for c in self.chunks)
            reads = [(self.chunks[0].seq_start, self.chunks[-1].seq_stop, rows, uid)]
        else:
            reads = [(c.seq_start, c.seq_stop, c.rows, c.descriptor) for c in self.chunks]
        total = sum(r[2] for r in reads)
        out: dict[str, np.ndarray] = {}
        if len(reads) > 1:
            for key in inline:
                dtype = self._filled_dtype(key, group, {r[3] for r in reads})
                out[key] = np.empty((total, *self._field_spec(key, group)[1]), dtype)
            if index is not None:
                time_out, seq_out = np.empty(total, float), np.empty(total, np.int64)
        pos = 0
        for seq_start, seq_stop, rows, uid in reads if inline or index is not None else ():
            columns = self.store.read_events(
                uid,
                fields=[f for f in inline if f in self.fields_of[uid]],
                seq_range=(seq_start, seq_stop),
            )
            if index is not None and len(reads) == 1:  # time and seq_num come with the reads
                index.append((_own(columns.time), _own(columns.seq_num)))
            elif index is not None:
                time_out[pos : pos + rows] = columns.time
                seq_out[pos : pos + rows] = columns.seq_num
            for key in inline:
                values = _take(columns, group, key, *self._field_spec(key, group), rows)
                if len(reads) == 1:
                    out[key] = values
                else:
                    out[key][pos : pos + rows] = values
            pos += rows
        if index is not None and len(reads) > 1:
            index.append((time_out, seq_out))
        for key in fields:
            if key in inline:
                if not reads:
                    dtype, shape = self._field_spec(key, group)
                    out[key] = np.empty((0, *shape), dtype)
                continue
            parts = [func(*args) for func, *args in self._asset_tasks(key, self.chunks)]
            if len(parts) == 1:
                out[key] = parts[0]
            else:
                dtype, shape = self._field_spec(key, group)
                out[key] = np.concatenate(parts) if parts else np.empty((0, *shape), dtype)
        return {key: out[key] for key in fields}

    def dask_arrays(self, fields: Iterable[str], group: str = "data") -> dict[str, Any]:
        """One dask array per field: inline fields share one read task per stored chunk;
        asset fields get a task per few frames."""
        import dask.array as da
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        fields = list(fields)
        inline = [f for f in fields if self._asset_kind(f, group) is None]
        token = tokenize(
            id(self.store),
            [(c.descriptor, c.seq_start, c.seq_stop, c.rows) for c in self.chunks],
            fields,
            group,
        )
        read_name = f"read-events-{token}"
        read_layer: dict[Key, Any] = {
            (read_name, i): (
                _read_chunk,
                self.store,
                chunk,
                [f for f in inline if f in self.fields_of[chunk.descriptor]],
            )
            for i, chunk in enumerate(self.chunks)
        }
        out = {}
        for key in fields:
            dtype, shape = self._field_spec(key, group)
            if key in inline:
                dtype = self._filled_dtype(key, group, {c.descriptor for c in self.chunks})
            name = f"{key}-{group}-{token}"
            zeros = (0,) * len(shape)
            if key in inline:
                chunks = self.chunks
                layer: dict[Key, Any] = {
                    (name, i, *zeros): (_take, (read_name, i), group, key, dtype, shape, chunk.rows)
                    for i, chunk in enumerate(chunks)
                }
                graph = HighLevelGraph(
                    {read_name: read_layer, name: layer}, {read_name: set(), name: {read_name}}
                )
            else:
                chunks = self.asset_chunks(key)
                layer = {
                    (name, i, *zeros): task for i, task in enumerate(self._asset_tasks(key, chunks))
                }
                graph = HighLevelGraph({name: layer}, {name: set()})
            if not chunks:
                out[key] = da.empty((0, *shape), dtype=dtype)
                continue
            rows = tuple(c.rows for c in chunks)
            out[key] = da.Array(graph, name, chunks=(rows, *((n,) for n in shape)), dtype=dtype)
        return out


class Stream(DataSource):
    """One stream of a run (``run.primary``), read as an ``xarray.Dataset`` with dimension
    ``time``.

    ``to_dask()`` gives the lazy dataset, ``read()`` the loaded one; ``stream(include=[...],
    exclude=[...])`` selects data keys; ``config`` and ``timestamps`` give the configuration
    and the per-key timestamps.

    The dataset has the variables databroker gave: the data keys and the ``time``
    coordinate. ``stream(seq_num=True)`` adds each event's ``seq_num`` as a second
    coordinate along ``time`` (what every dataset had before 0.2; the exports and the
    multi-run calls of :mod:`intake_broker.views.mux` ask for it).
    """

    container = "xarray"
    version = "0.1.0"
    partition_access = True

    def __init__(
        self,
        store: DocumentStore,
        run_uid: str,
        stream_name: str,
        descriptors: Sequence[dict],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        metadata: dict | None = None,
        assets: AssetReader | None = None,
        datetimes: str | None = None,
        seq_num: bool = False,
    ):
        self._store = store
        self._datetimes = datetimes
        self._seq_num = bool(seq_num)
        self._assets = assets
        self._run_uid = run_uid
        self._descriptors = list(descriptors)
        self._include = list(include) if include is not None else None
        self._exclude = list(exclude or ())
        self._layout: StreamLayout | None = None
        self.name = stream_name
        meta = {"stream_name": stream_name, "descriptors": self._descriptors}
        super().__init__(metadata={**meta, **(metadata or {})})

    def __call__(
        self,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        *,
        datetimes: bool | str = False,
        seq_num: bool = False,
        **kwargs,
    ) -> Stream:
        """The same stream restricted to ``include`` keys and without ``exclude`` keys.

        ``datetimes=True`` adds a ``datetime`` coordinate (``datetime64[ns]`` wall times in the
        catalog's time zone, UTC when it names none); a zone name (``"Europe/Berlin"``) picks
        the zone. ``time`` stays float seconds. ``seq_num=True`` adds the events' ``seq_num``
        coordinate along ``time``.
        """
        zone: str | None = None
        if datetimes is True:
            zone = self.metadata.get("timezone") or "UTC"
        elif isinstance(datetimes, str):
            zone = datetimes
        elif datetimes is not False:
            from intake_broker.errors import WrongArgumentType

            raise WrongArgumentType(
                f"datetimes must be True, False or a time zone name, not {datetimes!r}"
            )
        if not isinstance(seq_num, bool):
            from intake_broker.errors import WrongArgumentType

            raise WrongArgumentType(f"seq_num must be True or False, not {seq_num!r}")
        return Stream(
            self._store,
            self._run_uid,
            self.name,
            self._descriptors,
            include=include,
            exclude=exclude,
            assets=self._assets,
            datetimes=zone,
            seq_num=seq_num,
            metadata={k: v for k, v in self.metadata.items() if k == "timezone"},
        )

    def _with(self, **changes: Any) -> Stream:
        """This stream with some settings changed (``include``, ``exclude``, ``datetimes``
        as a zone or None, ``seq_num``), the others kept."""
        settings: dict[str, Any] = {
            "include": self._include,
            "exclude": self._exclude,
            "datetimes": self._datetimes,
            "seq_num": self._seq_num,
            **changes,
        }
        return Stream(
            self._store,
            self._run_uid,
            self.name,
            self._descriptors,
            assets=self._assets,
            metadata={k: v for k, v in self.metadata.items() if k == "timezone"},
            **settings,
        )

    def __repr__(self) -> str:
        return (
            f"<Stream {self.name!r} of run {self._run_uid[:8]}: "
            f"{plural(len(self.layout), 'event')}, fields {self.fields}>"
        )

    # -- intake idioms ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What this stream is (intake's ``describe``): run, name, fields, events, chunks."""
        from intake_broker.views.describe import json_safe

        return {
            "name": self.name,
            "container": "xarray",
            "run_uid": self._run_uid,
            "fields": self.fields,
            "events": len(self.layout),
            "npartitions": len(self.layout.chunks),
            "metadata": json_safe({"stream_name": self.name, "descriptors": self._descriptors}),
        }

    def _yaml(self) -> dict[str, Any]:
        return {"stream": self.describe()}

    def yaml(self) -> str:
        """:meth:`describe` as YAML (plain data). A YAML entry that opens this stream without
        intake-broker is what :meth:`export_zarr` gives (``export.yaml()``)."""
        from intake_broker.views.describe import dump_yaml

        return dump_yaml(self._yaml())

    def export_zarr(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        overwrite: bool = False,
        consolidated: bool = True,
    ) -> ZarrExport:
        """Write this stream as a zarr store at ``url`` (a folder or an fsspec URL such as
        ``s3://bucket/streams/scan.zarr``) that plain xarray and intake-xarray read lazily,
        without intake-broker: ``xr.open_zarr(url, storage_options=...)``.

        The stream is read chunk by chunk (its dask chunks, one stored page each) and written
        with ``xarray.Dataset.to_zarr``: the data keys with their dimensions and attributes,
        ``time`` and ``seq_num`` coordinates, the run uid and stream name as attributes.
        Keys whose values are not numbers or strings (JSON-valued, structured) are left out
        and listed in the store's ``skipped_fields`` attribute.

        ``overwrite=False`` refuses a store that is already there. Returns a
        :class:`ZarrExport` with the URL and an intake-xarray entry (``export.yaml()``).
        """
        from intake_broker.views.export import export_stream

        return export_stream(
            self,
            url,
            storage_options=storage_options,
            overwrite=overwrite,
            consolidated=consolidated,
        )

    @property
    def layout(self) -> StreamLayout:
        if self._layout is None:
            self._layout = StreamLayout(self._store, self._descriptors, self._assets)
        return self._layout

    @property
    def fields(self) -> list[str]:
        """The data keys this stream gives, after include/exclude."""
        keys = list(self.layout.data_keys)
        if self._include is not None:
            unknown = sorted(set(self._include) - set(keys))
            if unknown:
                raise KeyError(f"stream {self.name!r} has no data keys {unknown}; it has {keys}")
            keys = [k for k in keys if k in self._include]
        return [k for k in keys if k not in self._exclude]

    def _get_schema(self) -> Schema:
        return Schema(
            dtype=None,
            shape=(len(self.layout),),
            npartitions=len(self.layout.chunks),
            extra_metadata={},
        )

    def _dataset(self, group: str, lazy: bool = True):
        import xarray as xr

        layout = self.layout
        if lazy:
            time, seq_num = layout.index()
            arrays = layout.dask_arrays(self.fields, group)
        else:  # one pass: the index comes with the data
            parts: list[tuple[np.ndarray, np.ndarray]] = []
            arrays = layout.arrays(self.fields, group, index=parts)
            (time, seq_num) = parts[0] if parts else (np.empty(0, float), np.empty(0, np.int64))
        data_vars = {}
        for key, array in arrays.items():
            dk = layout.data_keys[key]
            dims = ("time",) if group == "timestamps" else field_dims(key, dk)
            data_vars[key] = xr.Variable(dims, array, attrs=field_attrs(dk))
        import pandas as pd

        import intake_broker.views.returns  # noqa: F401  (registers the ds.broker accessor)

        # the time index wraps the array read (pandas would copy it: 8 MB a million events)
        coords: dict[str, Any] = {"time": pd.Index(time, copy=False, name="time")}
        if self._seq_num:
            coords["seq_num"] = ("time", seq_num)
        ds = xr.Dataset(
            data_vars,
            coords=coords,
            attrs={"stream_name": self.name, "run_uid": self._run_uid},
        )
        if self._datetimes is not None:
            from intake_broker.views.mux import with_datetimes

            ds = with_datetimes(ds, self._datetimes)
        return ds

    def to_dask(self, variables: Sequence[str] | None = None):
        """The stream as a lazy ``xarray.Dataset``: one dask chunk per stored page.
        ``variables`` keeps only those data keys (``to_dask(["det"])``)."""
        return self._selected(variables)._dataset("data")

    def read(self, variables: Sequence[str] | None = None):
        """The stream as an ``xarray.Dataset`` held in memory; ``variables`` keeps only those
        data keys (``run.primary.read(["det"])``, as databroker 2 reads)."""
        return self._selected(variables)._dataset("data", lazy=False)

    def _selected(self, variables: Sequence[str] | None) -> Stream:
        if variables is None:
            return self
        if isinstance(variables, str):
            variables = [variables]
        keys = self.fields
        unknown = [v for v in variables if v not in keys]
        if unknown:
            raise FieldNotFound(f"stream {self.name!r} has no data keys {unknown}; it has {keys}")
        return self._with(include=list(variables), exclude=[])

    def __getitem__(self, key: str) -> Any:
        """databroker 2's nodes of a stream: ``stream["data"]`` (the data keys, each an
        array read lazily), ``stream["timestamps"]``, ``stream["config"]``; ``"data/det"``
        is ``["data"]["det"]``."""
        if not isinstance(key, str):
            raise TypeError(f"a stream's nodes are named by strings, got {type(key).__name__}")
        head, _, rest = key.partition("/")
        nodes = {
            "data": lambda: StreamData(self, "data"),
            "timestamps": lambda: StreamData(self, "timestamps"),
            "config": lambda: self.config,
        }
        if head not in nodes:
            raise KeyError(
                f"stream {self.name!r} has the nodes 'data', 'timestamps' and 'config', "
                f"not {head!r}"
            )
        node = nodes[head]()
        return node[rest] if rest else node

    def keys(self) -> list[str]:
        """The nodes ``__getitem__`` gives."""
        return ["data", "timestamps", "config"]

    # -- other returns and shapes (intake_broker.views.returns / .mux) ---------------------
    # (these keep the ``seq_num`` coordinate: it is how pivot / stack / split label events)

    def to_pandas(self):
        """The stream as a ``pandas.DataFrame`` indexed by ``time`` (array fields: one numpy
        array per cell)."""
        from intake_broker.views.returns import to_pandas

        return to_pandas(self._with(seq_num=True).read())

    def to_numpy(self, structured: bool = False):
        """The stream's columns as a dict of numpy arrays (``time``, ``seq_num`` and each
        field), or one structured array."""
        from intake_broker.views.returns import to_numpy

        return to_numpy(self._with(seq_num=True).read(), structured=structured)

    def to_arrow(self):
        """The stream as a ``pyarrow.Table``; images as ``fixed_shape_tensor`` columns."""
        from intake_broker.views.returns import to_arrow

        return to_arrow(self._with(seq_num=True).read())

    def resample(self, period: Any, how: str = "mean"):
        """The stream in bins of ``period`` (``"1s"``, seconds, a timedelta): see
        :func:`intake_broker.views.mux.resample`."""
        from intake_broker.views.mux import resample

        return resample(self._with(seq_num=True).to_dask(), period, how)

    def split(self, by: str) -> dict:
        """The events grouped by the value of field ``by``: ``{value: dataset}``."""
        from intake_broker.views.mux import split

        return split(self._with(seq_num=True).to_dask(), by)

    def pivot(self, fields: Sequence[str] | str, *, time: str | None = None):
        """Waveform fields as a series of events: see :func:`intake_broker.views.mux.pivot`."""
        from intake_broker.views.mux import pivot

        return pivot(self._with(seq_num=True).to_dask(), fields, time=time)

    def _get_partition(self, i: int):
        return self.to_dask().isel(time=self._partition_slice(i)).load()

    def _partition_slice(self, i: int) -> slice:
        rows = [c.rows for c in self.layout.chunks]
        start = sum(rows[:i])
        return slice(start, start + rows[i])

    def _close(self) -> None:
        self._layout = None

    @property
    def timestamps(self) -> StreamTimestamps:
        """The per-key timestamps of this stream (``.read()`` / ``.to_dask()``)."""
        return StreamTimestamps(self)

    @property
    def config(self) -> StreamConfig:
        """Configuration per device (object name): ``run.primary.config["det"].read()``.

        A device without configuration in this stream is a :class:`ConfigurationNotFound`
        (a ``KeyError``) naming the devices that have some."""
        objects: list[str] = []
        for descriptor in self._descriptors:
            objects += [o for o in descriptor.get("configuration", {}) if o not in objects]
        return StreamConfig(self, {obj: ConfigSource(self, obj) for obj in objects})


class StreamConfig(dict[str, "ConfigSource"]):
    """The configuration of a stream's devices: a dict whose missing keys are clear errors."""

    def __init__(self, stream: Stream, sources: dict[str, ConfigSource]):
        super().__init__(sources)
        self._stream = stream

    def __missing__(self, key: str) -> ConfigSource:
        has = sorted(self)
        what = f"the devices {has}" if has else "no device configuration at all"
        hint = ""
        if isinstance(key, str) and key in self._stream.fields:
            hint = f"; {key!r} is a data key: its readings are in .read()[{key!r}]"
        raise ConfigurationNotFound(
            f"stream {self._stream.name!r} has no configuration of a device {key!r}; "
            f"it has {what}{hint}"
        )


class StreamData(Mapping):
    """The data keys of a stream as a mapping of lazily read arrays, as databroker 2 gives
    ``run["primary"]["data"]``: ``["det"]`` is a :class:`FieldArray`; ``read()`` is the
    ``xarray.Dataset`` (``read(["det"])`` some of it)."""

    def __init__(self, stream: Stream, group: str = "data"):
        self._stream = stream
        self._group = group

    def __getitem__(self, key: str) -> FieldArray:
        if key not in self._stream.fields:
            raise FieldNotFound(
                f"stream {self._stream.name!r} has no data key {key!r}; "
                f"it has {self._stream.fields}"
            )
        return FieldArray(self._stream, key, self._group)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stream.fields)

    def __len__(self) -> int:
        return len(self._stream.fields)

    def read(self, variables: Sequence[str] | None = None):
        """The data (or timestamps) as an ``xarray.Dataset`` in memory."""
        stream = self._stream._selected(variables)
        return stream._dataset(self._group, lazy=False)

    def to_dask(self, variables: Sequence[str] | None = None):
        """The data (or timestamps) as a lazy ``xarray.Dataset``."""
        return self._stream._selected(variables)._dataset(self._group)

    def __repr__(self) -> str:
        return f"<StreamData {self._group!r} of {self._stream!r}: {list(self)}>"


class FieldArray:
    """One data key of a stream, as an array read when sliced: ``shape``, ``dtype``,
    ``ndim``, ``len()``, ``[...]`` (reads only the chunks the slice touches) and ``read()``
    (everything). ``to_dask()`` is the dask array itself."""

    def __init__(self, stream: Stream, key: str, group: str = "data"):
        self._stream = stream
        self._key = key
        self._group = group
        self._array: Any = None

    def to_dask(self):
        """The lazy dask array (one chunk per stored page, or a few frames for assets)."""
        if self._array is None:
            self._array = self._stream.layout.dask_arrays([self._key], self._group)[self._key]
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.to_dask().shape)

    @property
    def dtype(self) -> np.dtype:
        return self.to_dask().dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.to_dask()[index].compute())

    def read(self, slice: Any = ...) -> np.ndarray:  # noqa: A002 -- tiled's name
        """The values (of ``slice``) as a numpy array."""
        if slice is ...:
            return self._stream.layout.arrays([self._key], self._group)[self._key]
        return self[slice]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.read()
        return values if dtype is None else values.astype(dtype)

    def __repr__(self) -> str:
        return f"<FieldArray {self._key!r} shape={self.shape} dtype={self.dtype}>"


class StreamTimestamps(DataSource):
    """The timestamps of every data key of a stream, one ``float`` per event and key."""

    container = "xarray"

    def __init__(self, stream: Stream):
        self._stream = stream
        super().__init__(metadata={"stream_name": stream.name})

    def __repr__(self) -> str:
        return (
            f"<StreamTimestamps of stream {self._stream.name!r} of run {self._stream._run_uid[:8]}>"
        )

    def _yaml(self) -> dict[str, Any]:
        return {"timestamps": {"stream": self._stream.name, "run_uid": self._stream._run_uid}}

    def to_dask(self):
        return self._stream._dataset("timestamps")

    def read(self):
        return self._stream._dataset("timestamps", lazy=False)


class ConfigSource(DataSource):
    """Configuration of one device over a stream: one row per event, from the descriptors."""

    container = "xarray"

    def __init__(self, stream: Stream, object_name: str):
        self._stream = stream
        self._object = object_name
        super().__init__(metadata={"stream_name": stream.name, "object_name": object_name})

    def __repr__(self) -> str:
        return (
            f"<ConfigSource {self._object!r} of stream {self._stream.name!r} of run "
            f"{self._stream._run_uid[:8]}>"
        )

    def _yaml(self) -> dict[str, Any]:
        return {
            "configuration": {
                "object_name": self._object,
                "stream": self._stream.name,
                "run_uid": self._stream._run_uid,
            }
        }

    def read(self):
        import xarray as xr

        layout = self._stream.layout
        time, seq_num = layout.index()
        by_descriptor = {
            d["uid"]: d.get("configuration", {}).get(self._object, {}) for d in layout.descriptors
        }
        keys: dict[str, dict] = {}
        for conf in by_descriptor.values():
            for key, dk in conf.get("data_keys", {}).items():
                keys.setdefault(key, dk)
        data_vars = {}
        for key, dk in keys.items():
            dtype, shape = field_dtype(dk), field_shape(dk)
            parts = []
            for chunk in layout.chunks:
                value = by_descriptor[chunk.descriptor].get("data", {}).get(key)
                value = np.asarray(value, dtype=dtype if value is not None else object)
                parts.append(np.broadcast_to(value, (chunk.rows, *value.shape)))
            values = np.concatenate(parts) if parts else np.empty((0, *shape), dtype)
            data_vars[key] = (field_dims(key, dk), values)
        coords: dict[str, Any] = {"time": time}
        if self._stream._seq_num:
            coords["seq_num"] = ("time", seq_num)
        return xr.Dataset(data_vars, coords=coords, attrs={"object_name": self._object})

    def to_dask(self):
        return self.read()
