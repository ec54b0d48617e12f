"""The errors of authentication: each carries its HTTP status, and never a secret."""

from __future__ import annotations

from intake_broker.errors import BrokerError


class AuthError(BrokerError):
    """The request's credentials are missing or not valid (401).

    Messages say what is wrong and what would be right; they never repeat a key or a token.
    """

    status = 401


class Unauthorized(AuthError):
    """No valid credentials (401, with a ``WWW-Authenticate`` challenge)."""

    status = 401


class Forbidden(AuthError):
    """Valid credentials whose scopes do not allow this request (403)."""

    status = 403


class ProviderUnavailable(AuthError):
    """The identity provider cannot be asked now (503): the request may be retried."""

    status = 503
