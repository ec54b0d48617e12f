"""API keys: created for a user with scopes and an expiry, stored hashed, revocable.

A key is ``<id>.<secret>``: ``id`` is short and public (it names the key in listings and logs),
``secret`` is 32 random bytes (URL-safe base64) shown once, at creation. The keys file keeps
only ``sha256(secret)``; a presented secret is hashed and compared with
:func:`hmac.compare_digest`. The file is re-read when it changes, so a key revoked with the
CLI is refused by every worker at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import Unauthorized

#: Scopes a key may have.
SCOPES = ("read", "write")
#: A hash no secret has: compared against when the id is unknown, so both cases take as long.
_NO_HASH = "0" * 64


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (without its secret).

    Parameters
    ----------
    id : str
        The public part of the key.
    user : str
        Whose key it is (a name the identity provider knows).
    hash : str
        sha256 of the secret, hex.
    scopes : tuple of str
        What it may do: ``read``, ``write``.
    created : float
        Epoch seconds.
    expires : float or None
        Epoch seconds after which it is refused (None: never).
    revoked : float or None
        When it was revoked (None: not revoked).
    """

    id: str
    user: str
    hash: str
    scopes: tuple[str, ...] = ("read",)
    created: float = 0.0
    expires: float | None = None
    revoked: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["scopes"] = list(self.scopes)
        return out

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ApiKey:
        return cls(
            id=str(item["id"]),
            user=str(item["user"]),
            hash=str(item["hash"]),
            scopes=tuple(item.get("scopes", ("read",))),
            created=float(item.get("created", 0.0)),
            expires=item.get("expires"),
            revoked=item.get("revoked"),
        )


def parse_key(token: str) -> tuple[str, str]:
    """``"<id>.<secret>"`` as ``(id, secret)``; :class:`Unauthorized` if it is not that form."""
    key_id, dot, secret = token.strip().partition(".")
    if not dot or not key_id or not secret or not key_id.isalnum():
        raise Unauthorized(
            "the API key is malformed: send 'Authorization: Apikey <id>.<secret>'"
            " as printed when the key was created"
        )
    return key_id, secret


@dataclass
class ApiKeyStore:
    """API keys kept in a JSON file (hashed), re-read when the file changes.

    Parameters
    ----------
    path : str or Path
        The keys file (created on the first key; written atomically, mode 0600).
    """

    path: Path
    _keys: dict[str, ApiKey] = field(default_factory=dict, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _lock: Any = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # -- the file ---------------------------------------------------------------------------

    def _load(self) -> dict[str, ApiKey]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._keys, self._stamp = {}, None
                return self._keys
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                data = json.loads(self.path.read_text("utf-8") or "{}")
                self._keys = {item["id"]: ApiKey.from_json(item) for item in data.get("keys", [])}
                self._stamp = stamp
            return self._keys

    def _save(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "keys": [k.to_json() for k in keys.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".apikeys-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(payload)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None  # re-read at the next use

    # -- managing keys ----------------------------------------------------------------------

    def create(
        self, user: str, scopes: Iterable[str] = ("read",), expires_in: float | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for ``user``; the stored record and the key to hand out (shown once).

        Parameters
        ----------
        user : str
            Whose key.
        scopes : iterable of str
            Of ``read``, ``write``.
        expires_in : float, optional
            Seconds until it expires (None: never).
        """
        scopes = tuple(dict.fromkeys(scopes))
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ValueError(f"unknown scopes {unknown}; choose from {list(SCOPES)}")
        if not user:
            raise ValueError("a key needs a user name")
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            keys = dict(self._load())
            key_id = secrets.token_hex(6)
            while key_id in keys:
                key_id = secrets.token_hex(6)
            record = ApiKey(
                key_id,
                user,
                hash_secret(secret),
                scopes,
                now,
                None if expires_in is None else now + expires_in,
            )
            keys[key_id] = record
            self._save(keys)
        return record, f"{key_id}.{secret}"

    def list(self) -> list[ApiKey]:
        """Every key, revoked and expired ones included."""
        return list(self._load().values())

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (KeyError if there is none with this id)."""
        with self._lock:
            keys = dict(self._load())
            if key_id not in keys:
                raise KeyError(key_id)
            old = keys[key_id]
            keys[key_id] = ApiKey(
                old.id, old.user, old.hash, old.scopes, old.created, old.expires, time.time()
            )
            self._save(keys)
            return keys[key_id]

    # -- checking ---------------------------------------------------------------------------

    def verify(self, token: str) -> ApiKey:
        """The key ``token`` (``<id>.<secret>``) is, if valid; else :class:`Unauthorized`."""
        key_id, secret = parse_key(token)
        record = self._load().get(key_id)
        matches = hmac.compare_digest(hash_secret(secret), record.hash if record else _NO_HASH)
        if record is None or not matches:
            raise Unauthorized(f"the API key {key_id!r} is not valid")
        if record.revoked is not None:
            raise Unauthorized(f"the API key {key_id!r} has been revoked")
        if record.expired():
            raise Unauthorized(f"the API key {key_id!r} has expired; ask for a new one")
        return record
