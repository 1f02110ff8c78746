"""What every long-running prompt service does the same way: topics, signals, metrics."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from alertbutler.config import Config, ConfigError
from alertbutler.kafka import create_topics
from alertbutler.metrics import Health, MetricsServer, ServiceMetrics


def require_bootstrap(config: Config, verb: str) -> str:
    if not config.kafka.bootstrap_servers:
        raise ConfigError(f"'alertbutler {verb}' needs kafka.bootstrap_servers (it serves a "
                          "shared broker); 'alertbutler run' starts everything on an embedded "
                          "one")
    return config.kafka.bootstrap_servers


def ensure_topics(config: Config, bootstrap: str) -> None:
    """The prompt topics; nextVisit events keep one global order, so one partition."""
    k = config.kafka
    create_topics(bootstrap, {k.next_visit_topic: 1, k.work_topic: k.partitions,
                              k.alert_topic: k.partitions, k.dead_letter_topic: 1,
                              config.prompt.status_topic: 1}, settings=k.client)


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
