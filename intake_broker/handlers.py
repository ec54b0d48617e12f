"""Asset handlers: code that turns a resource/datum reference into an array.

Handlers are found by resource ``spec`` in the ``databroker.handlers`` entry-point group (so
packages such as area-detector-handlers work as installed) and in our own
``intake_broker.handlers`` group; a catalog's ``handler_registry`` adds or overrides them.
Filling reuses event-model's :class:`event_model.Filler`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import event_model

ENTRY_POINT_GROUPS = ("databroker.handlers", "intake_broker.handlers")


@functools.cache
def _installed_entry_points() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            found.setdefault(ep.name, ep)
    return found


def installed_handlers() -> dict[str, type]:
    """Handler classes by spec from the installed entry points; a broken plugin warns."""
    handlers = {}
    for spec, ep in _installed_entry_points().items():
        try:
            handlers[spec] = ep.load()
        except Exception as err:  # a broken plugin must not break the catalog
            warnings.warn(f"asset handler {spec!r} from {ep.value} could not be loaded: {err}",
                          stacklevel=2)
    return handlers


def _delayed(handler_class: type, filler_state: Any) -> type:
    """A coercion making handlers return ``dask.delayed`` objects: nothing is read until
    ``.compute()`` (the asset issue gives them shapes from the descriptors)."""
    import dask

    class Delayed(handler_class):
        def __call__(self, *args: Any, **kwargs: Any):
            return dask.delayed(super().__call__, pure=True)(*args, **kwargs)

    Delayed.__name__ = f"Delayed{handler_class.__name__}"
    return Delayed


def make_filler(
    handler_registry: Mapping[str, type] | None = None,
    root_map: Mapping[str, str] | None = None,
    *,
    delayed: bool = False,
) -> event_model.Filler:
    """An event-model ``Filler`` with the installed handlers plus ``handler_registry``."""
    if "intake_broker_delayed" not in event_model._coercion_registry:
        event_model.register_coercion("intake_broker_delayed", _delayed)
    registry = {**installed_handlers(), **(handler_registry or {})}
    return event_model.Filler(registry, root_map=dict(root_map or {}), inplace=False,
                              coerce="intake_broker_delayed" if delayed else "force_numpy")
