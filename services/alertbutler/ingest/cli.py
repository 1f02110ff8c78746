"""``alertbutler ingest`` (the service), ``ingest status`` and ``ingest reset-offsets``."""

from __future__ import annotations

import argparse
import json
import sys

from alertbutler.config import Config, ConfigError
from alertbutler.kafka import aiokafka_settings, confluent_settings, group_id


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ingest", help="the asynchronous L1 database ingester (and 'ingest status')",
        description="Consume the alert topic(s) into the L1 database until SIGTERM or SIGINT "
        "(which finish and commit the batch in flight). Offsets are stored in the database "
        "with the rows; malformed messages go to the dead-letter topic. "
        "'alertbutler ingest status' shows lag per partition, rows/s and the last "
        "ingested visit-detector, and exits 1 if a stored offset is beyond its partition's "
        "end. 'alertbutler ingest reset-offsets --topic T' is the recovery after the broker or "
        "the topic lost its messages (a memory-only broker restarted, a topic re-created): it "
        "sets where the ingester resumes (a running ingester stopped at such a partition picks "
        "it up by itself).")
    parser.add_argument("action", nargs="?", choices=["run", "status", "reset-offsets"],
                        default="run",
                        help="run the ingester (default), show its status, or reset its "
                        "stored offsets")
    parser.add_argument("--topic", action="append", default=None, metavar="NAME",
                        help="alert topic (repeatable; default: kafka.alert_topic)")
    parser.add_argument("--group", default=None, help="consumer group (default: ingest.group)")
    parser.add_argument("--db", default=None, help="L1 database URL (default: l1db.url)")
    parser.add_argument("--dead-letter-topic", default=None,
                        help="dead-letter topic (default: kafka.dead_letter_topic)")
    parser.add_argument("--assign-all", action="store_true",
                        help="take every partition without joining the group (one ingester "
                        "per topic; restarts are immediate)")
    parser.add_argument("--create-db", action="store_true",
                        help="create the L1 database tables first if missing")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus /metrics, /healthz and /readyz on this port")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="status: seconds between the two samples of rows/s")
    parser.add_argument("--json", action="store_true", help="status: print one JSON object")
    parser.add_argument("--partition", type=int, action="append", default=None, metavar="P",
                        help="reset-offsets: this partition only (repeatable; default: every "
                        "partition with a stored offset)")
    parser.add_argument("--to", default=None, metavar="earliest|OFFSET",
                        help="reset-offsets: 'earliest' (the partition's start) or an offset; "
                        "required")
    parser.set_defaults(func=_main)


def _bootstrap(config: Config) -> str:
    if not config.kafka.bootstrap_servers:
        raise ConfigError("kafka.bootstrap_servers is empty: the ingester needs a running "
                          "broker (start one with 'alertbutler broker' and set "
                          "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS)")
    return config.kafka.bootstrap_servers


def _main(args: argparse.Namespace, config: Config) -> int:
    topics = tuple(args.topic or [config.kafka.alert_topic])
    group = group_id(config, args.group or config.ingest.group)
    db_url = args.db or config.l1db_url
    if args.action == "reset-offsets":
        return _reset_offsets(args, group, db_url)
    bootstrap = _bootstrap(config)
    if args.action == "status":
        from alertbutler.ingest.status import format_status, ingest_status

        status = ingest_status(db_url=db_url, group=group, topics=topics,
                               confluent=confluent_settings(config, bootstrap),
                               interval=args.interval)
        if args.json:
            print(json.dumps(status.as_dict()))
        else:
            print(format_status(status))
        return 1 if status.beyond_end else 0

    from alertbutler.ingest.service import IngestSettings, run_ingester
    from alertbutler.l1db import L1db

    if args.create_db:
        L1db.create(db_url).close()
    settings = IngestSettings(
        topics=topics, db_url=db_url, group=group,
        dead_letter_topic=args.dead_letter_topic or config.kafka.dead_letter_topic,
        aiokafka=aiokafka_settings(config, bootstrap),
        confluent=confluent_settings(config, bootstrap),
        max_batch_messages=config.ingest.max_batch_messages,
        max_batch_bytes=config.ingest.max_batch_bytes, max_batch_ms=config.ingest.max_batch_ms,
        session_timeout_ms=config.kafka.session_timeout_ms, assign_all=args.assign_all)
    totals = run_ingester(settings, metrics_port=args.metrics_port)
    print(json.dumps(vars(totals)), file=sys.stderr)
    return 0


def _reset_offsets(args: argparse.Namespace, group: str, db_url: str) -> int:
    from alertbutler.l1db import L1db

    if not args.topic or len(args.topic) != 1:
        raise ConfigError("reset-offsets needs exactly one --topic (the offsets of which topic "
                          "to reset)")
    if args.to is None:
        raise ConfigError("reset-offsets needs --to earliest or --to OFFSET (where the "
                          "ingester resumes)")
    if args.to == "earliest":
        to = None
    elif args.to.isascii() and args.to.isdigit():
        to = int(args.to)
    else:
        raise ConfigError(f"--to {args.to!r}: expected 'earliest' or a non-negative offset")
    topic = args.topic[0]
    with L1db(db_url) as db:
        before = db.reset_consumer_offsets(group, topic, partitions=args.partition, to=to)
    if not before:
        print(f"no offsets stored for group {group} on {topic}: nothing to reset")
        return 0
    for partition, offset in sorted(before.items()):
        print(f"{topic}:{partition} group {group}: {'-' if offset is None else offset} -> "
              f"{'earliest' if to is None else to}")
    return 0
