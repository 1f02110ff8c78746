"""``alertbutler up``: run the whole topology as supervised local services."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from alertbutler.broker import ENGINES
from alertbutler.cli import args as arg_types
from alertbutler.config import Config, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "up", help="run the whole topology as supervised local services",
        description="Start a broker (unless kafka.bootstrap_servers is set: --engine "
        "embedded, the default, or kafka, Apache Kafka with its data in <root>/kafka; "
        "restarted on the same port and data directory if it dies), "
        "create the topics, the L1 database and the central repo, then run the fan-out, "
        "the workers, the L1 ingester and (with --filters) the filter service as separate "
        "processes, restarting any that crash, with a live view of each service's alerts, "
        "latency and lag. Ctrl-C or SIGTERM stops them in order, each finishing or handing "
        "back its work in flight. With --night a simulated night is played into the "
        "deployment in real time (nextVisit events, then raws landing); without it, "
        "<data_dir>/up/deployment.json tells a feeder (alertbutler night replay --into) "
        "where the deployment is. SIGUSR1 adds a worker (the work topic's group "
        "rebalances).")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="the broker to start when kafka.bootstrap_servers is empty "
                        "(default: kafka.engine, embedded unless set): embedded (memory only) "
                        "or kafka (Apache Kafka, data kept in <data_dir>/kafka, or "
                        "<data_dir>/up/kafka with --night)")
    parser.add_argument("--workers", type=arg_types.workers, default=None,
                        help="worker processes (default: prompt.workers)")
    parser.add_argument("--l1db-url", default=None,
                        help="L1 database URL (default: l1db.url, else SQLite under data_dir)")
    parser.add_argument("--filters", type=Path, default=None, metavar="FILE",
                        help="also run the filter service on this filters file")
    parser.add_argument("--no-live", action="store_true",
                        help="no live view: a JSON log line every 10 s instead")
    parser.add_argument("--base-port", type=int, default=None, metavar="P",
                        help="first metrics port; replicas take consecutive ports "
                        "(default: the first free block from 9100)")
    parser.add_argument("--detectors", type=int, default=None,
                        help="detectors of the camera the fan-out and workers serve (default: "
                        "the camera's; with --night: the main job's night)")
    parser.add_argument("--detector-size", type=int, default=None, metavar="PIXELS",
                        help="detector side in pixels (as --detectors)")
    night = parser.add_argument_group("simulated night (--night)")
    night.add_argument("--night", action="store_true",
                       help="play the main job's simulated night into the deployment, in a "
                       "fresh <data_dir>/up directory")
    night.add_argument("--visits", type=int, default=None, help="visits (default: main job's)")
    night.add_argument("--seed", type=int, default=None)
    night.add_argument("--cadence", type=float, default=None, metavar="SECONDS",
                       help="seconds between visits (default: main job's)")
    night.add_argument("--exit-when-done", action="store_true",
                       help="stop once every visit-detector is processed and ingested, and "
                       "print a JSON summary")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.deploy.feed import NightPlan
    from alertbutler.deploy.up import Deployment, UpOptions

    if args.engine is not None and config.kafka.bootstrap_servers:
        raise ConfigError(f"--engine {args.engine} starts a broker, but "
                          "kafka.bootstrap_servers is set: use one or the other")
    plan = None
    if args.night:
        changes = {k: v for k, v in (("n_visits", args.visits), ("n_detectors", args.detectors),
                                     ("detector_size", args.detector_size),
                                     ("seed", args.seed), ("cadence_s", args.cadence))
                   if v is not None}
        plan = NightPlan.default(**changes)
    elif args.exit_when_done:
        raise ValueError("--exit-when-done needs --night")
    if args.filters is not None and not args.filters.is_file():
        raise ValueError(f"--filters: no such file: {args.filters}")
    options = UpOptions(workers=args.workers or config.prompt.workers, l1db_url=args.l1db_url,
                        filters=args.filters.resolve() if args.filters else None,
                        live=not args.no_live, base_port=args.base_port, night=plan,
                        exit_when_done=args.exit_when_done,
                        n_detectors=args.detectors, detector_size=args.detector_size,
                        engine=args.engine)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Deployment(config, options) as deployment:
        signal.signal(signal.SIGUSR1, lambda *_: deployment.request_worker())
        code = deployment.run(stop)
    if deployment.progress is not None:
        print(json.dumps(deployment.progress.summary(), default=str))
    return code
