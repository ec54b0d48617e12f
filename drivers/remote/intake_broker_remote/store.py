"""``RemoteStore``: the store contract answered by an intake-broker server over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import numpy as np

from intake_broker.assets import RunAssets
from intake_broker.queries import Query
from intake_broker.store import NEWEST_FIRST, Chunk, DocumentStore, RunRecord

from . import wire
from .client import HTTPClient
from .columns import RemoteColumns
from .errors import InvalidRequest, OversizedRequest

API = "/api/v1"
#: Longer encoded queries go in a POST body rather than the URL.
MAX_URL_QUERY = 2000


def _q(uid: str) -> str:
    return quote(uid, safe="")


def _record(item: Mapping[str, Any]) -> RunRecord:
    return RunRecord(item["start"], item.get("stop"), tuple(item.get("origin") or ()))


def _sort(sort: Sequence[tuple[str, int]]) -> str:
    return ",".join(f"{'-' if direction < 0 else ''}{key}" for key, direction in sort)


def _restore(url: str, options: dict[str, Any]) -> RemoteStore:
    return RemoteStore(url, **options)


class RemoteStore(DocumentStore):
    """The runs of an intake-broker server, as a :class:`~intake_broker.store.DocumentStore`.

    Every method is one or a few HTTP requests over one pooled connection pool; nothing is
    cached, so a live run is seen as it grows. Errors the server reports come back as the same
    :mod:`intake_broker.errors` classes (``RunNotFound``, ``DocumentConflict``, ...).

    Parameters
    ----------
    url : str
        The server, e.g. ``http://broker.example.org:8000`` (a path prefix is allowed).
    timeout : float
        Seconds to wait for a connection and for each read.
    headers : dict, optional
        Extra headers for every request.
    api_key : str, optional
        Sent as ``Authorization: Apikey <key>``.
    retries, backoff : int, float
        Retries after connection failures and 502/503/504, with exponential back-off.
    codecs : sequence of str
        Compression of event data, preferred first (``lz4``, ``blosc``, ``zstd``, ``zlib``,
        ``none``); the server uses the first it has.
    fill : {"server", "client"}
        Who reads external assets (detector files): ``"server"`` (the default) asks the
        server for the values, so the client needs no access to the files; ``"client"`` reads
        them here through the local handlers (a shared file system, with ``root_map``).
    max_connections : int
        Connections kept open to the server.
    parallel : int
        Requests in flight at once when a read too large for one response is split.
    request_bytes : int
        About how many bytes each of those requests asks for (at most half the server's
        response limit).
    raw_reads : bool
        Receive event columns on a socket of our own straight into their arrays (plain
        ``http://`` without a proxy); False reads them through httpx.

    Notes
    -----
    Pickles by URL and options (no connection): runs sent to dask workers reconnect there.
    """

    writable: ClassVar[bool] = True  # the server decides: a read-only one answers 405
    #: The server validates documents; checking here too would only repeat it.
    validate = False

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        codecs: Sequence[str] = wire.DEFAULT_CODECS,
        fill: str = "server",
        max_connections: int = 32,
        parallel: int = 3,
        request_bytes: int = 16 << 20,
        raw_reads: bool = True,
    ):
        if fill not in ("server", "client"):
            raise ValueError(f"fill must be 'server' or 'client', not {fill!r}")
        self.http = HTTPClient(
            url,
            timeout=timeout,
            headers=headers,
            api_key=api_key,
            retries=retries,
            backoff=backoff,
            max_connections=max_connections,
            raw_reads=raw_reads,
        )
        self.parallel = max(1, int(parallel))
        self.request_bytes = int(request_bytes)
        self._response_bytes: int | None = None
        self.codecs = [c for c in codecs if c in wire.available_codecs()] or ["none"]
        self.fill = fill
        self._page: int | None = None

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def fills_assets(self) -> bool:
        """Whether external asset values are read on the server (``fill="server"``)."""
        return self.fill == "server"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _restore,
            (
                self.url,
                {
                    **self.http.options(),
                    "codecs": self.codecs,
                    "fill": self.fill,
                    "parallel": self.parallel,
                    "request_bytes": self.request_bytes,
                },
            ),
        )

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    def close(self) -> None:
        self.http.close()

    def info(self) -> dict[str, Any]:
        """What the server says of itself: version, store type, codecs, limits."""
        return self.http.get(API)

    @property
    def page(self) -> int:
        """The server's page size (asked once)."""
        if self._page is None:
            self._page = int(self.info()["limits"]["page"])
        return self._page

    # -- writing ----------------------------------------------------------------------------

    def insert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Send one document to the server, which validates and stores it (so an invalid
        document raises ``InvalidDocument`` and a conflict ``DocumentConflict`` from there).
        Retrying is safe: an identical re-insert changes nothing."""
        self.http.post(f"{API}/documents", [name, dict(doc)])

    def put(self, kind: str, doc: dict) -> None:
        self.insert(kind, doc)

    # -- runs -------------------------------------------------------------------------------

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        encoded = None if query is None else json.dumps(query.encode())
        found: list[RunRecord] = []
        while limit is None or len(found) < limit:
            size = self.page if limit is None else min(self.page, limit - len(found))
            params = {"sort": _sort(sort), "skip": skip + len(found), "limit": size}
            if encoded is not None and len(encoded) > MAX_URL_QUERY:
                page = self.http.post(
                    f"{API}/runs/search", {**params, "query": json.loads(encoded)}
                )
            else:
                page = self.http.get(f"{API}/runs", query=encoded, **params)
            found += [_record(item) for item in page["data"]]
            if len(page["data"]) < size:
                break
        return found

    def count(self, query: Query | None = None) -> int:
        encoded = None if query is None else json.dumps(query.encode())
        return int(self.http.get(f"{API}/runs/count", query=encoded)["count"])

    def run(self, uid: str) -> RunRecord:
        return _record(self.http.get(f"{API}/runs/{_q(uid)}"))

    # -- annotations (the Annotations ability, answered by the server's store) ------------

    def annotations(self, run_uid: str) -> list[dict]:
        """The annotations of a run the server shows this client."""
        return list(self.http.get(f"{API}/runs/{_q(run_uid)}/annotations")["data"])

    def annotation_history(self, run_uid: str) -> list[dict]:
        """The changes of the annotations of a run the server shows this client."""
        return list(self.http.get(f"{API}/runs/{_q(run_uid)}/annotations/history")["data"])

    def change_annotation(self, run_uid: str, change: Mapping[str, Any]) -> dict:
        """Send one change; the server applies it as the credential's user (a ``write``
        scope is needed) and answers the annotation, or a conflict with its current value."""
        return dict(self.http.post(f"{API}/runs/{_q(run_uid)}/annotations", dict(change)))

    # -- what is in a run -------------------------------------------------------------------

    def _pages(self, path: str) -> list:
        items: list = []
        while True:
            page = self.http.get(path, skip=len(items), limit=self.page)
            items += page["data"]
            if page.get("next") is None:
                return items

    def descriptors(self, run_uid: str) -> list[dict]:
        return self._pages(f"{API}/runs/{_q(run_uid)}/descriptors")

    def descriptor_run(self, descriptor_uid: str) -> str:
        """The uid of the run holding a descriptor the server shows this client
        (``DescriptorNotFound`` otherwise): the descriptor index of the server's store."""
        return str(self.http.get(f"{API}/descriptors/{_q(descriptor_uid)}/run")["run"])

    def event_chunks(self, descriptor_uid: str) -> list[Chunk]:
        return [
            Chunk(descriptor_uid, c["seq_start"], c["seq_stop"], c["rows"])
            for c in self._pages(f"{API}/descriptors/{_q(descriptor_uid)}/chunks")
        ]

    def read_events(
        self,
        descriptor_uid: str,
        *,
        fields: Sequence[str] | None = None,
        seq_range: tuple[int, int] | None = None,
        uids: bool = False,
    ) -> RemoteColumns:
        """Columns fetched group by group when first used (one request now: the data, or
        the index when ``fields`` is empty)."""
        if fields is not None and any("," in f for f in fields):
            raise InvalidRequest(
                f"data keys with commas cannot be requested remotely: "
                f"{[f for f in fields if ',' in f]}"
            )
        columns = RemoteColumns(self, descriptor_uid, fields, seq_range, uids)
        first = ["index"] if fields is not None and not fields else ["data"]
        return columns.load(first + (["uid"] if uids else []))

    def fetch_columns(
        self,
        descriptor_uid: str,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        groups: Sequence[str],
    ) -> tuple[int, dict]:
        """``(rows, {(group, key): array})`` for some groups of events, in one request -- or,
        when the server finds the whole too large for one response, in requests of a few
        stored chunks each, several at a time, received straight into the arrays of the
        whole."""
        try:
            return self._fetch(descriptor_uid, fields, seq_range, groups)
        except OversizedRequest:
            pieces = [
                c
                for c in self.event_chunks(descriptor_uid)
                if seq_range is None or (c.seq_stop > seq_range[0] and c.seq_start < seq_range[1])
            ]
            if len(pieces) <= 1:
                raise
        return self._fetch_split(descriptor_uid, fields, seq_range, groups, pieces)

    @property
    def response_bytes(self) -> int:
        """The server's limit on the bytes of one response (asked once)."""
        if self._response_bytes is None:
            self._response_bytes = int(self.info()["limits"]["response_bytes"])
        return self._response_bytes

    def _fetch_split(
        self,
        descriptor_uid: str,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        groups: Sequence[str],
        pieces: list[Chunk],
    ) -> tuple[int, dict]:
        lo, hi = seq_range if seq_range is not None else (-1, 2**63)
        # (seq_start, seq_stop, rows or None where the range cuts the chunk)
        ranges = [
            (
                max(c.seq_start, lo),
                min(c.seq_stop, hi),
                c.rows if lo <= c.seq_start and c.seq_stop <= hi else None,
            )
            for c in pieces
        ]
        first_rows, first = self._fetch(descriptor_uid, fields, ranges[0][:2], groups)
        per_row = sum(a.nbytes for a in first.values() if not a.dtype.hasobject) / max(
            first_rows, 1
        )
        budget = max(1, min(self.request_bytes, self.response_bytes // 2))
        batches: list[list[tuple[int, int, int | None]]] = []
        for item in ranges[1:]:
            rows = item[2] if item[2] is not None else item[1] - item[0]
            if (
                batches
                and (sum(r[2] if r[2] is not None else r[1] - r[0] for r in batches[-1]) + rows)
                * per_row
                <= budget
            ):
                batches[-1].append(item)
            else:
                batches.append([item])
        known = [
            None if any(r[2] is None for r in b) else sum(r[2] or 0 for r in b) for b in batches
        ]
        sizes = [n for n in known if n is not None]
        targets: dict[tuple[str, str | None], np.ndarray] = {}
        offsets: list[int | None] = [None] * len(batches)
        if ranges[0][2] == first_rows and len(sizes) == len(known):
            total = first_rows + sum(sizes)
            for key, array in first.items():
                if not array.dtype.hasobject and array.shape[:1] == (first_rows,):
                    targets[key] = np.empty((total, *array.shape[1:]), array.dtype)
                    targets[key][:first_rows] = array
            offsets = list(np.cumsum([first_rows, *sizes[:-1]]))

        def fetch(index: int) -> tuple[int, dict]:
            batch, offset, rows = batches[index], offsets[index], known[index]

            def place(spec: dict, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
                target = targets.get((spec["group"], spec["key"]))
                if (
                    target is None
                    or offset is None
                    or rows is None  # (never, when offset is not None)
                    or dtype != target.dtype
                    or shape != (rows, *target.shape[1:])
                ):
                    return None
                return target[offset : offset + rows]

            return self._fetch(descriptor_uid, fields, (batch[0][0], batch[-1][1]), groups, place)

        if self.parallel > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.parallel, len(batches))) as pool:
                parts = [(first_rows, first), *pool.map(fetch, range(len(batches)))]
        else:
            parts = [(first_rows, first), *map(fetch, range(len(batches)))]
        out: dict[tuple[str, str | None], np.ndarray] = {}
        for key in dict.fromkeys(k for _, cols in parts for k in cols):
            arrays = [cols[key] for _, cols in parts if key in cols]
            target = targets.get(key)
            if (
                target is not None
                and len(arrays) == len(parts)
                and all(a.base is target or a is target for a in arrays[1:])
            ):
                out[key] = target
            else:
                out[key] = np.concatenate(arrays)
        return sum(rows for rows, _ in parts), out

    def _fetch(
        self,
        descriptor_uid: str,
        fields: Sequence[str] | None,
        seq_range: tuple[int, int] | None,
        groups: Sequence[str],
        place: wire.Place | None = None,
    ) -> tuple[int, dict]:
        params: dict[str, Any] = {"groups": ",".join(groups), "codec": ",".join(self.codecs)}
        if fields is not None:
            params["fields"] = ",".join(fields)
        if seq_range is not None:
            params["seq_start"], params["seq_stop"] = (
                max(0, int(seq_range[0])),
                max(0, int(seq_range[1])),
            )
        header, columns = self.http.fetch(
            f"{API}/descriptors/{_q(descriptor_uid)}/events",
            lambda readinto, size: wire.read_columns(readinto, size, place),
            accept=wire.COLUMNS,
            params=params,
        )
        return int(header["rows"]), columns

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        return ((name, doc) for name, doc in self._stream(f"{API}/runs/{_q(run_uid)}/documents"))

    def _stream(self, path: str) -> Iterator[Any]:
        unpacker = wire.unpacker()
        with self.http.stream("GET", path, headers={"Accept": wire.MSGPACK}) as response:
            for part in response.iter_bytes():
                unpacker.feed(part)
                yield from unpacker

    # -- assets -----------------------------------------------------------------------------

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        return self.http.get(f"{API}/runs/{_q(run_uid)}/resources/{_q(resource_uid)}")

    def run_assets(self, run_uid: str) -> RunAssets:
        found = self.http.get(f"{API}/runs/{_q(run_uid)}/assets")
        return RunAssets(
            resources=found["resources"],
            datums={k: (v[0], v[1]) for k, v in found["datums"].items()},
            stream_resources=found["stream_resources"],
            stream_datums=found["stream_datums"],
        )

    def datum_pages(self, run_uid: str) -> Iterator[dict]:
        yield from self._stream(f"{API}/runs/{_q(run_uid)}/datum_pages")

    def asset_reader(self, run_uid: str, **options: Any) -> Any:
        """What reads the run's external assets: the server (``fill="server"``), or the
        core's ``AssetReader`` with local handlers (``fill="client"``)."""
        if self.fill == "server":
            from .assets import RemoteAssetReader

            return RemoteAssetReader(self, run_uid)
        from intake_broker.assets import AssetReader

        return AssetReader(self, run_uid, **options)
