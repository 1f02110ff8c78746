"""``alertbutler token create|revoke|list``: the portal's API tokens (stored hashed)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from alertbutler.config import Config

if TYPE_CHECKING:
    from alertbutler.portal.tokens import TokenStore


def register(sub: argparse._SubParsersAction) -> None:
    create = sub.add_parser(
        "create", help="create a token for NAME and print it once (only its hash is kept)",
        description="Create an API token for the portal's writes (filters, watchlists). The "
        "token is printed once; <data_dir>/portal/tokens.json keeps only its SHA-256. "
        "Creating a token for an existing NAME replaces (revokes) the old one.")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(func=_create)
    revoke = sub.add_parser("revoke", help="revoke NAME's token")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(func=_revoke)
    listing = sub.add_parser("list", help="the names of the tokens")
    listing.set_defaults(func=_list)


def _store(config: Config) -> TokenStore:
    from alertbutler.portal.tokens import TokenStore, tokens_path

    return TokenStore(tokens_path(config.data_dir))


def _create(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.portal.tokens import TokenError

    try:
        token = _store(config).create(args.name)
    except TokenError as exc:
        print(f"alertbutler token create: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _revoke(args: argparse.Namespace, config: Config) -> int:
    if not _store(config).revoke(args.name):
        print(f"alertbutler token revoke: no token named {args.name!r}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    for name in _store(config).names():
        print(name)
    return 0
