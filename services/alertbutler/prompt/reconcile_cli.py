"""``alertbutler night reconcile``: a night's counts per visit-detector; non-zero on mismatch."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from alertbutler.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile", help="count a night's alerts at each hand-over; exit 1 on any mismatch",
        description="Per visit-detector: alerts produced by the worker, acknowledged by "
        "Kafka, on the alert topic and in the L1 database. Exits 1 and names the "
        "visit-detectors whose counts differ.")
    parser.add_argument("night", nargs="?", default=None, metavar="NIGHT",
                        help="a night directory written by `alertbutler run` (default: the "
                        "last one in the data directory, <data_dir>/mainjob)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_reconcile)


def _reconcile(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.l1db import L1db
    from alertbutler.prompt.ledger import LedgerError, night_root, read_ledger
    from alertbutler.prompt.reconcile import reconcile

    try:
        ledger = read_ledger(night_root(config.data_dir, args.night))
    except LedgerError as exc:
        print(f"alertbutler night reconcile: {exc}", file=sys.stderr)
        return 2
    with L1db(ledger.l1db_url) as db:
        rows = reconcile(ledger, db)
    bad = [r for r in rows if not r.matches]
    if args.json:
        print(json.dumps({"night": str(ledger.root), "matches": not bad,
                          "visit_detectors": [asdict(r) for r in rows]}, indent=1))
    else:
        _print_table(rows, str(ledger.root))
    for r in bad:
        print(f"mismatch: {r.label}: {'; '.join(r.problems)}", file=sys.stderr)
    return 1 if bad else 0


def _print_table(rows: list, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"night {title}")
    for name in ("visit", "detector", "status", "produced", "acknowledged", "on topic",
                 "in L1 DB", "check"):
        table.add_column(name, justify="right" if name not in ("status", "check") else "left")
    for r in rows:
        table.add_row(str(r.visit), str(r.detector), r.reason, str(r.produced),
                      str(r.acknowledged), str(r.on_topic), str(r.in_l1db),
                      "ok" if r.matches else "MISMATCH")
    Console(width=120).print(table)
