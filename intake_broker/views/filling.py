"""Filling documents: ``run.documents(fill="yes"|"delayed")``.

Event pages of keys kept in external files (resource + datum) carry datum ids; filling replaces
them with the arrays, read through the run's asset reader -- the same path a stream's chunks
take, so a remote run is filled on its server and a catalog's ``handler_registry`` and
``root_map`` apply. ``delayed`` puts, for each event, a ``dask.array`` of the descriptor's
shape and dtype in place of the datum id (as databroker 1.2 did): nothing is read until it is
computed. Importing this module also registers ``coerce="delayed"`` with event-model's
``Filler`` (:func:`coerce_delayed`), the option databroker registered on import. Keys of
stream_resource assets are not carried in events and are left as they are (read them through
the stream).
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
        if delayed:  # one lazy array per event, of the descriptor's shape and dtype
            data[key] = [_lazy_one(reader, key, d, dtype, shape) for d in datum_ids]
        else:
            data[key] = reader.read_datums(key, datum_ids, dtype, shape)
        filled[key] = datum_ids  # as event-model marks a value: the datum id it came from
    return {**page, "data": data, "filled": filled}


def _lazy_one(reader: Any, key: str, datum_id: str, dtype: np.dtype, shape: tuple) -> Any:
    import dask
    import dask.array as da

    read = dask.delayed(_read_one, pure=True)(reader, key, datum_id, dtype, shape)
    if any(n <= 0 for n in shape):  # a shape left open (-1 or 0): only the reading tells
        return da.from_delayed(read, shape=(np.nan,) * len(shape), dtype=dtype)
    return da.from_delayed(read, shape=shape, dtype=dtype)


def _read_one(reader: Any, key: str, datum_id: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    return reader.read_datums(key, [datum_id], dtype, shape)[0]


def coerce_delayed(handler_class: type, filler_state: Any) -> type:
    """event-model ``Filler(coerce="delayed")``: each datum read becomes a ``dask.array``.

    A handler that says it returns lazy values (``return_type["delayed"]``) is kept; any other
    is wrapped so that calling it gives a ``dask.array`` of the descriptor's shape and dtype
    (one task per datum), read when computed. A shape the descriptor leaves open (``-1``) is
    read at once and wrapped, as a lazy array needs its shape.
    """
    if getattr(handler_class, "return_type", {}).get("delayed"):
        return handler_class

    class Lazy(handler_class):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            import dask
            import dask.array as da

            data_key = filler_state.descriptor["data_keys"][filler_state.key]
            shape, dtype = field_shape(data_key), field_dtype(data_key)
            if any(n <= 0 for n in shape):
                return da.from_array(np.asarray(super().__call__(*args, **kwargs)))
            read = dask.delayed(super().__call__)(*args, **kwargs)
            return da.from_delayed(read, shape=shape, dtype=dtype)

    Lazy.__name__ = Lazy.__qualname__ = f"Lazy{handler_class.__name__}"
    return Lazy


def register_delayed_coercion() -> None:
    """Make ``event_model.Filler(coerce="delayed")`` available (as importing databroker did);
    a ``"delayed"`` already registered, by databroker for one, is left in place."""
    import event_model

    registry = getattr(event_model, "_coercion_registry", {})
    if "delayed" not in registry:
        event_model.register_coercion("delayed", coerce_delayed)


register_delayed_coercion()
