"""The web page served at ``/``: plain HTML, hand-written JavaScript modules and CSS shipped
in this package (no build step, nothing fetched from the internet), the offline ``/docs``, and
the few JSON endpoints the page needs beyond the store API (``/api/v1/web/...``).

Every endpoint here reads through :func:`intake_broker_server.api.get_service`, so with
authentication each request is answered from the principal's guarded store, exactly as the
rest of the API. Every input is bounded (query text, page, points, fields, frame size).
"""

from __future__ import annotations

from . import actions as _actions  # noqa: F401 (adds its endpoints to the router)
from .pages import install
from .routes import router

__all__ = ["install", "router"]
