"""``alertbutler night reconcile``: a night's counts per visit-detector; non-zero on mismatch."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from alertbutler.config import Config
from alertbutler.errors import AlertbutlerError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile", help="count a night's alerts at each hand-over; exit 1 on any mismatch",
        description="Per visit-detector: alerts produced by the worker, acknowledged by "
        "Kafka, on the alert topic and in the L1 database; with --filters, per active "
        "filter of a filter service, the night's alerts it saw, kept and forwarded. Exits 1 "
        "and names the visit-detectors and filters whose counts differ.")
    parser.add_argument("night", nargs="?", default=None, metavar="NIGHT",
                        help="a night directory written by `alertbutler run` (default: the "
                        "last one in the data directory, <data_dir>/mainjob)")
    parser.add_argument("--filters", action="append", default=[], metavar="FILE",
                        help="a filter service's filters file (its <FILE>.status.json beside "
                        "it says what runs): count each active filter's yield of the night "
                        "from the service's source and output topics read back (repeatable)")
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
    files = [*ledger.filters, *args.filters]
    try:
        yields = _filter_yields(files, ledger, config)
    except AlertbutlerError as exc:
        print(f"alertbutler night reconcile: {exc}", file=sys.stderr)
        return 2
    with L1db(ledger.l1db_url) as db:
        rows = reconcile(ledger, db, {y.name: y.forwarded_by_visit_detector for y in yields})
    bad = [r for r in rows if not r.matches]
    bad_filters = [y for y in yields if not y.matches]
    if args.json:
        print(json.dumps({"night": str(ledger.root), "matches": not (bad or bad_filters),
                          "visit_detectors": [asdict(r) for r in rows],
                          "filters": [{**asdict(y), "matches": y.matches} for y in yields]},
                         indent=1))
    else:
        _print_table(rows, str(ledger.root))
        if yields:
            _print_filters(yields)
    for r in bad:
        print(f"mismatch: {r.label}: {'; '.join(r.problems)}", file=sys.stderr)
    for y in bad_filters:
        print(f"mismatch: filter {y.name}: {'; '.join(y.problems)}", file=sys.stderr)
    return 1 if bad or bad_filters else 0


def _filter_yields(files: list[str], ledger: Any, config: Config) -> list[Any]:
    """Each filter service's active filters, counted over the night's acknowledged alerts."""
    if not files:
        return []
    from alertbutler.subscribe.night_yield import night_filter_yield

    ids = {(e.visit, e.detector): e.alert_ids for e in ledger.entries}
    out: list[Any] = []
    for f in files:
        out.extend(night_filter_yield(f, ids, config=config))
    return out


def _print_filters(yields: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="filters: the night's alerts each active filter saw, kept, forwarded")
    for name in ("filter", "topic", "before activation", "seen", "kept", "forwarded",
                 "not read yet", "check"):
        table.add_column(name, justify="left" if name in ("filter", "topic", "check")
                         else "right")
    for y in yields:
        table.add_row(y.name, y.topic or "—", str(y.before_activation), str(y.seen),
                      str(y.kept), str(y.forwarded), str(y.not_read_yet),
                      "ok" if y.matches else "MISMATCH")
    Console(width=120).print(table)


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
