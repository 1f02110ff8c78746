"""Kafka plumbing of the prompt services: acknowledged produces and manual-commit consumers.

Both services commit a consumed offset only after everything it caused was acknowledged, so
their producers are idempotent with ``acks=all`` and they produce with
:func:`~alertbutler.kafka.produce_acknowledged`, which waits for every delivery report and
raises naming what was not delivered. Consumers never auto-commit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from alertbutler.config import Config
from alertbutler.kafka import confluent_settings, factory
from alertbutler.kafka.outage import BrokerWatch, quiet_confluent
from alertbutler.metrics import Health, ServiceMetrics

log = logging.getLogger(__name__)


def broker_watch(config: Config, bootstrap: str, service: str,
                 metrics: ServiceMetrics | None, health: Health | None) -> BrokerWatch:
    """The service's :class:`BrokerWatch` (start it): one line per outage, readiness off."""
    return BrokerWatch(confluent_settings(config, bootstrap),
                       service=metrics.service if metrics is not None else service,
                       metrics=metrics, health=health)


def make_producer(config: Config, bootstrap: str, **extra: Any) -> Producer:
    """The configuration's producer (:mod:`alertbutler.kafka.factory`), quiet on outages."""
    return factory.make_producer(config, bootstrap, **{**quiet_confluent("producer"), **extra})


def make_consumer(config: Config, bootstrap: str, name: str, **extra: Any) -> Consumer:
    """The configuration's manual-commit group member, quiet on outages."""
    return factory.make_consumer(config, bootstrap, name,
                                 **{**quiet_confluent(f"consumer {name}"), **extra})


def commit_past(consumer: Consumer, msg: Message) -> bool:
    """Commit past ``msg``. A commit refused because a rebalance moved the partition is
    logged, not raised: the new owner processes the message again, and everything the
    services do per message is idempotent. False when refused."""
    try:
        consumer.commit(message=msg, asynchronous=False)
        return True
    except KafkaException as exc:
        log.warning("commit refused (partition moved in a rebalance?): its new owner will "
                    "process the message again", extra={
                        "topic": msg.topic(), "partition": msg.partition(),
                        "offset": msg.offset(), "error": str(exc)})
        return False


def report_lag(consumer: Consumer, metrics: ServiceMetrics,
               reported: set[tuple[str, int]]) -> None:
    """Set the consumer-lag gauge of each assigned partition from the high watermarks that
    fetch responses carry (never ListOffsets, wrong on the embedded broker), and drop the
    gauges of partitions no longer assigned (``reported``: those set last time), so that a
    rebalance leaves no stale lag behind."""
    try:
        positions = consumer.position(consumer.assignment())
    except KafkaException:  # during a rebalance: the next turn will do
        return
    current = set()
    for tp in positions:
        current.add((tp.topic, tp.partition))
        _, high = consumer.get_watermark_offsets(tp, cached=True)
        if high >= 0 and tp.offset >= 0:
            metrics.consumer_lag.labels(metrics.service, tp.topic,
                                        str(tp.partition)).set(high - tp.offset)
    for topic, partition in reported - current:
        with contextlib.suppress(KeyError):
            metrics.consumer_lag.remove(metrics.service, topic, str(partition))
    reported.clear()
    reported.update(current)


def serve(consumer: Consumer, stop: threading.Event, *, assigned: threading.Event,
          idle_exit_s: float | None = None, health: Health | None = None,
          metrics: ServiceMetrics | None = None,
          done: Callable[[], bool] = lambda: False,
          each_turn: Callable[[], None] = lambda: None) -> Iterator[Message]:
    """The poll loop of the prompt services: yield each message to handle.

    Beats ``health`` and calls ``each_turn`` every turn, reports lag every 2 s; ends when
    ``stop`` is set, ``done()`` says so, or nothing came for ``idle_exit_s`` (counted from
    the group join, and from the end of the last message's handling: a long item is not
    idleness).
    """
    last = last_lag = time.monotonic()
    reported: set[tuple[str, int]] = set()
    while not stop.is_set() and not done():
        each_turn()
        msg = consumer.poll(0.5)
        if health is not None:
            health.beat()
        if metrics is not None and time.monotonic() - last_lag > 2.0:
            last_lag = time.monotonic()
            report_lag(consumer, metrics, reported)
        if msg is None:
            if not assigned.is_set():
                last = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - last > idle_exit_s:
                return
            continue
        err = msg.error()
        if err:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(err)})
            continue
        yield msg
        last = time.monotonic()
