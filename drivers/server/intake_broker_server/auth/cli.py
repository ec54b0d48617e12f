"""``intake-broker apikey``: create, list and revoke API keys in a keys file.

The secret of a new key is printed once; the file keeps only its hash.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from .apikeys import SCOPES, ApiKeyStore

#: The keys file when ``--keys`` is not given.
KEYS_ENV = "INTAKE_BROKER_API_KEYS"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake-broker apikey", description="Manage the API keys of intake-broker-server."
    )
    parser.add_argument(
        "--keys", default=os.environ.get(KEYS_ENV), help=f"the keys file (default: ${KEYS_ENV})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key for a user (printed once)")
    create.add_argument("user", help="the user the key signs in as")
    create.add_argument(
        "--scopes", default="read", help=f"comma-separated, of {', '.join(SCOPES)} (default: read)"
    )
    create.add_argument(
        "--expires-in",
        type=float,
        default=None,
        metavar="DAYS",
        help="days until the key expires (default: never)",
    )
    commands.add_parser("list", help="list the keys (ids, users, scopes, state; no secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id", help="the key's id (apikey list shows them)")
    return parser


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def apikey_main(argv: Sequence[str] | None = None) -> int:
    """Run ``intake-broker apikey create|list|revoke``; the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``apikey`` (``sys.argv[1:]`` when None), e.g.
        ``["--keys", "keys.json", "create", "ada", "--scopes", "read,write",
        "--expires-in", "30"]``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.keys:
        parser.error(f"give the keys file with --keys PATH or ${KEYS_ENV}")
    store = ApiKeyStore(args.keys)
    if args.command == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        if args.expires_in is not None and args.expires_in <= 0:
            print("--expires-in must be a positive number of days", file=sys.stderr)
            return 2
        try:
            record, key = store.create(
                args.user, scopes, None if args.expires_in is None else args.expires_in * 86400
            )
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        print(key)
        print(
            f"# key {record.id} for {record.user}, scopes {','.join(record.scopes)}, "
            f"expires {_when(record.expires)}. The secret is shown only now; clients send "
            "'Authorization: Apikey <key>'.",
            file=sys.stderr,
        )
        return 0
    if args.command == "list":
        now = time.time()
        print(f"{'id':<14}{'user':<20}{'scopes':<12}{'created':<22}{'expires':<22}state")
        for api_key in store.list():
            state = (
                "revoked"
                if api_key.revoked is not None
                else "expired"
                if api_key.expired(now)
                else "active"
            )
            print(
                f"{api_key.id:<14}{api_key.user:<20}{','.join(api_key.scopes):<12}"
                f"{_when(api_key.created):<22}{_when(api_key.expires):<22}{state}"
            )
        return 0
    try:
        store.revoke(args.id)
    except KeyError:
        print(f"no key with id {args.id!r} in {args.keys}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(apikey_main())
