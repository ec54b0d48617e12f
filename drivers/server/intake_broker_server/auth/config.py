"""``AuthConfig``: how the service finds out who asks, and ``Authenticator``, which does it.

Every request is resolved to an :class:`Identity` (a principal and the scopes of its
credential): ``Authorization: Apikey <id>.<secret>``, ``Authorization: Bearer <JWT>``, or, when
allowed, no header at all (the anonymous principal, read-only). The service then answers the
request from ``GuardedStore(store, policy, principal)``: the core does all the filtering.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from intake_broker.access import AccessPolicy, Principal, ProposalPolicy

from .apikeys import ApiKeyStore
from .errors import Forbidden, Unauthorized
from .oidc import OIDCConfig
from .providers import IdentityProvider
from .tokens import JWTVerifier, token_scopes

log = logging.getLogger("intake_broker_server.auth")

#: The challenge sent with every 401.
CHALLENGE = 'Apikey realm="intake-broker", Bearer realm="intake-broker"'


@dataclass(frozen=True)
class Identity:
    """Who a request comes from, and what its credential allows."""

    principal: Principal
    scopes: tuple[str, ...]
    method: str  # "apikey", "bearer" or "anonymous"
    key_id: str | None = None


@dataclass
class AuthConfig:
    """The service's authentication and access control.

    Parameters
    ----------
    policy : AccessPolicy
        Which runs a principal sees (applied by the core's ``GuardedStore``).
    api_keys : ApiKeyStore, optional
        Accept ``Authorization: Apikey <id>.<secret>`` keys from this store.
    jwt : JWTVerifier, optional
        Accept ``Authorization: Bearer <JWT>`` tokens of this issuer.
    provider : IdentityProvider, optional
        Turns a key's user or a token's subject into a principal; a user it does not know is
        refused. Without one, a user is a bare principal (no proposals: public runs only).
    allow_anonymous : bool
        Serve requests without credentials as ``anonymous`` (read-only); when False they are
        a 401.
    anonymous : Principal
        Who an anonymous request is.
    token_default_scopes : sequence of str
        The scopes of a token that has no ``scope``/``scp`` claim.
    oidc : OIDCConfig, optional
        Offer the web page's "Log in with <issuer>" (OpenID Connect, code flow with PKCE);
        the tokens it gets are verified by ``jwt``, which it needs.
    views : int
        Guarded views (one per principal) kept between requests.
    """

    policy: AccessPolicy = field(default_factory=ProposalPolicy)
    api_keys: ApiKeyStore | None = None
    jwt: JWTVerifier | None = None
    provider: IdentityProvider | None = None
    allow_anonymous: bool = False
    anonymous: Principal = field(
        default_factory=lambda: Principal("anonymous", roles=("anonymous",))
    )
    token_default_scopes: Sequence[str] = ("read",)
    views: int = 256
    oidc: OIDCConfig | None = None

    def __post_init__(self) -> None:
        if self.oidc is not None and self.jwt is None:
            raise ValueError("oidc needs jwt: a JWTVerifier for the issuer's tokens")


class Authenticator:
    """Resolves the identity of a request by an :class:`AuthConfig`."""

    def __init__(self, config: AuthConfig):
        self.config = config

    def _user(self, name: str, how: str) -> Principal:
        provider = self.config.provider
        if provider is None:
            return Principal(name)
        principal = provider.principal(name)
        if principal is None:
            raise Unauthorized(
                f"the user of this {how} is not known (any more); ask for access again"
            )
        return principal

    def identify(self, authorization: str | None) -> Identity:
        """The identity of a request with this ``Authorization`` header (None: absent)."""
        config = self.config
        if authorization is None or not authorization.strip():
            if config.allow_anonymous:
                return Identity(config.anonymous, ("read",), "anonymous")
            raise Unauthorized(
                "this service needs credentials: send 'Authorization: Apikey "
                "<id>.<secret>' or 'Authorization: Bearer <token>'"
            )
        scheme, _, credential = authorization.strip().partition(" ")
        scheme, credential = scheme.lower(), credential.strip()
        if scheme == "apikey" and config.api_keys is not None:
            if not credential:
                raise Unauthorized(
                    "the Apikey header has no key: send 'Authorization: Apikey <id>.<secret>'"
                )
            key = config.api_keys.verify(credential)
            return Identity(self._user(key.user, "API key"), key.scopes, "apikey", key.id)
        if scheme == "bearer" and config.jwt is not None:
            if not credential:
                raise Unauthorized("the Bearer header has no token")
            claims = config.jwt.verify(credential)
            principal = self._user(claims[config.jwt.subject_claim], "token")
            return Identity(principal, token_scopes(claims, config.token_default_scopes), "bearer")
        accepted = [
            name
            for name, on in (("Apikey", config.api_keys), ("Bearer", config.jwt))
            if on is not None
        ]
        raise Unauthorized(
            f"the Authorization header is not understood; this service "
            f"accepts the schemes {accepted}"
        )

    def authorize(self, authorization: str | None, scope: str) -> Identity:
        """:meth:`identify`, then :meth:`require` ``scope`` (else 403). The server logs each
        refusal (with the request's id) where it answers it."""
        return self.require(self.identify(authorization), scope)

    @staticmethod
    def require(identity: Identity, scope: str) -> Identity:
        """``identity``, if its credential has ``scope``; else :class:`Forbidden` (403)."""
        if scope not in identity.scopes:
            raise Forbidden(
                f"{identity.principal.name!r} may not {scope} here: the "
                f"credential's scopes are {list(identity.scopes)}"
            )
        return identity
