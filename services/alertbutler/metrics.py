"""Service observability: Prometheus metrics, ``/healthz`` and ``/readyz`` on one HTTP port.

Every service (fan-out, worker, ingester, filter service) exposes the same families with a
``service`` label, so one dashboard and one set of alerting rules cover the whole topology.
Liveness (``/healthz``) says the process loop is turning; readiness (``/readyz``) says it has
joined its inputs (broker reachable, database open, partitions assigned).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Latency buckets (seconds) from a few ms (a butler get) to minutes (a stuck visit).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class ServiceMetrics:
    """The metric families every alertbutler service exposes, in a registry of its own."""

    def __init__(self, service: str, *, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "alertbutler_stage_seconds", "Time spent in one pipeline stage",
            ["service", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.alert_latency_seconds = Histogram(
            "alertbutler_alert_latency_seconds",
            "End of raw arrival to alert acknowledged by Kafka (worker) or committed to the "
            "L1 database (ingester)", ["service"], buckets=LATENCY_BUCKETS, registry=r)
        self.alerts_published = Counter(
            "alertbutler_alerts_published_total", "Alerts acknowledged by Kafka",
            ["service"], registry=r)
        self.alerts_ingested = Counter(
            "alertbutler_alerts_ingested_total", "Alerts whose rows were committed to the L1 DB",
            ["service"], registry=r)
        self.rows_ingested = Counter(
            "alertbutler_rows_ingested_total", "L1 DB rows committed, by table",
            ["service", "table"], registry=r)
        self.messages_consumed = Counter(
            "alertbutler_messages_consumed_total", "Kafka messages consumed", ["service"],
            registry=r)
        self.consumer_lag = Gauge(
            "alertbutler_consumer_lag", "High watermark minus position, per partition",
            ["service", "topic", "partition"], registry=r)
        self.errors = Counter(
            "alertbutler_errors_total", "Errors, by kind", ["service", "kind"], registry=r)
        self.dead_lettered = Counter(
            "alertbutler_dead_lettered_total", "Messages sent to the dead-letter topic",
            ["service", "reason"], registry=r)
        self.work_items = Counter(
            "alertbutler_work_items_total", "Work items finished, by outcome",
            ["service", "outcome"], registry=r)
        self.kafka_up = Gauge(
            "alertbutler_kafka_up", "1 while the Kafka broker answers this service, 0 during "
            "an outage", ["service"], registry=r)
        self.kafka_outages = Counter(
            "alertbutler_kafka_outages_total", "Kafka broker outages seen (each logged once)",
            ["service"], registry=r)
        self.kafka_outage_seconds = Counter(
            "alertbutler_kafka_outage_seconds_total",
            "Seconds without a reachable Kafka broker (grows during an outage)", ["service"],
            registry=r)
        self.offset_beyond_end = Gauge(
            "alertbutler_offset_beyond_end",
            "1 while a stored consumer offset is beyond its partition's end (broker or topic "
            "lost its data): nothing is read from the partition until an operator resets it",
            ["service", "topic", "partition"], registry=r)
        self.up_since = Gauge("alertbutler_start_time_seconds", "Process start (unix time)",
                              ["service"], registry=r)
        self.up_since.labels(service).set(time.time())
        self.kafka_up.labels(service).set(1)

    def stage(self, stage: str) -> _StageTimer:
        """Context manager timing one stage into ``alertbutler_stage_seconds``."""
        return _StageTimer(self.stage_seconds.labels(self.service, stage))


class _StageTimer:
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self.seconds = 0.0

    def __enter__(self) -> _StageTimer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self._histogram.observe(self.seconds)


class Health:
    """Liveness and readiness flags a service loop updates.

    Readiness is the loop's own flag (inputs joined) AND no open block: a block is a named
    reason not to be ready that another part of the service sets and clears on its own (a
    broker outage, a partition stopped at an offset beyond its end), so neither overwrites
    the other."""

    def __init__(self, *, stale_after: float = 120.0) -> None:
        self.stale_after = stale_after
        self._ready = threading.Event()
        self._beat = time.monotonic()
        self._detail = "starting"
        self._blocks: dict[str, str] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Called by the service loop on every turn: proves it is not hung."""
        self._beat = time.monotonic()

    def set_ready(self, ready: bool = True, detail: str = "") -> None:
        (self._ready.set if ready else self._ready.clear)()
        self._detail = detail or ("ready" if ready else "not ready")

    def block(self, name: str, detail: str) -> None:
        """Not ready because of ``name`` (``detail`` says why) until :meth:`unblock`."""
        with self._lock:
            self._blocks[name] = detail

    def unblock(self, name: str) -> None:
        with self._lock:
            self._blocks.pop(name, None)

    @property
    def detail(self) -> str:
        with self._lock:
            blocks = list(self._blocks.values())
        return "; ".join(blocks) if blocks else self._detail

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._beat < self.stale_after

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._blocks and self.alive


class MetricsServer:
    """HTTP endpoint: ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``."""

    def __init__(self, metrics: ServiceMetrics, health: Health, *, host: str = "0.0.0.0",
                 port: int = 0) -> None:
        registry, state = metrics.registry, health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = state.alive
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stale\n")
                elif self.path == "/readyz":
                    ok = state.ready
                    self._send(200 if ok else 503, f"{state.detail}\n".encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep the service logs clean
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="metrics-http")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
