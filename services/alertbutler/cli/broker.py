"""``alertbutler broker``: one broker (embedded or Apache Kafka) in the foreground until
Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from alertbutler.broker import ENGINES, BrokerError, KafkaSecurity, make_broker
from alertbutler.cli.args import partitions
from alertbutler.config import Config
from alertbutler.kafka import create_topics


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "broker", help="run a Kafka broker (embedded or Apache Kafka) in the foreground",
        description="Start a broker on a free 127.0.0.1 port (or --port), print its bootstrap "
        "address as the first line, and run until Ctrl-C or SIGTERM. The embedded engine "
        "(Tansu) keeps everything in memory; --engine kafka runs Apache Kafka "
        "(KRaft, jars resolved once from Maven Central) with its logs in --data-dir, so a "
        "restart on the same directory keeps topics, messages and committed offsets. With "
        "--users the Kafka engine authenticates clients with SASL/SCRAM-SHA-512 and enforces "
        "ACLs (StandardAuthorizer): pipeline users run the topology, consumer users read "
        "only alerts* topics with groups named <user>-* (docs/operations.md).")
    parser.add_argument("--engine", choices=ENGINES, default="embedded",
                        help="broker engine (default: embedded)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="Apache Kafka's data directory (default: a temporary one)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: the data directory's last one, else a free one)")
    parser.add_argument("--users", default=None, metavar="FILE",
                        help="TOML file of SCRAM users ([users.NAME] role = pipeline|consumer, "
                        "password or password_env), readable by its owner only: turns on "
                        "SASL_PLAINTEXT/SCRAM-SHA-512 and ACLs (--engine kafka)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="create this topic once the broker is up (repeatable)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.port is not None and not 0 < args.port < 65536:
        print(f"alertbutler broker: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    try:
        security = KafkaSecurity.from_file(args.users) if args.users else None
        broker = make_broker(args.engine, data_dir=args.data_dir, port=args.port,
                             security=security).start()
    except BrokerError as exc:
        print(f"alertbutler broker: {exc}", file=sys.stderr)
        return 2
    with broker:
        print(broker.bootstrap, flush=True)
        if args.topic:
            wanted = {}
            for spec in args.topic:
                name, _, parts = spec.partition(":")
                try:
                    wanted[name] = partitions(parts) if parts else config.kafka.partitions
                except argparse.ArgumentTypeError as exc:
                    print(f"alertbutler broker: --topic {spec}: partitions {exc}",
                          file=sys.stderr)
                    return 2
            create_topics(broker.bootstrap, wanted, settings=broker.admin_settings())
        if security is not None:
            print(f"SASL_PLAINTEXT with SCRAM-SHA-512 and ACLs; users "
                  f"{', '.join(sorted(security.users))}; super user {security.super_user} "
                  f"(password in {getattr(broker, 'data_dir', '')}/admin.secret)",
                  file=sys.stderr, flush=True)
        print(f"{broker.engine} broker pid {broker.pid}; Ctrl-C to stop", file=sys.stderr,
              flush=True)
        try:
            while not stop.wait(0.5) and broker.is_running():
                pass
        except KeyboardInterrupt:
            pass
    return 0
