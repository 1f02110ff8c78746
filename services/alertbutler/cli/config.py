"""``alertbutler config show|check``."""

from __future__ import annotations

import argparse
import json

from alertbutler.config import Config, config_reference, dump_toml


def register(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="print the effective configuration (secrets hidden)",
                          description="Print the configuration after the file and the "
                          "ALERTBUTLER_<SECTION>__<KEY> environment overrides are applied.")
    show.add_argument("--format", choices=("toml", "json"), default="toml")
    show.set_defaults(func=_show)
    ref = sub.add_parser("reference", help="print the configuration reference (markdown)",
                         description="Every key with its environment variable, default and "
                         "meaning, generated from the code (docs/configuration.md embeds it).")
    ref.set_defaults(func=lambda args, config: print(config_reference()) or 0)
    check = sub.add_parser("check", help="validate the configuration and exit 0 if it loads")
    check.set_defaults(func=lambda args, config: print("configuration OK") or 0)


def _show(args: argparse.Namespace, config: Config) -> int:
    if args.format == "json":
        print(json.dumps(config.as_dict(), indent=2))
    else:
        print(dump_toml(config), end="")
    return 0
