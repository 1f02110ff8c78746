"""``alertbutler l1db create|upgrade|info|attempts``: make an L1 database, upgrade one made
by an older schema version, describe it, or list the prompt work items' attempts it counts."""

from __future__ import annotations

import argparse
import datetime
import json

from alertbutler.config import Config
from alertbutler.l1db.db import L1db


def register(sub: argparse._SubParsersAction) -> None:
    create = sub.add_parser(
        "create", help="create the L1 database tables (existing tables are kept)",
        description="Create the L1 database at --url (default: l1db.url, else SQLite under "
        "general.data_dir). Tables that exist are kept; an incompatible schema version is "
        "an error.")
    create.add_argument("--url", default=None, help="database URL (default: l1db.url)")
    create.set_defaults(func=_create)
    upgrade = sub.add_parser(
        "upgrade", help="upgrade an L1 database of an older schema version in place",
        description="Upgrade the L1 database at URL (default: l1db.url) to this alertbutler's "
        "schema version in one transaction (on PostgreSQL: DiaSource and DiaForcedSource "
        "become time-partitioned; the rows are moved). Stop the ingesters first: the tables "
        "are locked while it runs. A database already current is left alone.")
    upgrade.add_argument("url", nargs="?", default=None,
                         help="database URL (default: l1db.url)")
    upgrade.set_defaults(func=_upgrade)
    info = sub.add_parser("info", help="row counts, schema version, last ingested visit",
                          description="Describe an L1 database: row count of every table, "
                          "schema version, and the last completely ingested visit-detector.")
    info.add_argument("--url", default=None, help="database URL (default: l1db.url)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)
    attempts = sub.add_parser(
        "attempts", help="prompt work items started, how often, and their last error",
        description="List the work_attempt ledger the prompt workers keep: each work item, "
        "how many times it was started, by which worker, its last error, and whether it "
        "finished (processed, recorded as bad input, or dead-lettered).")
    attempts.add_argument("--url", default=None, help="database URL (default: l1db.url)")
    attempts.add_argument("--unfinished", action="store_true",
                          help="only items in flight or abandoned mid-way")
    attempts.add_argument("--json", action="store_true", help="JSON lines, one per item")
    attempts.set_defaults(func=_attempts)


def _create(args: argparse.Namespace, config: Config) -> int:
    with L1db.create(args.url or config.l1db_url) as db:
        print(f"L1 database ready: {db.url} (schema version {db.schema_version})")
    return 0


def _upgrade(args: argparse.Namespace, config: Config) -> int:
    url = args.url or config.l1db_url
    was = L1db.upgrade(url)
    with L1db(url) as db:
        if was == db.schema_version:
            print(f"L1 database {db.url} is already at schema version {was}")
        else:
            print(f"L1 database {db.url} upgraded from schema version {was} to "
                  f"{db.schema_version}")
    return 0


def _info(args: argparse.Namespace, config: Config) -> int:
    with L1db(args.url or config.l1db_url) as db:
        info = db.info()
    last = None if info.last_ingested is None else {
        "visit": info.last_ingested.visit, "detector": info.last_ingested.detector,
        "completed_at": _utc(info.last_ingested_at)}
    if args.json:
        print(json.dumps({
            "url": info.url, "backend": info.backend, "schema_version": info.schema_version,
            "row_counts": info.row_counts,
            "ingested_visit_detectors": info.n_ingested_visit_detectors,
            "last_ingested_visit_detector": last, "last_visit": info.last_visit}))
        return 0
    print(f"database        {info.url} ({info.backend})")
    print(f"schema version  {info.schema_version}")
    for table, count in info.row_counts.items():
        print(f"{table:<16}{count:>12,}")
    print(f"ingested visit-detectors  {info.n_ingested_visit_detectors:,}")
    if last:
        print(f"last ingested   visit {last['visit']} detector {last['detector']} "
              f"at {last['completed_at']}")
    else:
        print("last ingested   none")
    print(f"last visit      {info.last_visit if info.last_visit is not None else 'none'}")
    return 0


def _attempts(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.l1db.attempts import WorkAttempts

    with L1db(args.url or config.l1db_url) as db:
        rows = WorkAttempts(db).rows(unfinished=args.unfinished)
    for row in rows:
        row["started_at"] = _utc(row["started_at"])  # type: ignore[arg-type]
        row["finished_at"] = _utc(row["finished_at"])  # type: ignore[arg-type]
        if args.json:
            print(json.dumps(row))
            continue
        state = f"finished {row['finished_at']}" if row["finished_at"] else "UNFINISHED"
        print(f"{row['item']}  attempts {row['attempts']}  last on {row['worker']} at "
              f"{row['started_at']}  {state}")
        if row["last_error"]:
            print(f"    last error: {row['last_error']}")
    if not rows:
        print("no work items" + (" unfinished" if args.unfinished else ""))
    return 0


def _utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")
