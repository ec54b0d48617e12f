"""Connecting to MongoDB: URIs, clients, timeouts, and errors that name the server.

A URI's password never appears in a message: :func:`redact` replaces it (and secret URI
options) with ``***`` before a URI is shown, and every pymongo connection failure is re-raised
as :class:`MongoConnectionError` naming the redacted URI and the timeout that expired.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.errors
from pymongo.database import Database

from intake_broker.errors import BrokerError

#: Seconds to wait for a server before giving up (pymongo's own default is 30).
DEFAULT_TIMEOUT = 5.0
_SECRET_OPTIONS = ("authmechanismproperties", "tlscertificatekeyfilepassword", "password")
_AUTH_FAILURES = {13, 18}  # Unauthorized, AuthenticationFailed


class MongoConnectionError(BrokerError, ConnectionError):
    """The MongoDB server cannot be reached, or refuses our credentials."""


class MongoConfigurationError(BrokerError, ValueError):
    """A MongoDB URI or database argument is malformed or incomplete."""


def redact(uri: str) -> str:
    """``uri`` with its password and secret options replaced by ``***``.

    >>> redact("mongodb://ann:s3cret@db.example:27017/mds?authSource=admin")
    'mongodb://ann:***@db.example:27017/mds?authSource=admin'
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority_end = len(rest)
    for stop in ("/", "?"):
        at = rest.find(stop, rest.rfind("@") + 1)
        if at != -1:
            authority_end = min(authority_end, at)
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, hosts = authority.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:***@{hosts}" if ":" in userinfo else f"{user}@{hosts}"
    pattern = "|".join(_SECRET_OPTIONS)
    tail = re.sub(rf"(?i)([?&](?:{pattern})=)[^&]*", r"\1***", tail)
    return f"{scheme}://{authority}{tail}"


@dataclass(frozen=True)
class Location:
    """One database of the layout: how to reach it and how to name it in messages."""

    uri: str | None  # None when the caller handed us a pymongo Database
    database: str
    label: str  # the redacted URI, or a description of a handed-in Database

    @property
    def client_key(self) -> str | None:
        """Locations with equal keys can share one MongoClient."""
        if self.uri is None:
            return None
        if "@" in self.uri.partition("://")[2].split("/", 1)[0]:
            return self.uri  # credentials: the database may be the auth source, keep apart
        scheme, _, rest = self.uri.partition("://")
        hosts, _, tail = rest.partition("/")
        return f"{scheme}://{hosts}/?{tail.partition('?')[2]}"


def _database_name(uri: str) -> str:
    try:
        parsed = pymongo.uri_parser.parse_uri(uri, connect_timeout=DEFAULT_TIMEOUT)
    except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as err:
        raise MongoConfigurationError(
            f"{redact(uri)} is not a MongoDB URI ({_scrub(str(err), uri)}); give one such as "
            "'mongodb://host:27017/metadatastore'"
        ) from None
    if not parsed.get("database"):
        raise MongoConfigurationError(
            f"the URI {redact(uri)} names no database; databroker's layout lives in one, so "
            "add it to the path, e.g. 'mongodb://host:27017/metadatastore'"
        )
    return parsed["database"]


def locate(target: str | Database, role: str) -> Location:
    """A :class:`Location` for a URI or a pymongo ``Database``; ``role`` names it in errors."""
    if isinstance(target, Database):  # no URI to show: describe the database instead
        return Location(
            None, target.name, f"the {role} database {target.name!r} (a pymongo Database object)"
        )
    if not isinstance(target, str):
        raise MongoConfigurationError(
            f"{role} must be a MongoDB URI string or a pymongo Database, not "
            f"{type(target).__name__}"
        )
    return Location(target, _database_name(target), redact(target))


def make_client(location: Location, timeout: float) -> pymongo.MongoClient:
    """A client for ``location`` that gives up on an unreachable server after ``timeout`` s."""
    assert location.uri is not None
    options: dict[str, Any] = {"appname": "intake-broker-mongo"}
    lowered = location.uri.lower()
    millis = max(1, int(timeout * 1000))
    if "serverselectiontimeoutms" not in lowered:
        options["serverSelectionTimeoutMS"] = millis
    if "connecttimeoutms" not in lowered:
        options["connectTimeoutMS"] = millis
    try:
        return pymongo.MongoClient(location.uri, **options)
    except pymongo.errors.ConfigurationError as err:
        raise MongoConfigurationError(
            f"cannot use the MongoDB URI {location.label}: {_scrub(str(err), location.uri)}"
        ) from None


def _scrub(text: str, uri: str | None) -> str:
    """``text`` without the password of ``uri`` (pymongo messages may quote the URI)."""
    if uri is None:
        return text
    try:
        password = pymongo.uri_parser.parse_uri(uri, validate=False).get("password")
    except Exception:  # an unparsable URI: redact what looks like userinfo instead
        password = None
    if password:
        text = text.replace(password, "***")
    return text.replace(uri, redact(uri))


def _reason(err: Exception, location: Location) -> str:
    text = _scrub(str(err), location.uri)
    for tail in (", Timeout:", ", Topology Description", " (configured timeouts"):
        text = text.split(tail)[0]
    return text if len(text) < 300 else text[:297] + "..."


@contextlib.contextmanager
def translated_errors(location: Location, timeout: float) -> Iterator[None]:
    """Re-raise pymongo's connection and authentication failures as
    :class:`MongoConnectionError` naming ``location`` (password removed)."""
    try:
        yield
    except pymongo.errors.ConnectionFailure as err:
        raise MongoConnectionError(
            f"cannot reach MongoDB at {location.label} within {timeout:g} s "
            f"({_reason(err, location)}); check that the server runs and that the URI's host "
            "and port are right, or raise the timeout (server_selection_timeout=...)"
        ) from None
    except pymongo.errors.OperationFailure as err:
        if err.code not in _AUTH_FAILURES:
            raise
        raise MongoConnectionError(
            f"MongoDB at {location.label} refused the credentials or the permission to read "
            f"({_reason(err, location)}); check the user, password and authSource of the URI"
        ) from None
