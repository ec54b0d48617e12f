"""Filling documents: ``run.documents(fill="yes"|"delayed")`` through event-model's ``Filler``,
with the handlers of :class:`intake_broker.assets.HandlerRegistry`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import event_model

from .assets import HandlerRegistry

_DELAYED = "intake_broker_delayed"


def _delayed(handler_class: type, filler_state: Any) -> type:
    """A coercion making handlers return ``dask.delayed`` objects: nothing is read until
    ``.compute()``."""
    import dask

    class Delayed(handler_class):
        def __call__(self, *args: Any, **kwargs: Any):
            return dask.delayed(super().__call__, pure=True)(*args, **kwargs)

    Delayed.__name__ = f"Delayed{handler_class.__name__}"
    return Delayed


def make_filler(
    handler_registry: Mapping[str, Any] | None = None,
    root_map: Mapping[str, str] | None = None,
    *,
    delayed: bool = False,
) -> event_model.Filler:
    """An event-model ``Filler`` with every registered handler plus ``handler_registry``."""
    if _DELAYED not in event_model._coercion_registry:
        event_model.register_coercion(_DELAYED, _delayed)
    specs = {k: v for k, v in HandlerRegistry(handler_registry).as_dict().items() if "/" not in k}
    return event_model.Filler(
        specs,
        root_map=dict(root_map or {}),
        inplace=False,
        coerce=_DELAYED if delayed else "force_numpy",
        retry_intervals=[],
    )
