"""The web page's "Log in with <issuer>": an OpenID Connect Authorization Code flow with PKCE,
run by the page itself as a *public* client (no client secret anywhere).

The server only tells the page where the issuer's endpoints are and which client it is
(``GET /api/v1/web/login-options``); the page sends the user to the authorization endpoint,
exchanges the code (with its PKCE ``code_verifier``) at the token endpoint, and then sends the
token as ``Authorization: Bearer``, which the server verifies as any other token of the issuer
(:class:`~intake_broker_server.auth.tokens.JWTVerifier`, the auth file's ``jwt:``).

The endpoints are configured, or discovered once, when the server starts, from
``{issuer}/.well-known/openid-configuration`` of the configured issuer: never from a URL a
client names.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The largest discovery document read (bytes), and how long the server waits for it.
MAX_DISCOVERY_BYTES = 256 * 1024
DISCOVERY_SECONDS = 10.0
#: The tokens the page may send after the exchange.
TOKENS = ("access_token", "id_token")
_LOOPBACK_NAMES = {"localhost"}
_NETLOC = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: Any, what: str) -> str:
    """``url`` if it is an https URL (http only on this machine's loopback), with a host and
    no credentials or fragment; ValueError saying what is wrong otherwise."""
    if not isinstance(url, str) or len(url) > 2000:
        raise ValueError(f"{what} must be an https URL (at most 2000 characters), got {url!r}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{what} must be an https URL, got {url!r}")
    if parts.scheme == "http" and not _loopback(host):
        raise ValueError(f"{what} must be https (http only for localhost), got {url!r}")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{what} must not hold credentials or a #fragment, got {url!r}")
    if not _NETLOC.fullmatch(parts.netloc) or any(c.isspace() or c in "'\";," for c in url):
        raise ValueError(f"{what} must be a plain URL (a host name, no quotes), got {url!r}")
    return url


def origin(url: str) -> str:
    """``scheme://host[:port]`` of an URL (what a Content-Security-Policy names)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class OIDCConfig:
    """Where the page logs in (OpenID Connect, Authorization Code with PKCE, public client).

    Parameters
    ----------
    issuer : str
        The issuer (the ``iss`` of its tokens, as in the ``jwt:`` block).
    authorization_endpoint, token_endpoint : str
        The issuer's endpoints (https; http only on loopback).
    client_id : str
        This page's client at the issuer (a public client: no secret). Its redirect URI is the
        page's own address (``https://<host>/<prefix>/``).
    scope : str
        The scopes asked for (space separated); must hold ``openid``.
    token : str
        Which token the page sends as ``Bearer``: ``access_token`` (default) or ``id_token``
        (its ``aud`` is the client_id: set ``jwt: audience`` to match).
    label : str
        The name on the button ("Log in with <label>"); default: the issuer's host.
    response_mode : str
        ``query`` (default: the issuer sends the code back in the page's query string, which
        reaches this server's access log: a one-time code, useless without the verifier that
        never leaves the tab) or ``fragment`` (after ``#``: never sent to any server; the
        issuer must support it).
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    client_id: str
    scope: str = "openid"
    token: str = "access_token"
    label: str = ""
    response_mode: str = "query"

    def __post_init__(self) -> None:
        check_endpoint(self.authorization_endpoint, "authorization_endpoint")
        check_endpoint(self.token_endpoint, "token_endpoint")
        if not isinstance(self.client_id, str) or not 0 < len(self.client_id) <= 200:
            raise ValueError(
                f"client_id must be a string of 1-200 characters, got {self.client_id!r}"
            )
        if not isinstance(self.scope, str) or "openid" not in self.scope.split():
            raise ValueError(
                f"scope must be space-separated scopes holding openid, got {self.scope!r}"
            )
        if len(self.scope) > 500:
            raise ValueError("scope must be at most 500 characters")
        if self.token not in TOKENS:
            raise ValueError(f"token must be one of {list(TOKENS)}, got {self.token!r}")
        if not isinstance(self.label, str) or len(self.label) > 100:
            raise ValueError(
                f"label must be a string of at most 100 characters, got {self.label!r}"
            )
        if self.response_mode not in ("query", "fragment"):
            raise ValueError(f"response_mode must be query or fragment, got {self.response_mode!r}")
        if not self.label:
            object.__setattr__(self, "label", urlsplit(self.issuer).hostname or self.issuer)

    def public(self) -> dict[str, str]:
        """What the page is told (nothing secret: there is no secret)."""
        return {
            "issuer": self.issuer,
            "label": self.label,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "client_id": self.client_id,
            "scope": self.scope,
            "token": self.token,
            "response_mode": self.response_mode,
        }


def discover(issuer: str, timeout: float = DISCOVERY_SECONDS) -> dict[str, str]:
    """The ``authorization_endpoint`` and ``token_endpoint`` of ``issuer`` (the configured
    one), from its ``/.well-known/openid-configuration``; ValueError saying what went wrong.

    The document must name the same issuer (OpenID Connect Discovery 1.0, section 4.3), be
    JSON of at most :data:`MAX_DISCOVERY_BYTES`, and support the ``code`` response type and
    the ``S256`` PKCE method when it lists them. Redirects are not followed.
    """
    import httpx

    check_endpoint(issuer, "the issuer")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=False) as answer:
            if answer.status_code != 200:
                raise ValueError(f"discovery at {url} answered HTTP {answer.status_code}")
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_DISCOVERY_BYTES:
                    raise ValueError(
                        f"discovery at {url} is larger than {MAX_DISCOVERY_BYTES} bytes"
                    )
    except httpx.HTTPError as err:
        raise ValueError(
            f"discovery at {url} failed ({type(err).__name__}); give "
            "authorization_endpoint and token_endpoint instead"
        ) from None
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError(f"discovery at {url} is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"discovery at {url} is not a JSON object")
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise ValueError(
            f"discovery at {url} names issuer {document.get('issuer')!r}, not {issuer!r}"
        )
    types = document.get("response_types_supported")
    if isinstance(types, list) and "code" not in types:
        raise ValueError(f"the issuer {issuer!r} does not offer the authorization code flow")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise ValueError(f"the issuer {issuer!r} does not offer PKCE with S256")
    return {
        key: check_endpoint(document.get(key), f"the discovered {key}")
        for key in ("authorization_endpoint", "token_endpoint")
    }
