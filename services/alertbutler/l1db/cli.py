"""``alertbutler l1db create|upgrade|info|attempts``: make an L1 database, upgrade one made
by an older schema version, describe it, or list the prompt work items' attempts it counts."""

from __future__ import annotations

import argparse
import datetime
import json

from alertbutler.config import Config
from alertbutler.l1db._errors import L1dbError
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
        description="List the visit_detector_attempt ledger the prompt workers keep: each "
        "work item (instrument, visit, detector), how many times it was started, by which "
        "worker, its last error, and whether it "
        "finished (processed, recorded as bad input, or dead-lettered).")
    attempts.add_argument("--url", default=None, help="database URL (default: l1db.url)")
    attempts.add_argument("--unfinished", action="store_true",
                          help="only items in flight or abandoned mid-way")
    attempts.add_argument("--json", action="store_true", help="JSON lines, one per item")
    attempts.set_defaults(func=_attempts)
    server = sub.add_parser(
        "server", help="run a local Apache Cassandra cluster for the L1 database",
        description="Start N Cassandra nodes on 127.0.0.1 .. 127.0.0.N from Maven Central jars "
        "(resolved once and cached), print the contact points as the first line, and run "
        "until Ctrl-C or SIGTERM. Every node dies with this process.")
    server.add_argument("--engine", choices=["cassandra"], default="cassandra")
    server.add_argument("--nodes", type=int, default=3, help="number of nodes (1-9)")
    server.add_argument("--data-dir", default=None,
                        help="keep the cluster here (default: a temporary directory)")
    server.add_argument("--port", type=int, default=None, help="CQL port of every node")
    server.set_defaults(func=_server)
    copy = sub.add_parser(
        "copy", help="copy an L1 database (PostgreSQL or SQLite) into another (Cassandra)",
        description="Copy every row, completeness record, end marker and consumer offset of "
        "SRC into DEST (created if needed). Idempotent: an interrupted copy is run again. "
        "Stop the ingesters of SRC first.")
    copy.add_argument("src", help="source database URL (sqlite:// or postgresql://)")
    copy.add_argument("dest", help="destination URL, e.g. cassandra://127.0.0.1/l1")
    copy.set_defaults(func=_copy)


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
        item = f"{row['instrument']} visit {row['visit']} detector {row['detector']}"
        print(f"{item}  attempts {row['attempts']}  last on {row['worker']} at "
              f"{row['started_at']}  {state}")
        if row["last_error"]:
            print(f"    last error: {row['last_error']}")
    if not rows:
        print("no work items" + (" unfinished" if args.unfinished else ""))
    return 0


def _server(args: argparse.Namespace, config: Config) -> int:
    import signal
    import sys
    import threading

    from alertbutler.l1db.cassandra.cluster import CassandraCluster

    if args.port is not None and not 0 < args.port < 65536:
        print(f"alertbutler l1db server: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        cluster = CassandraCluster(nodes=args.nodes, data_dir=args.data_dir,
                                   native_port=args.port).start()
    except L1dbError as exc:
        print(f"alertbutler l1db server: {exc}", file=sys.stderr)
        return 2
    with cluster:
        print(cluster.contact_points, flush=True)
        print(f"Cassandra {args.nodes} nodes; URL {cluster.url('l1')}; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5) and cluster.is_running():
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _copy(args: argparse.Namespace, config: Config) -> int:
    import sys

    from alertbutler.l1db.copy import copy_l1db

    if args.src.startswith("cassandra://"):
        print("alertbutler l1db copy: SRC must be an SQLite or PostgreSQL L1 database",
              file=sys.stderr)
        return 2
    with L1db(args.src) as source, L1db.create(args.dest) as dest:
        copied = copy_l1db(source, dest)
    for table, n in copied.items():
        print(f"{table:<24}{n:>12,}")
    return 0


def _utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")
