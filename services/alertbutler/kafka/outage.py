"""Broker outages as a service sees them: one log line when the broker goes, one when it is back.

Kafka clients retry a lost broker by themselves, and say so on every attempt (librdkafka and
aiokafka each log a connection error every few tens of milliseconds): an outage used to be a
flood of such lines while ``/readyz`` stayed green. :class:`BrokerWatch` asks the broker for
its metadata every ```interval`` seconds from a thread of its own (a log-silent confluent
AdminClient, so it works the same under either client library and with the deployment's
security settings) and, on each change of state only:

- logs one ERROR line when the broker stops answering (two probes in a row) and one INFO line
  when it is back;
- sets ``alertbutler_kafka_up`` to 0 or 1, counts ``alertbutler_kafka_outages_total`` and
  grows ``alertbutler_kafka_outage_seconds_total`` while the outage lasts;
- blocks the service's readiness (``/readyz`` answers 503 naming the outage) until it ends.

The clients' own connectivity lines are silenced (:func:`quiet_confluent`,
:func:`quiet_aiokafka`); every other client error is still logged, once per distinct text.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaError, KafkaException

from alertbutler.kafka.factory import make_admin
from alertbutler.metrics import Health, ServiceMetrics

log = logging.getLogger(__name__)

#: librdkafka error codes that say "the broker cannot be reached", reported by the watch.
_CONNECTIVITY = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                 KafkaError._TIMED_OUT}
#: Fragments of aiokafka's log lines about a broker it cannot reach.
_AIOKAFKA_CONNECTIVITY = ("Unable connect to node", "Unable to update metadata",
                          "KafkaConnectionError", "NodeNotReadyError", "Connect call failed",
                          "GroupCoordinatorNotAvailable", "Unable to request metadata")
_BLOCK = "kafka"


class BrokerWatch:
    """Probe the broker every ``interval`` seconds; report outages once (see the module doc).

    ``settings``: confluent-kafka settings naming the broker (bootstrap and security).
    Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(self, settings: dict[str, object], *, service: str,
                 metrics: ServiceMetrics | None = None, health: Health | None = None,
                 interval: float = 1.0, timeout: float = 2.0) -> None:
        self.service = service
        self.metrics = metrics
        self.health = health
        self.interval = interval
        self.timeout = timeout
        keep = {k: v for k, v in settings.items()
                if k not in ("group.id", "error_cb", "logger", "log_level")}
        self._admin_settings = {**keep, "log_level": 0, "reconnect.backoff.ms": 100,
                                "reconnect.backoff.max.ms": 1000}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.up = True
        self.outages = 0
        self._down_since: float | None = None
        self._last_tick = time.monotonic()

    def start(self) -> BrokerWatch:
        self._thread = threading.Thread(target=self._run, name=f"{self.service}-broker-watch",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # a probe in flight ends by its own timeout; the thread is a daemon
            self._thread.join(0.5)
            self._thread = None

    def __enter__(self) -> BrokerWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        admin = make_admin(self._admin_settings)
        failed = 0
        while not self._stop.is_set():
            try:
                admin.list_topics(timeout=self.timeout)
            except KafkaException as exc:
                failed += 1
                if failed >= 2:  # one slow answer on a loaded machine is not an outage
                    self.lost(str(exc.args[0]) if exc.args else str(exc))
            else:
                failed = 0
                self.back()
            self._stop.wait(self.interval)

    def lost(self, reason: str) -> None:
        """The broker did not answer (the probe, or a client that saw it first)."""
        now = time.monotonic()
        if not self.up:
            if self.metrics is not None:
                self.metrics.kafka_outage_seconds.labels(self.service).inc(now - self._last_tick)
            self._last_tick = now
            return
        self.up, self._down_since, self._last_tick = False, now, now
        self.outages += 1
        log.error("Kafka broker unreachable: retrying until it is back (one line per "
                  "outage; readiness is off meanwhile)", extra={"service": self.service,
                                                                "reason": reason})
        if self.metrics is not None:
            self.metrics.kafka_up.labels(self.service).set(0)
            self.metrics.kafka_outages.labels(self.service).inc()
        if self.health is not None:
            self.health.block(_BLOCK, f"Kafka broker unreachable: {reason}")

    def back(self) -> None:
        """The broker answered."""
        if self.up:
            return
        now = time.monotonic()
        lasted = now - (self._down_since or now)
        if self.metrics is not None:
            self.metrics.kafka_outage_seconds.labels(self.service).inc(now - self._last_tick)
            self.metrics.kafka_up.labels(self.service).set(1)
        self.up, self._down_since = True, None
        log.info("Kafka broker reachable again", extra={"service": self.service,
                                                        "outage_s": round(lasted, 1)})
        if self.health is not None:
            self.health.unblock(_BLOCK)


class _Once:
    """Log each distinct client error once (connectivity errors: never, the watch says it)."""

    def __init__(self, client: str) -> None:
        self.client = client
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, err: KafkaError) -> None:
        if err.code() in _CONNECTIVITY:
            return
        text = err.str()
        with self._lock:
            if text in self._seen:
                return
            self._seen.add(text)
        log.error("Kafka client error", extra={"client": self.client, "error": text,
                                               "fatal": err.fatal()})


def quiet_confluent(client: str) -> dict[str, object]:
    """confluent-kafka settings that replace librdkafka's per-attempt connection-error lines
    by :class:`BrokerWatch`'s one line (other errors: logged once each)."""
    return {"log_level": 2, "error_cb": _Once(client)}


class _QuietAiokafka(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.ERROR:
            return True
        text = record.getMessage()
        return not any(fragment in text for fragment in _AIOKAFKA_CONNECTIVITY)


class _QuietLibrdkafka(logging.Filter):
    """librdkafka's connection lines (facility FAIL: refused, disconnected, resolve)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("FAIL") or "Connection refused" in text
                    or "Disconnected" in text)


_librdkafka_filter = _QuietLibrdkafka()


def librdkafka_logger(name: str) -> logging.Logger:
    """A logger for a confluent client's ``logger`` setting without the per-attempt
    connection lines (:class:`BrokerWatch` reports the outage once)."""
    logger = logging.getLogger(name)
    if _librdkafka_filter not in logger.filters:
        logger.addFilter(_librdkafka_filter)
    return logger


_AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster",
                     "aiokafka.consumer.consumer", "aiokafka.consumer.fetcher",
                     "aiokafka.consumer.group_coordinator", "aiokafka.producer.producer",
                     "aiokafka.producer.sender")
_aiokafka_filter = _QuietAiokafka()


def quiet_aiokafka() -> None:
    """Drop aiokafka's per-attempt connection-error lines (:class:`BrokerWatch` reports the
    outage once). Idempotent."""
    for name in _AIOKAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if _aiokafka_filter not in logger.filters:
            logger.addFilter(_aiokafka_filter)
