"""``serve --auth-config auth.yml``: authentication and access control written in YAML, not
Python. Every mistake is reported with the file, line and field, as for catalog files::

    # auth.yml (paths are relative to this file)
    policy:                       # the ProposalPolicy (every field optional)
      proposal_key: proposal_id
      deny_unlabelled: true       # runs naming no proposal: admins only
    users: users.yml              # who is who (FileProvider); or:
    # identity_provider: https://users.example.org/api   # (HTTPProvider; or {url:, timeout:})
    api_keys: keys.json           # keys made by `intake-broker apikey --keys keys.json create USER`
    jwt:                          # bearer tokens of one issuer
      issuer: https://login.example.org
      audience: intake-broker
      jwks: jwks.json             # the issuer's public keys
      algorithms: [RS256]
      leeway: 30
    oidc:                         # the web page's "Log in with <issuer>" (needs jwt:)
      client_id: intake-broker-web  # a public client (PKCE, no secret); redirect URI: the page
      scope: openid profile
      # authorization_endpoint: https://login.example.org/authorize  # else discovered from
      # token_endpoint: https://login.example.org/token              # {jwt issuer}/.well-known/
      # token: access_token       # or id_token                      #   openid-configuration
      # label: Example Login
      # response_mode: fragment   # the code after '#', never sent to a server (default query)
    anonymous: false              # serve requests without credentials (read-only)
    token_default_scopes: [read]
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from intake_broker.access import ProposalPolicy
from intake_broker.catalogs.spec import CatalogFileError

from .apikeys import ApiKeyStore
from .config import AuthConfig
from .oidc import OIDCConfig, check_endpoint, discover
from .providers import FileProvider, HTTPProvider
from .tokens import JWTVerifier

#: The keys of an auth file, with what each must be.
FIELDS = {
    "policy": "a mapping of ProposalPolicy fields",
    "users": "a users file (YAML or JSON: users: {name: {proposals: [...]}})",
    "identity_provider": "an http(s) URL, or {url:, timeout:, cache_seconds:}",
    "api_keys": "a keys file (JSON, made by intake-broker apikey create)",
    "jwt": "{issuer:, audience:, jwks: FILE, algorithms: [...], leeway: SECONDS}",
    "oidc": "{client_id:, scope:, authorization_endpoint:, token_endpoint:, token:, label:, "
    "response_mode:}",
    "anonymous": "true or false",
    "token_default_scopes": "a list of scopes (read, write)",
}
POLICY_FIELDS = {
    "proposal_key": str,
    "beamtime_key": str,
    "beamline_key": str,
    "public_key": str,
    "deny_unlabelled": bool,
}
JWT_FIELDS = {"issuer", "audience", "jwks", "algorithms", "leeway", "subject_claim"}
OIDC_FIELDS = (
    "client_id",
    "scope",
    "authorization_endpoint",
    "token_endpoint",
    "token",
    "label",
    "response_mode",
)
#: The largest auth file read (bytes).
MAX_BYTES = 1 << 20


class AuthFileError(CatalogFileError):
    """An auth file is wrong; the message reads ``<file>, line <n>, field '<f>': <problem>``."""


class _File:
    def __init__(self, path: Path):
        self.path = path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise AuthFileError(str(path), None, None, "auth file does not exist") from None
        if size > MAX_BYTES:
            raise AuthFileError(str(path), None, None, f"larger than {MAX_BYTES} bytes")
        text = path.read_text("utf-8")
        try:
            loader = yaml.SafeLoader(text)
            try:
                self.root = loader.get_single_node()
                self.data = loader.construct_document(self.root) if self.root else None
            finally:
                loader.dispose()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise AuthFileError(
                str(path), mark.line + 1 if mark else None, None, f"not valid YAML: {err}"
            ) from None

    def line(self, *keys: str) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                break
            for key_node, value in node.value:
                if key_node.value == key:
                    line, node = key_node.start_mark.line + 1, value
                    break
            else:
                break
        return line

    def error(self, keys: tuple[str, ...], problem: str) -> AuthFileError:
        return AuthFileError(str(self.path), self.line(*keys), keys, problem)

    def relative(self, keys: tuple[str, ...], value: Any, must_exist: bool = True) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.error(keys, f"expected a file path, got {value!r}")
        found = (self.path.parent / os.path.expanduser(value)).resolve()
        if must_exist and not found.is_file():
            raise self.error(keys, f"no such file: {found}")
        if not must_exist and not found.parent.is_dir():
            raise self.error(keys, f"no such folder: {found.parent}")
        return found


def _unknown(file: _File, where: tuple[str, ...], key: Any, known: Any) -> AuthFileError:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return file.error((*where, str(key)), f"unknown field{hint}; the fields: {', '.join(known)}")


def _oidc(file: _File, data: dict) -> OIDCConfig:
    """The ``oidc:`` block: its endpoints as given, or discovered now (the server starts) from
    the ``jwt:`` issuer, the only URL it ever asks."""
    oidc = data["oidc"]
    if not isinstance(oidc, dict):
        raise file.error(("oidc",), f"expected {FIELDS['oidc']}")
    for key in oidc:
        if key not in OIDC_FIELDS:
            raise _unknown(file, ("oidc",), key, OIDC_FIELDS)
    if "jwt" not in data:
        raise file.error(
            ("oidc",), "oidc needs a jwt: block (the issuer, audience and keys of its tokens)"
        )
    if not isinstance(oidc.get("client_id"), str) or not oidc["client_id"].strip():
        raise file.error(
            ("oidc", "client_id") if "client_id" in oidc else ("oidc",),
            "oidc needs client_id: (the page's public client at the issuer)",
        )
    for key in ("authorization_endpoint", "token_endpoint"):
        if key in oidc:
            try:
                check_endpoint(oidc[key], key)
            except ValueError as err:
                raise file.error(("oidc", key), str(err)) from None
    given = [k for k in ("authorization_endpoint", "token_endpoint") if k in oidc]
    issuer = data["jwt"]["issuer"]
    args = dict(oidc)
    if len(given) == 1:
        raise file.error(
            ("oidc", given[0]),
            "give both authorization_endpoint and token_endpoint, or neither (discovery)",
        )
    if not given:
        try:
            args.update(discover(issuer))
        except ValueError as err:
            raise file.error(("oidc",), str(err)) from None
    try:
        return OIDCConfig(issuer=issuer, **args)
    except (ValueError, TypeError) as err:
        field = next((k for k in OIDC_FIELDS if k in oidc and k in str(err)), None)
        raise file.error(("oidc", field) if field else ("oidc",), str(err)) from None


def load_auth_file(path: str | os.PathLike) -> AuthConfig:
    """The :class:`AuthConfig` an auth YAML file describes (see the module doc).

    Raises
    ------
    AuthFileError
        Naming the file, line and field of the first mistake.
    """
    file = _File(Path(path).expanduser().resolve())
    data = file.data
    if not isinstance(data, dict):
        raise file.error((), "expected a mapping of: " + ", ".join(FIELDS))
    for key in data:
        if key not in FIELDS:
            raise _unknown(file, (), key, FIELDS)
    options: dict[str, Any] = {}

    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise file.error(("policy",), f"expected {FIELDS['policy']}")
    for key, value in policy.items():
        if key not in POLICY_FIELDS:
            raise _unknown(file, ("policy",), key, POLICY_FIELDS)
        if not isinstance(value, POLICY_FIELDS[key]):
            kind = "true or false" if POLICY_FIELDS[key] is bool else "a string"
            raise file.error(("policy", key), f"expected {kind}, got {value!r}")
    options["policy"] = ProposalPolicy(**policy)

    if "users" in data and "identity_provider" in data:
        raise file.error(("identity_provider",), "give users or identity_provider, not both")
    if "users" in data:
        options["provider"] = FileProvider(file.relative(("users",), data["users"]))
        try:
            options["provider"]._load()
        except (ValueError, yaml.YAMLError) as err:
            raise file.error(("users",), f"the users file is wrong: {err}") from None
    if "identity_provider" in data:
        idp = data["identity_provider"]
        idp = {"url": idp} if isinstance(idp, str) else idp
        if not isinstance(idp, dict) or not isinstance(idp.get("url"), str):
            raise file.error(("identity_provider",), f"expected {FIELDS['identity_provider']}")
        for key in idp:
            if key not in ("url", "timeout", "cache_seconds"):
                raise _unknown(
                    file, ("identity_provider",), key, ("url", "timeout", "cache_seconds")
                )
        if not idp["url"].startswith(("http://", "https://")):
            raise file.error(("identity_provider",), f"expected an http(s) URL, got {idp['url']!r}")
        options["provider"] = HTTPProvider(**idp)

    if "api_keys" in data:
        keys = file.relative(("api_keys",), data["api_keys"], must_exist=False)
        options["api_keys"] = ApiKeyStore(keys)

    if "jwt" in data:
        jwt = data["jwt"]
        if not isinstance(jwt, dict):
            raise file.error(("jwt",), f"expected {FIELDS['jwt']}")
        for key in jwt:
            if key not in JWT_FIELDS:
                raise _unknown(file, ("jwt",), key, sorted(JWT_FIELDS))
        for key in ("issuer", "audience", "jwks"):
            if not isinstance(jwt.get(key), str):
                raise file.error(
                    ("jwt", key) if key in jwt else ("jwt",), f"jwt needs {key}: (a string)"
                )
        args = {k: v for k, v in jwt.items() if k != "jwks"}
        args["jwks_path"] = file.relative(("jwt", "jwks"), jwt["jwks"])
        if "leeway" in args and not isinstance(args["leeway"], (int, float)):
            raise file.error(("jwt", "leeway"), f"expected seconds, got {args['leeway']!r}")
        if "algorithms" in args and not (
            isinstance(args["algorithms"], list)
            and all(isinstance(a, str) for a in args["algorithms"])
        ):
            raise file.error(("jwt", "algorithms"), "expected a list of names, e.g. [RS256]")
        try:
            options["jwt"] = JWTVerifier(**args)
        except (ValueError, TypeError, OSError) as err:
            raise file.error(("jwt",), str(err)) from None

    if "oidc" in data:
        options["oidc"] = _oidc(file, data)

    anonymous = data.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise file.error(("anonymous",), f"expected true or false, got {anonymous!r}")
    options["allow_anonymous"] = anonymous
    scopes = data.get("token_default_scopes", ["read"])
    if not (isinstance(scopes, list) and set(scopes) <= {"read", "write"}):
        raise file.error(
            ("token_default_scopes",), f"expected a list of read, write; got {scopes!r}"
        )
    options["token_default_scopes"] = tuple(scopes)
    if not anonymous and "api_keys" not in data and "jwt" not in data:
        raise file.error((), "nobody could sign in: give api_keys, jwt, or anonymous: true")
    return AuthConfig(**options)
