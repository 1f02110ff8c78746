"""Publishing to Kafka: every message acknowledged, or the undelivered ones named.

One confluent-kafka producer per publisher, set up for durability without a flush per
message: ``acks=all`` and the idempotent producer (a retried batch is not written twice and
per-partition order survives retries), batch compression (zstd by default) and a short
linger so messages travel in batches. :meth:`AlertPublisher.publish` queues a whole batch,
then waits for every delivery report: it returns the (partition, offset) of each message, or
raises :class:`~alertbutler.alerts.DeliveryError` naming exactly the messages whose report
was an error or never came. Nothing is dropped silently, and a message reported delivered
was acknowledged by all in-sync replicas.

Messages are keyed by diaObjectId, so all alerts of one object land in one partition in the
order they were published.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from alertbutler.kafka.factory import make_producer
from alertbutler.kafka.outage import librdkafka_logger
from alertbutler.kafka.produce import Delivery, DeliveryError, Outgoing, produce_acknowledged

log = logging.getLogger(__name__)

#: Settings a publisher always uses; the caller's settings cannot weaken them.
REQUIRED_SETTINGS = {"acks": "all", "enable.idempotence": True}


class Message(NamedTuple):
    """One message to publish; ``ident`` names it in errors (a diaSourceId)."""

    key: bytes | None
    value: bytes
    ident: int
    partition: int | None = None


def alert_key(record: Mapping[str, Any]) -> bytes:
    """The message key of an alert: its diaObjectId (ssObjectId, then diaSourceId, when the
    detection has no object), as decimal text so every Kafka tool shows it."""
    source = record.get("diaSource") or {}
    for value in (source.get("diaObjectId"), source.get("ssObjectId"),
                  record.get("diaSourceId")):
        if value is not None:
            return str(value).encode()
    raise ValueError("alert has no diaObjectId, ssObjectId or diaSourceId to key it by")


class AlertPublisher:
    """A durable, batching producer (see the module doc). Thread-compatible, not thread-safe:
    use one per thread, or serialize calls to :meth:`publish`."""

    def __init__(self, bootstrap: str, *, settings: Mapping[str, Any] | None = None,
                 compression: str = "zstd", linger_ms: int = 5,
                 delivery_timeout_s: float = 120.0,
                 progress: Callable[[int], None] | None = None) -> None:
        self.bootstrap = bootstrap
        #: called with the number of messages acknowledged so far in the current publish
        #: (from the delivery-report thread of control: keep it quick)
        self.progress = progress
        self.delivery_timeout_s = delivery_timeout_s
        self._settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "linger.ms": linger_ms,
            "message.timeout.ms": int(delivery_timeout_s * 1000),
            "message.max.bytes": 10 * 1024 * 1024,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
            "batch.size": 4 * 1024 * 1024,
            # connection failures are reported once per outage by the service's BrokerWatch
            "logger": librdkafka_logger("alertbutler.alerts.librdkafka"),
            **(settings or {}),
            **REQUIRED_SETTINGS,
        }
        self._producer: Producer | None = None
        self._fatal: KafkaError | None = None
        self._partitions: dict[str, int] = {}
        #: a producer lent by a caller for a block (:meth:`using`): its open transaction
        self._lent: Producer | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """The producer's librdkafka settings (a copy), e.g. to measure the broker's ceiling
        with exactly this publisher's batching and compression."""
        return dict(self._settings)

    @contextlib.contextmanager
    def using(self, producer: Producer) -> Iterator[None]:
        """Publish through ``producer`` inside the block: a caller's transactional producer
        whose open transaction must hold the alerts with everything else of its unit of
        work (a prompt worker's item). The caller owns it: a failure here is raised, never
        answered with a new producer (that would leave the transaction)."""
        self._lent = producer
        try:
            yield
        finally:
            self._lent = None

    @property
    def producer(self) -> Producer:
        """The producer; replaced when the previous one hit a fatal error (an idempotent
        producer fenced after a broker outage cannot produce again)."""
        if self._lent is not None:
            return self._lent
        if self._fatal is not None and self._producer is not None:
            log.warning("replacing a producer that hit a fatal error: %s", self._fatal)
            self._producer = None
        if self._producer is None:
            self._fatal = None
            self._producer = make_producer(self._settings, error_cb=self._on_error)
        return self._producer

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        elif err.code() != KafkaError._TRANSPORT and err.code() != KafkaError._ALL_BROKERS_DOWN:
            log.debug("producer error: %s", err)

    def partitions(self, topic: str, *, timeout: float = 10.0) -> int:
        """Number of partitions of ``topic`` (from metadata; cached)."""
        if topic not in self._partitions:
            try:
                meta = self.producer.list_topics(topic, timeout=timeout)
            except KafkaException as exc:
                raise DeliveryError(f"no metadata for topic {topic!r}: {exc}",
                                    undelivered=(), retriable=True) from None
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise DeliveryError(f"topic {topic!r} is not available: "
                                    f"{info.error if info else 'no metadata'}",
                                    undelivered=(), retriable=True)
            self._partitions[topic] = len(info.partitions)
        return self._partitions[topic]

    def publish(self, topic: str, messages: Sequence[Message], *,
                timeout: float | None = None) -> list[Delivery]:
        """Publish ``messages`` in order and wait until every one is acknowledged.

        Returns one :class:`Delivery` per message, in input order. Raises
        :class:`DeliveryError` (``undelivered`` = the idents of the messages not
        acknowledged, in input order) when any delivery failed or did not report within
        ``timeout`` (default: the producer's delivery timeout plus a margin).
        """
        try:
            return self._publish_named(topic, messages, timeout)
        except DeliveryError as exc:
            # A producer that was already fenced refuses everything and writes nothing:
            # publishing the whole batch again with a fresh producer keeps per-key order.
            if exc.delivered == 0 and self._fatal is not None and self._lent is None:
                log.warning("retrying %d messages with a new producer after: %s",
                            len(messages), self._fatal)
                return self._publish_named(topic, messages, timeout)
            raise

    def _publish_named(self, topic: str, messages: Sequence[Message],
                       timeout: float | None) -> list[Delivery]:
        """:meth:`_publish`, a refusal by a secured broker (these credentials may not write
        here) raised as :class:`~alertbutler.kafka.KafkaAccessError` naming its cause: no
        retry or new producer can help."""
        from alertbutler.kafka import access_error, is_refusal

        try:
            return self._publish(topic, messages, timeout)
        except KafkaException as exc:
            if is_refusal(exc):
                raise access_error(exc, settings=self._settings,
                                   doing=f"publishing to topic {topic!r}") from None
            raise

    def _publish(self, topic: str, messages: Sequence[Message],
                 timeout: float | None) -> list[Delivery]:
        outgoing = [Outgoing(topic, m.value, m.key, m.partition, ident=m.ident)
                    for m in messages]
        try:
            return produce_acknowledged(
                self.producer, outgoing, progress=self.progress,
                timeout=timeout if timeout is not None else self.delivery_timeout_s + 30.0)
        except DeliveryError as exc:  # a fatal error: start afresh next time
            for err in exc.errors:
                self._reset_if_fatal(err)
            raise

    def _reset_if_fatal(self, err: KafkaError) -> None:
        if self._lent is not None:  # the lender's to replace
            return
        if err.fatal() or err.code() == KafkaError.PRODUCER_FENCED:
            self._fatal = err

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``) and drop the producer."""
        if self._producer is not None:
            self._producer.flush(timeout)
            self._producer = None

    def __enter__(self) -> AlertPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
