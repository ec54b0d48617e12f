"""The ``intake-broker serve`` and ``intake-broker apikey`` subcommands, registered through the
``intake_broker.commands`` entry points. This module stays light (the server itself is imported
only when a command runs): every ``intake-broker`` call loads it to build its parser."""

from __future__ import annotations

import argparse
from typing import Any

from intake_broker.cli import UsageError


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _seconds(text: str) -> float | None:
    if text.lower() in ("0", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, 0 or none; got {text!r}")
    return value


class Serve:
    """``intake-broker serve``: the catalog over HTTP."""

    name = "serve"
    help = "serve the catalog over HTTP (JSON/msgpack API, zarr v3 layout, OpenAPI at /docs)"
    raw = False
    needs_catalog = False

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "file",
            nargs="?",
            metavar="FILE",
            help="a YAML catalog file to serve (with --entry NAME when it has several "
            "entries); the same as --catalog FILE",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="the address to listen on (default 127.0.0.1, this machine only; any other "
            "address without authentication serves read-only unless --allow-writes)",
        )
        parser.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
        parser.add_argument(
            "--workers", type=_positive, default=1, help="worker processes (default 1)"
        )
        auth = parser.add_mutually_exclusive_group()
        auth.add_argument(
            "--auth-config",
            metavar="FILE.yml",
            help="authentication and access policy in YAML: policy, users file or "
            "identity_provider URL, api_keys file, jwt issuer (see the server README); "
            "default: no authentication",
        )
        auth.add_argument(
            "--auth",
            metavar="MODULE:NAME",
            help="an AuthConfig written in Python (for what --auth-config cannot say)",
        )
        parser.add_argument(
            "--allow-writes",
            action="store_true",
            help="accept writes without authentication on a non-loopback --host (anyone who "
            "reaches the port may then add runs)",
        )
        parser.add_argument(
            "--asset-root",
            action="append",
            dest="asset_roots",
            metavar="DIR_OR_URL",
            help="a folder or fsspec URL prefix external assets may be read from (repeatable; "
            "may name start keys: /data/{proposal_id}); default: none, so no external asset "
            "is read unless the catalog names asset_roots or root_map",
        )
        parser.add_argument(
            "--deadline",
            type=_seconds,
            default=argparse.SUPPRESS,
            metavar="SECONDS",
            help="how long a request may take before it is stopped and answered 503 "
            "(default: $INTAKE_BROKER_SERVER_DEADLINE, else 30; 0 or none: no deadline)",
        )

    def run(self, args: Any, catalog: Any) -> int:
        from .app import load_auth, serve

        if args.file is not None and args.catalog is not None and args.file != args.catalog:
            raise UsageError("give the catalog as FILE or as --catalog, not both")
        spec = args.file if args.file is not None else args.catalog
        auth = args.auth_config or args.auth
        try:
            load_auth(auth)  # a mistake stops here, in one line, before anything starts
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from None
        read_only = False
        if auth is None and not is_loopback(args.host):
            read_only = not args.allow_writes
            warn(
                f"WARNING: serving on {args.host}, beyond this machine, WITHOUT "
                "AUTHENTICATION: anyone who reaches port "
                f"{args.port} reads every run. "
                + (
                    "Writes are refused (--allow-writes accepts them). "
                    if read_only
                    else "--allow-writes: anyone may also add runs. "
                )
                + "Give --auth-config FILE.yml to require API keys or tokens."
            )
        try:
            serve(
                spec,
                host=args.host,
                port=args.port,
                workers=args.workers,
                entry=args.entry,
                data=args.data,
                auth=auth,
                asset_roots=args.asset_roots,
                deadline=getattr(args, "deadline", "env"),
                read_only=read_only,
            )
        except ValueError as err:
            raise UsageError(str(err)) from None
        return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def warn(message: str) -> None:
    """A loud line on stderr: bold red on a colour terminal (``intake_broker.console.warn``:
    no escape codes into a pipe or under ``NO_COLOR``)."""
    from intake_broker.console import warn as loud

    loud(message)


class ApiKey:
    """``intake-broker apikey create|list|revoke``: API keys of the service."""

    name = "apikey"
    help = "create, list or revoke API keys of the service (intake-broker apikey --help)"
    raw = True
    needs_catalog = False

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Parses its own arguments (see :func:`~intake_broker_server.auth.apikey_main`)."""

    def run(self, args: Any, catalog: Any) -> int:
        from .auth import apikey_main

        return apikey_main(args)


SERVE = Serve()
APIKEY = ApiKey()


class Browse:
    """``intake-broker browse``: serve the local default catalog on loopback and open the page."""

    name = "browse"
    help = "serve the local (default) catalog on 127.0.0.1 and open its web page in a browser"
    raw = False
    needs_catalog = False

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--port", type=int, default=0, help="default: a free port chosen at start"
        )
        parser.add_argument(
            "--no-open",
            action="store_true",
            help="print the page's address instead of opening a browser",
        )

    def run(self, args: Any, catalog: Any) -> int:
        from .app import browse

        try:
            browse(
                args.catalog,
                entry=args.entry,
                data=args.data,
                port=args.port,
                open_page=not args.no_open,
            )
        except ValueError as err:
            raise UsageError(str(err)) from None
        return 0


BROWSE = Browse()
