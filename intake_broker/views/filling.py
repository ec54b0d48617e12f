"""Filling documents: ``run.documents(fill="yes"|"delayed")``.

Event pages of keys kept in external files (resource + datum) carry datum ids; filling replaces
them with the arrays, read through the run's asset reader -- the same path a stream's chunks
take, so a remote run is filled on its server and a catalog's ``handler_registry`` and
``root_map`` apply. ``delayed`` puts a ``dask.delayed`` in place of each page's column: nothing
is read until it is computed. Keys of stream_resource assets are not carried in events and are
left as they are (read them through the stream).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from intake_broker.views.datakeys import asset_kind, field_dtype, field_shape


def fill_documents(
    docs: Iterable[tuple[str, dict]], reader: Any, *, delayed: bool = False
) -> Iterator[tuple[str, dict]]:
    """``docs`` with the datum ids of every event page replaced by the data they point to.

    Parameters
    ----------
    docs : iterable of (name, doc)
        A run's documents (descriptors before their events, as stores give them).
    reader : AssetReader
        What reads the run's assets (``store.asset_reader(run_uid)``).
    delayed : bool
        Put ``dask.delayed`` objects in place of the arrays.
    """
    external: dict[str, dict[str, tuple[np.dtype, tuple[int, ...]]]] = {}
    for name, doc in docs:
        if name == "descriptor":
            external[doc["uid"]] = {
                key: (field_dtype(dk), field_shape(dk))
                for key, dk in doc.get("data_keys", {}).items()
                if asset_kind(dk) == "datum"
            }
        elif (
            name == "event_page"
            and doc.get("descriptor") in external
            and external[doc["descriptor"]]
        ):
            doc = _fill_page(doc, external[doc["descriptor"]], reader, delayed)
        yield name, doc


def _fill_page(page: dict, keys: dict, reader: Any, delayed: bool) -> dict:
    data, filled = dict(page["data"]), dict(page.get("filled") or {})
    for key, (dtype, shape) in keys.items():
        if key not in data:
            continue
        done = filled.get(key)
        if done is not None and all(f is not False for f in done):
            continue  # filled already
        datum_ids = [str(d) for d in data[key]]
        if delayed:  # one lazy value per event, as event-model's Filler gives
            import dask

            read = dask.delayed(_read_one, pure=True)
            data[key] = [read(reader, key, d, dtype, shape) for d in datum_ids]
        else:
            data[key] = reader.read_datums(key, datum_ids, dtype, shape)
        filled[key] = datum_ids  # as event-model marks a value: the datum id it came from
    return {**page, "data": data, "filled": filled}


def _read_one(reader: Any, key: str, datum_id: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    return reader.read_datums(key, [datum_id], dtype, shape)[0]
