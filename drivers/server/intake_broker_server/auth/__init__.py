"""Authentication for the service: API keys, bearer tokens (JWT), identity providers.

>>> auth = AuthConfig(policy=ProposalPolicy(), api_keys=ApiKeyStore("keys.json"),
...                   provider=FileProvider("users.yml"))
>>> app = create_app(catalog, auth=auth)

Every request is resolved to a :class:`~intake_broker.access.Principal` and served from
``GuardedStore(store, policy, principal)``: the core does all the filtering.
"""

from __future__ import annotations

from intake_broker.access import AccessPolicy, Principal, ProposalPolicy

from .apikeys import ApiKey, ApiKeyStore
from .cli import apikey_main
from .config import AuthConfig, Authenticator, Identity
from .errors import AuthError, Forbidden, ProviderUnavailable, Unauthorized
from .oidc import OIDCConfig
from .providers import FileProvider, HTTPProvider, IdentityProvider, StaticProvider
from .tokens import JWTVerifier

__all__ = [
    "AccessPolicy",
    "ApiKey",
    "ApiKeyStore",
    "AuthConfig",
    "AuthError",
    "Authenticator",
    "FileProvider",
    "Forbidden",
    "HTTPProvider",
    "Identity",
    "IdentityProvider",
    "JWTVerifier",
    "OIDCConfig",
    "Principal",
    "ProposalPolicy",
    "ProviderUnavailable",
    "StaticProvider",
    "Unauthorized",
    "apikey_main",
]
