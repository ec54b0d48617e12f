"""Identity providers: who a user name is (groups, proposals, beamtimes, beamlines, roles).

A provider answers :meth:`IdentityProvider.principal` with a
:class:`~intake_broker.access.Principal`, or None for a user it does not know (whose keys and
tokens are then refused). :class:`FileProvider` reads a YAML or JSON file; :class:`HTTPProvider`
asks a facility's user service (``GET {url}/users/{name}`` answering the same JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from intake_broker.access import Principal

from .errors import ProviderUnavailable

_FIELDS = ("groups", "proposals", "beamtimes", "beamlines", "roles")


@runtime_checkable
class IdentityProvider(Protocol):
    """Turns a user name into a principal (None: no such user)."""

    def principal(self, username: str) -> Principal | None: ...


def principal_from_mapping(name: str, entry: Mapping[str, Any] | None) -> Principal:
    """A principal from ``{"groups": [...], "proposals": [...], "beamtimes": [...],
    "beamlines": [...], "roles": [...]}`` (each optional; values become strings)."""
    entry = entry or {}
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"the entry of user {name!r} must be a mapping, not {type(entry).__name__}"
        )
    values: dict[str, tuple[str, ...]] = {}
    for key in _FIELDS:
        raw = entry.get(key, None)
        if raw is None:
            continue
        if isinstance(raw, str | int) or not isinstance(raw, list | tuple):
            raw = [raw]
        values[key] = tuple(str(item) for item in raw)
    return Principal(name, **values)


@dataclass
class StaticProvider:
    """Users given as a mapping (name -> entry); for tests and small setups."""

    users: Mapping[str, Mapping[str, Any]]

    def principal(self, username: str) -> Principal | None:
        if username not in self.users:
            return None
        return principal_from_mapping(username, self.users[username])


@dataclass
class FileProvider:
    """Users in a YAML or JSON file, re-read when it changes::

        users:
          ada: {proposals: [p-101], beamtimes: [bt-7]}
          sam: {roles: [staff], beamlines: [csx]}
          root: {roles: [admin]}

    Parameters
    ----------
    path : str or Path
        The file (``.json`` is read as JSON, anything else as YAML).
    """

    path: Path
    _users: dict[str, Any] = field(default_factory=dict, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def _load(self) -> dict[str, Any]:
        with self._lock:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                text = self.path.read_text("utf-8")
                if self.path.suffix == ".json":
                    data = json.loads(text or "{}")
                else:
                    import yaml

                    data = yaml.safe_load(text) or {}
                users = data.get("users", {}) if isinstance(data, Mapping) else None
                if not isinstance(users, Mapping):
                    raise ValueError(
                        f"{self.path}: expected a mapping 'users: {{name: "
                        "{proposals: [...], ...}}}'"
                    )
                self._users, self._stamp = dict(users), stamp
            return self._users

    def principal(self, username: str) -> Principal | None:
        users = self._load()
        if username not in users:
            return None
        return principal_from_mapping(username, users[username])


@dataclass
class HTTPProvider:
    """A user service over HTTP: ``GET {url}/users/{name}`` answers the user's JSON entry
    (as in :class:`FileProvider`), 404 for an unknown user.

    Parameters
    ----------
    url : str
        The service's base URL.
    timeout : float
        Seconds for one request; a timeout or a 5xx is a 503 for the client.
    headers : dict, optional
        Sent with each request (e.g. the service's own credentials).
    cache_seconds : float
        How long an answer is reused (0: ask every time).
    """

    url: str
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict)
    cache_seconds: float = 30.0
    _cache: dict[str, tuple[float, Principal | None]] = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def principal(self, username: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(username)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        found = self._ask(username)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[username] = (now, found)
        return found

    def _ask(self, username: str) -> Principal | None:
        import httpx

        where = f"{self.url.rstrip('/')}/users/{quote(username, safe='')}"
        try:
            response = httpx.get(where, timeout=self.timeout, headers=dict(self.headers))
        except httpx.HTTPError as err:
            raise ProviderUnavailable(
                f"the identity provider cannot be reached ({type(err).__name__}); try again later"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"the identity provider answered HTTP {response.status_code}; try again later"
            )
        try:
            entry = response.json()
            return principal_from_mapping(username, entry)
        except ValueError:
            raise ProviderUnavailable(
                "the identity provider's answer is not a user entry (JSON object)"
            ) from None
