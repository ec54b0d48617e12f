"""``RemoteCatalog``: a server's runs as an intake catalog, with the local catalog's API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intake_broker.catalogs.entries import EntryArguments
from intake_broker.views.catalog import BrokerCatalog

from . import wire
from .store import RemoteStore


class RemoteCatalog(BrokerCatalog):
    """The runs an intake-broker server serves, as an intake catalog.

    Registered for intake as ``bluesky-remote-catalog``::

        cat = intake.open_catalog("http://broker:8000", driver="bluesky-remote-catalog")
        cat[-1].primary.read()

    Parameters
    ----------
    url : str
        The server's base URL.
    timeout : float
        Seconds to wait for a connection and for each read.
    headers : dict, optional
        Extra headers for every request.
    api_key : str, optional
        Sent as ``Authorization: Apikey <key>``.
    retries : int
        Retries after connection failures and 502/503/504, with exponential back-off.
    codecs : sequence of str
        Compression of event data, preferred first.
    fill : {"server", "client"}
        Who reads external assets: the server (default) or this process (shared files).
    **kwargs
        Passed to :class:`~intake_broker.views.catalog.BrokerCatalog` (``query``,
        ``handler_registry`` and ``root_map`` for ``fill="client"``, ``name``, ...).
    """

    reads_yaml_arguments = True

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        retries: int = 3,
        codecs: Sequence[str] = wire.DEFAULT_CODECS,
        fill: str = "server",
        **kwargs: Any,
    ):
        self._yaml = yaml = EntryArguments.of(kwargs.get("metadata"))
        url = yaml.value(url, "url")
        headers = yaml.value(headers, "headers")
        api_key = yaml.value(api_key, "api_key")
        store = RemoteStore(
            url,
            timeout=timeout,
            headers=headers,
            api_key=api_key,
            retries=retries,
            codecs=codecs,
            fill=fill,
        )
        kwargs.setdefault("name", url)
        super().__init__(store, **kwargs)
