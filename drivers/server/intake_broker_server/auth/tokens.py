"""Bearer tokens: JWTs from the facility's identity provider, verified with its public keys.

:class:`JWTVerifier` checks the signature (RS256 / ES256 by default, never ``none`` or an HMAC
algorithm), ``iss``, ``aud``, ``exp`` and ``nbf``, and gives the claims; the service maps the
subject to a user through the identity provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Unauthorized

#: Asymmetric algorithms only: a verifier holds public keys, never shared secrets.
ALGORITHMS = ("RS256", "ES256")


def _as_key(value: Any) -> Any:
    """A key object from a PEM string/bytes, a JWK dict, or a key object as it is."""
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(value, Mapping):
        return jwt.PyJWK(dict(value)).key
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return load_pem_public_key(value)
    return value


@dataclass
class JWTVerifier:
    """Verifies ``Authorization: Bearer`` tokens of one issuer.

    Parameters
    ----------
    issuer : str
        The expected ``iss``.
    audience : str
        The expected ``aud`` (this service).
    keys : dict, optional
        ``kid`` -> public key (PEM, JWK dict or a cryptography key object). A token naming no
        ``kid`` is tried against each key.
    jwks_path : str or Path, optional
        A JWKS file (``{"keys": [...]}``) with the issuer's public keys, instead of ``keys``.
    algorithms : sequence of str
        Accepted signature algorithms.
    leeway : float
        Seconds of clock skew allowed for ``exp`` and ``nbf``.
    subject_claim : str
        The claim naming the user.
    """

    issuer: str
    audience: str
    keys: Mapping[str, Any] | None = None
    jwks_path: str | Path | None = None
    algorithms: Sequence[str] = ALGORITHMS
    leeway: float = 0.0
    subject_claim: str = "sub"
    _keys: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if (self.keys is None) == (self.jwks_path is None):
            raise ValueError("give the issuer's public keys as keys={kid: key} or jwks_path")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError("only asymmetric algorithms (RS256, ES256, ...) are accepted")
        if self.keys is not None:
            self._keys = {str(kid): _as_key(key) for kid, key in self.keys.items()}
        else:
            data = json.loads(Path(self.jwks_path).read_text("utf-8"))  # type: ignore[arg-type]
            for number, jwk in enumerate(data.get("keys", [])):
                self._keys[str(jwk.get("kid", number))] = _as_key(jwk)
        if not self._keys:
            raise ValueError("the issuer has no public keys")

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; :class:`Unauthorized` (never quoting it) otherwise."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is malformed (not a JWT)") from None
        kid = header.get("kid")
        if kid is not None and str(kid) not in self._keys:
            raise Unauthorized(
                "the bearer token is signed by a key this service does not "
                f"know for issuer {self.issuer!r}"
            )
        candidates = [self._keys[str(kid)]] if kid is not None else list(self._keys.values())
        problem = "the bearer token's signature is not valid"
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=list(self.algorithms),
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": ["exp", "iss", "aud", self.subject_claim]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError, ValueError):
                continue  # not this key (or a key of another type than the token's alg)
            except jwt.ExpiredSignatureError:
                problem = "the bearer token has expired; get a new one"
            except jwt.ImmatureSignatureError:
                problem = "the bearer token is not valid yet (nbf)"
            except jwt.InvalidIssuerError:
                problem = f"the bearer token was not issued by {self.issuer!r}"
            except jwt.InvalidAudienceError:
                problem = f"the bearer token is not meant for this service ({self.audience!r})"
            except jwt.MissingRequiredClaimError as err:
                problem = f"the bearer token lacks the {err.claim!r} claim"
            except jwt.InvalidAlgorithmError:
                problem = (
                    f"the bearer token's algorithm is not accepted; use one of "
                    f"{list(self.algorithms)}"
                )
            except jwt.PyJWTError as err:
                problem = f"the bearer token is not valid ({type(err).__name__})"
            else:
                subject = claims.get(self.subject_claim)
                if not isinstance(subject, str) or not subject:
                    raise Unauthorized(
                        f"the bearer token's {self.subject_claim!r} claim names no user"
                    )
                return claims
            break
        raise Unauthorized(problem)


def token_scopes(claims: Mapping[str, Any], default: Sequence[str] = ("read",)) -> tuple[str, ...]:
    """The scopes of a token: ``scope`` (space-separated) or ``scp`` (a list); ``default``
    when it has neither."""
    if isinstance(claims.get("scope"), str):
        return tuple(claims["scope"].split())
    if isinstance(claims.get("scp"), list | tuple):
        return tuple(str(s) for s in claims["scp"])
    return tuple(default)
