"""``RemoteAssetReader``: external asset values (detector frames) read by the server.

It answers the two calls a stream's asset chunks make of the core's
:class:`~intake_broker.assets.AssetReader`, so the client needs neither the files nor their
handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from intake_broker.assets import AssetReadError, RunAssets

if TYPE_CHECKING:
    from .store import RemoteStore


class RemoteAssetReader:
    """Reads a run's asset data through the server's ``/assets`` endpoints."""

    def __init__(self, store: RemoteStore, run_uid: str):
        self.store = store
        self.run_uid = run_uid

    @property
    def assets(self) -> RunAssets:
        """The run's asset documents (as the core's reader offers)."""
        return self.store.run_assets(self.run_uid)

    def _path(self, what: str) -> str:
        return f"/api/v1/runs/{quote(self.run_uid, safe='')}/assets/{what}"

    def _array(
        self, body: bytearray, key: str, dtype: np.dtype, shape: tuple[int, ...], rows: int
    ) -> np.ndarray:
        from . import wire

        _, columns = wire.decode_columns(body)
        array = columns[("array", key)]
        if array.shape != (rows, *shape):
            raise AssetReadError(
                f"data key {key!r}: the server sent shape {list(array.shape)}"
                f" for {rows} rows of shape {list(shape)}"
            )
        return array if array.dtype == dtype else array.astype(dtype)

    def read_datums(
        self, key: str, datum_ids: Sequence[str], dtype: np.dtype, shape: tuple[int, ...]
    ) -> np.ndarray:
        """The frames of ``datum_ids`` as one array."""
        from . import wire

        body = self.store.http.request(
            "POST",
            self._path("datums"),
            accept=wire.COLUMNS,
            content=wire.packb({"key": key, "datum_ids": [str(d) for d in datum_ids]}),
            headers={"Content-Type": wire.MSGPACK},
            params={"codec": ",".join(self.store.codecs)},
        )
        return self._array(body, key, dtype, shape, len(datum_ids))

    def read_stream(
        self,
        key: str,
        descriptor_uid: str,
        seq_range: tuple[int, int],
        dtype: np.dtype,
        shape: tuple[int, ...],
    ) -> np.ndarray:
        """Rows ``seq_range`` of a stream_resource-backed key as one array."""
        from . import wire

        body = self.store.http.request(
            "GET",
            self._path("stream"),
            accept=wire.COLUMNS,
            params={
                "key": key,
                "descriptor": descriptor_uid,
                "seq_start": seq_range[0],
                "seq_stop": seq_range[1],
                "codec": ",".join(self.store.codecs),
            },
        )
        return self._array(body, key, dtype, shape, seq_range[1] - seq_range[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteAssetReader, (self.store, self.run_uid))
