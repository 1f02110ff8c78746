"""What every long-running prompt service does the same way: topics, signals, metrics."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator

from alertbutler.alerts import control_topic
from alertbutler.config import Config, ConfigError
from alertbutler.imaging.geometry import FOCAL_PLANES
from alertbutler.kafka import create_topics
from alertbutler.metrics import Health, MetricsServer, ServiceMetrics


def require_bootstrap(config: Config, verb: str) -> str:
    if not config.kafka.bootstrap_servers:
        raise ConfigError(f"'alertbutler {verb}' needs kafka.bootstrap_servers (it serves a "
                          "shared broker); 'alertbutler run' starts everything on an embedded "
                          "one")
    return config.kafka.bootstrap_servers


def add_service_options(parser: argparse.ArgumentParser, *, camera_help: str,
                        unit: str) -> None:
    """The options every prompt service verb has: its camera, metrics port and idle exit
    (``unit``: what it waits for, e.g. "work item")."""
    parser.add_argument("--camera", default="simcam", choices=sorted(FOCAL_PLANES),
                        help=f"{camera_help} (default: simcam)")
    parser.add_argument("--detectors", type=int, default=None,
                        help="number of detectors of the camera (default: the camera's)")
    parser.add_argument("--detector-size", type=int, default=None, metavar="PIXELS",
                        help="detector side in pixels (default: the camera's)")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /metrics, /healthz and /readyz on this port")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help=f"exit after this long without {unit} (default: never)")


def ensure_topics(config: Config, bootstrap: str) -> None:
    """The prompt topics; nextVisit events keep one global order, so one partition. The
    alert topic's control topic carries its end markers (one partition: each marker stands
    alone, so their order does not matter)."""
    k = config.kafka
    create_topics(bootstrap, {k.next_visit_topic: 1, k.work_topic: k.partitions,
                              k.alert_topic: k.partitions, control_topic(k.alert_topic): 1,
                              k.dead_letter_topic: 1, config.prompt.status_topic: 1},
                  settings=k.client)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes its item, commits and exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@contextlib.contextmanager
def observability(service: str, port: int | None) -> Iterator[tuple[ServiceMetrics, Health]]:
    """Metrics and health for a service; served over HTTP only when a port is given."""
    metrics, health = ServiceMetrics(service), Health()
    server = MetricsServer(metrics, health, port=port).start() if port is not None else None
    try:
        yield metrics, health
    finally:
        if server is not None:
            server.stop()
