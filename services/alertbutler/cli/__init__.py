"""The ``alertbutler`` command.

Verbs are listed in one table and imported only when used, so ``alertbutler --help`` is fast
and a verb's heavy dependencies load only for that verb. Each module named in the table has
``register(subparsers)``, which adds its parsers and sets ``func(args, config) -> int``.
Groups (``butler``, ``alerts``, ...) get a parser of their own whose sub-verbs several
modules may contribute: ``alerts dump`` comes from the alerts library, ``alerts replay`` from
the replay service.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from alertbutler.config import LOG_LEVELS, ConfigError, load_config
from alertbutler.logs import setup_logging

#: verb -> (one-line help, is a group of sub-verbs, modules that register it)
VERBS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "run": ("run the main job on the embedded defaults", False,
            ("alertbutler.cli.run",)),
    "config": ("show or check the effective configuration", True,
               ("alertbutler.cli.config",)),
    "broker": ("run an embedded Kafka-protocol broker in the foreground", False,
               ("alertbutler.cli.broker",)),
    "topics": ("create, list and delete Kafka topics", True, ("alertbutler.cli.topics",)),
    "l1db": ("the L1 (alert production) database: create, info", True,
             ("alertbutler.l1db.cli",)),
    "ingest": ("the asynchronous L1 database ingester (and 'ingest status')", False,
               ("alertbutler.ingest.cli",)),
    "subscribe": ("subscribe to an alert stream with filters and start positions", False,
                  ("alertbutler.subscribe.cli",)),
    "filter": ("the filter service", True, ("alertbutler.subscribe.filter_cli",)),
    "alerts": ("alert packets: dump, replay", True,
               ("alertbutler.replay.dump_cli", "alertbutler.replay.alerts_cli")),
    "night": ("record, replay and reconcile nights", True,
              ("alertbutler.replay.cli", "alertbutler.prompt.reconcile_cli")),
    "fanout": ("turn nextVisit events into one work item per detector", False,
               ("alertbutler.prompt.fanout_cli",)),
    "worker": ("a prompt-processing worker", False, ("alertbutler.prompt.cli",)),
    "butler": ("data butler repositories: create, ingest, query, certify, transfer", True,
               ("alertbutler.butler.cli",)),
    "sim": ("simulate a camera, calibrations, templates and a night", True,
            ("alertbutler.cli.sim",)),
    "serve": ("the portal: object pages, cone search, night, live alerts and a REST API",
              False, ("alertbutler.portal.cli",)),
    "token": ("API tokens for the portal's writes (filters, watchlists): create, revoke, list",
              True, ("alertbutler.portal.token_cli",)),
    "up": ("run the whole topology as supervised local services", False,
           ("alertbutler.deploy.cli",)),
    # Each package adds its verbs here as it lands, e.g.
    # "butler": ("data butler repositories", True, ("alertbutler.butler.cli",)),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alertbutler",
        description="Alert production and prompt processing built around a data butler.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $ALERTBUTLER_CONFIG)")
    parser.add_argument("--log-level", default=None, type=_log_level,
                        help=f"override general.log_level ({', '.join(LOG_LEVELS)})")
    return parser


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r} (allowed: "
                                         f"{', '.join(LOG_LEVELS)})")
    return text.upper()


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    """The parser, with sub-parsers imported only for ``verb`` (all verbs listed for help)."""
    parser = _top_parser()
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (help_text, is_group, modules) in VERBS.items():
        if name != verb:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        if is_group:
            group = sub.add_parser(name, help=help_text, description=help_text)
            target = group.add_subparsers(dest="sub_verb", metavar="SUBVERB", required=True)
        else:
            target = sub
        for module in modules:
            importlib.import_module(module).register(target)
    return parser


def _find_verb(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--config", "--log-level"):
            skip = True
            continue
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_find_verb(argv))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.verb is None else 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"alertbutler: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.general.log_level)
    from alertbutler.alerts.registry import registry_in_use

    try:
        with registry_in_use(config.schema_registry.url, config.schema_registry.client):
            return int(func(args, config) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"alertbutler: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the one place errors become exit codes
        logging.getLogger("alertbutler").debug("command failed", exc_info=True)
        print(f"alertbutler {args.verb}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
