"""``alertbutler broker``: one embedded broker in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from alertbutler.broker import EmbeddedBroker
from alertbutler.config import Config
from alertbutler.kafka import create_topics


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "broker", help="run an embedded Kafka-protocol broker in the foreground",
        description="Start the embedded Tansu broker on a free 127.0.0.1 port (or --port), "
        "print its bootstrap address as the first line, and run until Ctrl-C or SIGTERM. "
        "Storage is in memory: topics vanish when it stops.")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="create this topic once the broker is up (repeatable)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        print(broker.bootstrap, flush=True)
        if args.topic:
            wanted = {}
            for spec in args.topic:
                name, _, parts = spec.partition(":")
                wanted[name] = int(parts or config.kafka.partitions)
            create_topics(broker.bootstrap, wanted)
        print(f"embedded broker pid {broker.pid}; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5) and broker.is_running():
                pass
        except KeyboardInterrupt:
            pass
    return 0
