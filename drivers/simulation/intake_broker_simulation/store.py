"""``SimulationStore``: a folder, glob or fsspec URL of simulation outputs (NetCDF, HDF5, zarr)
as a read-only store of Bluesky runs."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from fsspec.core import url_to_fs

from intake_broker.errors import (
    CorruptFile,
    DescriptorNotFound,
    RunNotFound,
    SourceNotFound,
    StreamNotFound,
)
from intake_broker.queries import Query
from intake_broker.store import NEWEST_FIRST, Chunk, DocumentStore, EventColumns, RecentMatches
from intake_broker.store.contract import RunRecord

from .outputs import (
    OutputInfo,
    SimulationOutputWarning,
    cf_time,
    has_magic,
    is_output_name,
    scan_output,
    version_key,
)
from .runs import (
    DEFAULT_JSON_ATTRIBUTES,
    NAMESPACE,
    MetadataMapping,
    SimulationRun,
    StreamInfo,
    build_run,
)

#: Outputs scanned in this process, by URL and version: a catalog opened again (or a second
#: catalog over the same folder) reads no file it has read before.
_SCANNED: OrderedDict[tuple[str, str], OutputInfo] = OrderedDict()
_SCANNED_LOCK = threading.Lock()
_SCANNED_SIZE = 100_000


def _remember(key: tuple[str, str], info: OutputInfo) -> None:
    with _SCANNED_LOCK:
        _SCANNED[key] = info
        _SCANNED.move_to_end(key)
        while len(_SCANNED) > _SCANNED_SIZE:
            _SCANNED.popitem(last=False)


def _restore(arguments: dict) -> SimulationStore:
    return SimulationStore(**arguments)


class SimulationStore(DocumentStore):
    """Simulation outputs as runs: each NetCDF / HDF5 file or zarr store is one run.

    * its **uid** is a mapped attribute (``uid``, ``uuid``) or derived from the output's name,
      size, attributes and structure: the same files give the same uids in every process;
    * its **start document** comes from the global attributes through a
      :class:`~intake_broker_simulation.runs.MetadataMapping` (which attributes become
      ``plan_name``, ``sample``, ``scan_id``, ``time``, ...; the rest are kept in
      ``start["attributes"]``);
    * its **streams** are its groups, and in each group the sets of variables sharing their
      first dimension (the root group's ``time`` dimension, else its largest set, is
      ``primary``); a CF time coordinate of that dimension gives the events' times, 0-d
      variables become the configuration of their group's stream;
    * values are read lazily through intake-xarray's ``NetCDFSource`` / ``ZarrSource`` (dask
      arrays), one stored chunk at a time.

    Listing reads only metadata, once per file version in a process (and once at all with
    ``cache``). Outputs that cannot be read are left out with a
    :class:`~intake_broker_simulation.SimulationOutputWarning` naming them.

    Parameters
    ----------
    paths : str or list of str
        Folders, files, globs or fsspec URLs (``"runs/"``, ``"runs/*.nc"``,
        ``"s3://bucket/sims/"``). A folder means the outputs directly in it (``*.nc``,
        ``*.nc4``, ``*.cdf``, ``*.h5``, ``*.hdf5``, ``*.he5``, ``*.zarr``).
    storage_options : dict, optional
        fsspec options (s3fs credentials, ``client_kwargs: {endpoint_url: ...}``).
    mapping, json_attributes, required, finished_attribute
        How attributes become documents: see
        :class:`~intake_broker_simulation.runs.MetadataMapping`.
    primary_dimension : str
        The root group's dimension whose variables form the ``primary`` stream.
    refresh_interval : float
        Seconds between listings of ``paths`` (new and changed outputs appear).
    cache : str, optional
        A local JSON file keeping the scanned metadata across processes (written when
        something new was scanned; nothing is written without it).
    max_outputs : int
        Most outputs one store takes (the first ones by name; a warning says so).
    """

    writable = False

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        storage_options: Mapping[str, Any] | None = None,
        mapping: Mapping[str, str | Sequence[str] | None] | None = None,
        json_attributes: Sequence[str] = DEFAULT_JSON_ATTRIBUTES,
        required: Sequence[str] = (),
        finished_attribute: str | None = None,
        primary_dimension: str = "time",
        refresh_interval: float = 5.0,
        cache: str | os.PathLike | None = None,
        max_outputs: int = 100_000,
    ):
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise SourceNotFound("SimulationStore needs at least one folder, file, glob or URL")
        self.storage_options = dict(storage_options or {})
        self.metadata_mapping = MetadataMapping(
            mapping, tuple(json_attributes), tuple(required), finished_attribute
        )
        self.primary_dimension = primary_dimension
        self.refresh_interval = float(refresh_interval)
        self.cache = None if cache is None else os.fspath(cache)
        self.max_outputs = int(max_outputs)
        self._lock = threading.RLock()
        self._listed_at = -float("inf")
        self._runs: dict[str, SimulationRun] = {}
        self._built: dict[tuple[str, str], SimulationRun | None] = {}
        self._descriptors: dict[str, tuple[str, str]] = {}
        self._bad: dict[str, str] = {}  # url -> version whose failure was reported
        self._generation = 0
        self._matches = RecentMatches()
        # (url, version, group[, "time:<name>"]) -> open dataset or a stream's times
        self._datasets: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._summaries: dict[tuple[str, str], dict] = {}
        self._filesystems = [url_to_fs(p, **self.storage_options) for p in self.paths]
        self._disk_cache = self._load_cache()
        self._refresh(force=True)

    def _arguments(self) -> dict[str, Any]:
        mapping = self.metadata_mapping
        return {
            "paths": self.paths,
            "storage_options": self.storage_options,
            **mapping.arguments(),
            "primary_dimension": self.primary_dimension,
            "refresh_interval": self.refresh_interval,
            "cache": self.cache,
            "max_outputs": self.max_outputs,
        }

    def __reduce__(self):
        return (_restore, (self._arguments(),))

    def __repr__(self) -> str:
        return f"SimulationStore({self.paths!r})"

    # -- finding and scanning outputs ---------------------------------------------------------

    def _load_cache(self) -> dict[str, dict]:
        if self.cache is None or not os.path.exists(self.cache):
            return {}
        try:
            with open(self.cache, encoding="utf-8") as f:
                data = json.load(f)
            return dict(data.get("outputs", {})) if isinstance(data, dict) else {}
        except (OSError, ValueError) as err:
            warnings.warn(
                f"the scan cache {self.cache} cannot be read ({err}); outputs are scanned again",
                SimulationOutputWarning,
                stacklevel=3,
            )
            return {}

    def _save_cache(self, infos: list[OutputInfo]) -> None:
        if self.cache is None:
            return
        folder = os.path.dirname(os.path.abspath(self.cache))
        os.makedirs(folder, exist_ok=True)
        temporary = f"{self.cache}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "outputs": {i.url: i.to_json() for i in infos}}, f)
        os.replace(temporary, self.cache)

    def _list(self) -> list[tuple[Any, str, str, dict | None]]:
        """``(filesystem, path, url, info)`` of every output under ``paths``."""
        found: dict[str, tuple[Any, str, str, dict | None]] = {}
        for given, (fs, root) in zip(self.paths, self._filesystems, strict=True):
            fs.invalidate_cache()
            try:
                if has_magic(root):
                    entries = fs.glob(root, detail=True)
                    if not entries:
                        warnings.warn(
                            f"{given}: no simulation output matches this pattern yet",
                            SimulationOutputWarning,
                            stacklevel=4,
                        )
                else:
                    info = fs.info(root)
                    if info.get("type") == "directory" and not root.rstrip("/").endswith(".zarr"):
                        entries = {
                            e["name"]: e
                            for e in fs.ls(root, detail=True)
                            if is_output_name(e["name"])
                        }
                    else:
                        entries = {root: info}
            except FileNotFoundError:
                raise SourceNotFound(
                    f"{given}: no such file, folder or bucket; expected a folder, file, glob or "
                    "URL of NetCDF, HDF5 or zarr simulation outputs"
                ) from None
            except (OSError, ValueError) as err:  # permission denied, no such bucket, ...
                raise SourceNotFound(
                    f"{given}: cannot be listed ({type(err).__name__}: {err}); check the path "
                    "and the storage_options (credentials, endpoint)"
                ) from None
            for path, info in entries.items():
                path = info.get("name", path) if isinstance(info, dict) else path
                if not is_output_name(path) and has_magic(root):
                    continue
                url = path if _is_local(fs) else fs.unstrip_protocol(path)
                found.setdefault(url, (fs, path, url, info))
        ordered = [found[url] for url in sorted(found)]
        if len(ordered) > self.max_outputs:
            warnings.warn(
                f"{self.paths}: {len(ordered):,} outputs, more than max_outputs="
                f"{self.max_outputs:,}; only the first by name are listed",
                SimulationOutputWarning,
                stacklevel=4,
            )
            ordered = ordered[: self.max_outputs]
        return ordered

    def _scan(self, fs: Any, path: str, url: str, info: dict | None) -> OutputInfo | None:
        """The metadata of one output: remembered, cached on disk, or read now."""
        version = json.dumps(version_key(fs, path, info), default=str)
        remembered = _SCANNED.get((url, version))
        if remembered is not None:
            return remembered
        cached = self._disk_cache.get(url)
        if cached is not None and json.dumps(cached.get("key"), default=str) == version:
            found = OutputInfo.from_json(cached)
            _remember((url, version), found)
            return found
        if self._bad.get(url) == version:
            return None
        try:
            found = scan_output(fs, path, url, info, self.storage_options)
        except (CorruptFile, FileNotFoundError, OSError) as err:
            self._bad[url] = version
            warnings.warn(
                f"left out: {err}" if isinstance(err, CorruptFile) else f"left out: {url}: {err}",
                SimulationOutputWarning,
                stacklevel=4,
            )
            return None
        _remember((url, version), found)
        return found

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._listed_at < self.refresh_interval:
                return
            listed = self._list()
            infos: list[OutputInfo] = []
            runs: dict[str, SimulationRun] = {}
            built: dict[tuple[str, str], SimulationRun | None] = {}
            scanned_new = False
            for fs, path, url, info in listed:
                found = self._scan(fs, path, url, info)
                if found is None:
                    continue
                infos.append(found)
                if url not in self._disk_cache:
                    scanned_new = True
                key = (url, json.dumps(found.key, default=str))
                if key in self._built:
                    run = self._built[key]
                else:
                    run = build_run(found, self.metadata_mapping, self.primary_dimension)
                built[key] = run
                if run is None:
                    continue
                other = runs.get(run.uid)
                if other is not None:
                    warnings.warn(
                        f"{url} and {other.info.url} have the same uid {run.uid!r}; "
                        f"{other.info.url} is listed, {url} is left out (give each output "
                        "its own uid attribute)",
                        SimulationOutputWarning,
                        stacklevel=3,
                    )
                    continue
                runs[run.uid] = run
            changed = set(built) != set(self._built)
            self._built = built
            self._runs = runs
            self._descriptors = {
                stream.descriptor["uid"]: (run.uid, name)
                for run in runs.values()
                for name, stream in run.streams.items()
            }
            if changed:
                self._generation += 1
            self._listed_at = time.monotonic()
            if self.cache is not None and (scanned_new or len(infos) != len(self._disk_cache)):
                self._save_cache(infos)
                self._disk_cache = {i.url: i.to_json() for i in infos}

    # -- which runs ---------------------------------------------------------------------------

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        self._refresh()
        with self._lock:
            version, records = (
                self._generation,
                [RunRecord(r.start, r.stop) for r in self._runs.values()],
            )
        return self._matches.select(version, lambda: records, query, sort, skip, limit, self)

    def count(self, query: Query | None = None) -> int:
        if query is None:
            self._refresh()
            return len(self._runs)
        return len(self.runs(query))

    def run(self, uid: str) -> RunRecord:
        found = self._run(uid)
        return RunRecord(found.start, found.stop)

    def _run(self, uid: str) -> SimulationRun:
        self._refresh()
        with self._lock:
            found = self._runs.get(uid) if isinstance(uid, str) else None
        if found is None:
            raise RunNotFound(f"no run with uid {uid!r} in {self!r}")
        return found

    # -- a run's contents ---------------------------------------------------------------------

    def descriptors(self, run_uid: str) -> list[dict]:
        return [dict(d) for d in self._run(run_uid).descriptors()]

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The uid of the run a descriptor belongs to."""
        return self._stream(descriptor_uid)[0].uid

    def _stream(self, descriptor_uid: str) -> tuple[SimulationRun, StreamInfo]:
        with self._lock:
            where = self._descriptors.get(descriptor_uid)
        if where is None:
            self._refresh()
            with self._lock:
                where = self._descriptors.get(descriptor_uid)
        if where is None:
            raise DescriptorNotFound(f"no descriptor with uid {descriptor_uid!r} in {self!r}")
        run = self._run(where[0])
        return run, run.streams[where[1]]

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        _, stream = self._stream(descriptor_uid)
        step = max(stream.chunk_rows, 1)
        return [
            Chunk(
                descriptor_uid, lo + 1, min(lo + step, stream.rows) + 1, min(step, stream.rows - lo)
            )
            for lo in range(0, stream.rows, step)
        ]

    def source(self, run_uid: str, stream: str = "primary") -> Any:
        """The intake-xarray source (``NetCDFSource`` or ``ZarrSource``) of one stream's group:
        ``.to_dask()`` is the output's own lazy dataset (its dimensions and coordinates)."""
        run = self._run(run_uid)
        if stream not in run.streams:
            raise StreamNotFound(
                f"run {run_uid!r} has no stream {stream!r}; it has {list(run.streams)}"
            )
        return self._source(run.info, run.streams[stream].group)

    def _source(self, info: OutputInfo, group: str) -> Any:
        options: dict[str, Any] = {"decode_times": False, "decode_timedelta": False}
        storage = self.storage_options or None
        if info.format == "zarr":
            from intake_xarray.xzarr import ZarrSource

            if group != "/":
                options["group"] = group
            return ZarrSource(info.url, storage_options=storage, **options)
        from intake_xarray.netcdf import NetCDFSource

        options["engine"] = "h5netcdf" if info.format == "netcdf4" else "scipy"
        if info.format == "netcdf4":
            options["phony_dims"] = "access"  # as the scan names them
        if group != "/":
            options["group"] = group
        return NetCDFSource(
            info.url, xarray_kwargs=options, storage_options=storage, path_as_pattern=False
        )

    def dataset(self, run_uid: str, stream: str = "primary") -> Any:
        """One stream's group as the output holds it: a lazy, dask-backed ``xarray.Dataset``
        opened by intake-xarray (times not decoded)."""
        return self.source(run_uid, stream).to_dask()

    def _dataset(self, run: SimulationRun, group: str) -> Any:
        key = (run.info.url, json.dumps(run.info.key, default=str), group)
        with self._lock:
            ds = self._datasets.get(key)
            if ds is not None:
                self._datasets.move_to_end(key)
                return ds
        try:
            # intake-xarray's source without dask: xarray's lazily indexed arrays, so a chunk's
            # read is one slice of the file (the stream itself is the core's dask graph)
            ds = self._source(run.info, group).reader(chunks=None, cache=False).read()
        except FileNotFoundError:
            raise RunNotFound(f"run {run.uid!r} was in {run.info.url}, which is gone") from None
        except Exception as err:  # the readers' own errors for a damaged file
            raise CorruptFile(
                f"{run.info.url}: cannot be read ({type(err).__name__}: {err})"
            ) from None
        with self._lock:
            self._datasets[key] = ds
            while len(self._datasets) > 32:
                self._datasets.popitem(last=False)
        return ds

    def _times(self, run: SimulationRun, stream: StreamInfo) -> np.ndarray:
        """A stream's event times (its CF time coordinate in epoch seconds), read once and
        kept while the stream's dataset is."""
        assert stream.time_variable is not None
        version = json.dumps(run.info.key, default=str)
        key = (run.info.url, version, stream.group, f"time:{stream.time_variable.name}")
        with self._lock:
            kept = self._datasets.get(key)
        if kept is None:
            ds = self._dataset(run, stream.group)
            scale, offset = cf_time(stream.time_variable.attrs) or (1.0, 0.0)
            raw = ds[stream.time_variable.name].values
            kept = np.asarray(raw, dtype="float64") * scale + offset
            with self._lock:
                self._datasets[key] = kept
                while len(self._datasets) > 32:
                    self._datasets.popitem(last=False)
        return kept

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> EventColumns:
        run, stream = self._stream(descriptor_uid)
        lo, hi = (1, stream.rows + 1) if seq_range is None else seq_range
        lo, hi = max(int(lo), 1), min(int(hi), stream.rows + 1)
        hi = max(hi, lo)
        names = [v.name for v in stream.variables]
        wanted = names if fields is None else [f for f in fields if f in names]
        rows = slice(lo - 1, hi - 1)
        lazy = []
        if wanted:
            ds = self._dataset(run, stream.group)
            lazy = [ds[name].variable[rows] for name in wanted]
        try:
            values = [v.values for v in lazy]
            times = (
                self._times(run, stream)[rows]
                if stream.time_variable is not None
                else np.full(hi - lo, float(run.start["time"]))
            )
        except FileNotFoundError:
            raise RunNotFound(f"run {run.uid!r} was in {run.info.url}, which is gone") from None
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise CorruptFile(
                f"{run.info.url}: stream {stream.name!r} cannot be read "
                f"({type(err).__name__}: {err})"
            ) from None
        data = {name: np.asarray(v) for name, v in zip(wanted, values, strict=True)}
        columns = EventColumns(
            seq_num=np.arange(lo, hi, dtype=np.int64),
            time=times,
            data=data,
            timestamps={name: times for name in data},
        )
        if uids:
            columns.uid = np.array(
                [str(uuid.uuid5(NAMESPACE, f"{descriptor_uid}/{n}")) for n in range(lo, hi)],
                dtype=object,
            )
        return columns

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        """The run as documents: start, descriptors, one event page per stored chunk (in
        time order), stop. Reads every value."""
        run = self._run(run_uid)
        yield "start", dict(run.start)
        pages = []
        for stream in run.streams.values():
            yield "descriptor", dict(stream.descriptor)
        for stream in run.streams.values():
            uid = stream.descriptor["uid"]
            for chunk in self.event_chunks(uid):
                cols = self.read_events(uid, seq_range=(chunk.seq_start, chunk.seq_stop), uids=True)
                pages.append(
                    {
                        "descriptor": uid,
                        "uid": list(cols.uid if cols.uid is not None else []),
                        "seq_num": cols.seq_num.tolist(),
                        "time": cols.time.tolist(),
                        "data": {k: v.tolist() for k, v in cols.data.items()},
                        "timestamps": {k: v.tolist() for k, v in cols.timestamps.items()},
                        "filled": {},
                    }
                )
        pages.sort(key=lambda p: p["time"][0] if p["time"] else 0.0)
        for page in pages:
            yield "event_page", page
        if run.stop is not None:
            yield "stop", dict(run.stop)

    def summary(self, run_uid: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Statistics of every stream's variables, computed once per version of the file."""
        run = self._run(run_uid)
        key = (run.info.url, json.dumps(run.info.key, default=str))
        kept = self._summaries.get(key)
        if kept is None:
            kept = super().summary(run_uid)
            with self._lock:
                self._summaries[key] = kept
        return {s: {f: dict(v) for f, v in fields.items()} for s, fields in kept.items()}

    def close(self) -> None:
        with self._lock:
            for ds in self._datasets.values():
                try:
                    if hasattr(ds, "close"):
                        ds.close()
                except Exception:  # noqa: BLE001 (closing is best effort)
                    pass
            self._datasets.clear()


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")
