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
        parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback)")
        parser.add_argument("--port", type=int, default=8000, help="default 8000")
        parser.add_argument("--workers", type=_positive, default=1, help="worker processes")
        parser.add_argument(
            "--auth",
            metavar="MODULE:NAME",
            help="an AuthConfig (API keys, tokens, identity provider, access policy); "
            "default: no authentication",
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
        from .app import serve

        try:
            serve(
                args.catalog,
                host=args.host,
                port=args.port,
                workers=args.workers,
                entry=args.entry,
                data=args.data,
                auth=args.auth,
                asset_roots=args.asset_roots,
                deadline=getattr(args, "deadline", "env"),
            )
        except ValueError as err:
            raise UsageError(str(err)) from None
        return 0


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
