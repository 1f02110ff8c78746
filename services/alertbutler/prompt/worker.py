"""The worker service: one member of the consumer group on the work topic.

It takes one work item at a time, hands it to a processor (the science, in
:mod:`alertbutler.prompt.pipeline`), publishes the item's status, and only then commits the
item's offset. A worker killed at any point therefore loses nothing: the group gives the
item's partition to another worker, which processes it again and, ids being deterministic,
publishes the same alerts (the ingester absorbs the duplicates).

Policy on failures: a ``VisitDetectorError`` (bad input) is the processor's to record, and the
item is committed. Any other exception is not the input's fault: the item is retried from the
same offset. Every start of an item is first counted in the L1 database's ``work_attempt``
ledger (:mod:`alertbutler.l1db.attempts`), so the count survives a worker that dies on the
item (SIGKILL, out of memory, the deadline watchdog): once an item has been started
``max_attempts`` times without a result it goes to the dead-letter topic with its reason,
its visit-detector is closed, and the partition moves on. A bug cannot stall a night.

A commit refused because the partition moved to another member during a rebalance is not
an error (:func:`~alertbutler.prompt.kafka_io.commit_past`): the item's effects are
idempotent and the new owner processes it again.

Delivery of the alerts to the topic, probed from the broker at start: where it has real
transactions (Apache Kafka), each item is one transaction holding its alerts, markers, status
and offset (:mod:`alertbutler.prompt.transactions`), so a ``read_committed`` reader sees every
alert exactly once whatever crashes or outages happen; elsewhere (the embedded broker) an item
processed again publishes its alerts again, identical copies (at least once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from confluent_kafka import (
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from alertbutler import errors
from alertbutler.config import Config
from alertbutler.faults import crash_point
from alertbutler.kafka import (
    Outgoing,
    dead_letter_of,
    produce_acknowledged,
    transaction_support,
)
from alertbutler.kafka.message import placed
from alertbutler.l1db import L1db
from alertbutler.l1db.attempts import Attempt, WorkAttempts
from alertbutler.metrics import Health, ServiceMetrics
from alertbutler.prompt.errors import BadEventError
from alertbutler.prompt.events import WorkItem, decode_work_item
from alertbutler.prompt.kafka_io import (
    broker_watch,
    commit_past,
    make_consumer,
    make_producer,
    serve,
)
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.prompt.transactions import WorkTransactions
from alertbutler.visit_detector import VisitDetector

log = logging.getLogger(__name__)

def worker_group(config: Config) -> str:
    """One group per work topic: workers of different pipelines never rebalance together."""
    return f"alertbutler-prompt-{config.kafka.work_topic}"


class Processor(Protocol):
    """Turns one work item into published alerts and reports what happened.

    It may also have ``ready(item) -> bool``: False while the earlier overlapping
    visit-detectors the item depends on are not in the L1 database (the worker then takes
    other items first; see ``Worker._defer``).

    It may also have ``publishing_through(producer)``, a context manager inside which it
    publishes with ``producer`` (the worker's transactional producer, transaction open).
    """

    def process(self, item: WorkItem) -> VisitDetectorStatus: ...

    def abandon(self, item: WorkItem) -> None:
        """Close a visit-detector given up on, so nothing waits for it (best effort)."""
        ...


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker or a database failed (a failover, a restart, a full
    connection pool) rather than anything about the item being processed: the error's
    ``outage`` trait (:mod:`alertbutler.errors`)."""
    return errors.is_outage(exc)


def _bounded(call: Callable[..., object], *args: object, timeout_s: float = 5.0) -> None:
    """Best effort, within ``timeout_s``: the hang may be in the database itself."""
    thread = threading.Thread(target=call, args=args, daemon=True)
    thread.start()
    thread.join(timeout_s)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Consume work items, process each, publish its status, then commit it."""

    def __init__(self, config: Config, bootstrap: str, processor: Processor, *,
                 group: str | None = None, max_attempts: int | None = None,
                 attempts: WorkAttempts | None = None,
                 metrics: ServiceMetrics | None = None, health: Health | None = None,
                 transactions: bool | None = None) -> None:
        self.config = config
        #: one Kafka transaction per item (None: as the broker's probe says)
        self.use_transactions = transactions
        #: the transactional producers, while running with transactions
        self.transactions: WorkTransactions | None = None
        self.bootstrap = bootstrap
        self.processor = processor
        self.group = group or worker_group(config)
        self.max_attempts = max_attempts or config.prompt.max_attempts
        self.name = worker_name()
        self.items_done = 0
        self.ledger = attempts or WorkAttempts(L1db(config.l1db_url))
        self.assigned = threading.Event()
        self.metrics = metrics
        self.health = health
        #: the attempt in flight and its start (monotonic), for the watchdog
        self._current: tuple[Attempt, float] | None = None
        #: consecutive infrastructure failures, for the back-off
        self._outages = 0
        #: items put back because they were not ready: (partition, offset) -> first time
        self._deferred: dict[tuple[int, int], float] = {}
        #: partitions paused behind such an item: (topic, partition) -> when to resume
        self._paused: dict[tuple[str, int], float] = {}

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None,
            max_items: int | None = None) -> int:
        """Serve until ``stop`` is set, ``max_items`` are done, or idle too long."""
        deadline_s = self.config.prompt.item_deadline_s
        consumer = make_consumer(self.config, self.bootstrap, self.group, **{
            "max.poll.interval.ms": int(max(deadline_s, 10.0) * 1000)})
        producer = make_producer(self.config, self.bootstrap)
        if self.use_transactions is None:
            support = transaction_support(self.bootstrap, settings=self.config.kafka.client)
            self.use_transactions = support.available
            if not support.available:
                log.warning("alerts reach the topic at least once (an item processed again "
                            "publishes identical copies): %s", support.reason)
        if self.use_transactions:
            self.transactions = WorkTransactions(self.config, self.bootstrap, self.group,
                                                 transaction_timeout_s=deadline_s)
            log.info("alerts reach the topic exactly once: one Kafka transaction per item")
        watch = broker_watch(self.config, self.bootstrap, "worker", self.metrics,
                             self.health).start()
        consumer.subscribe([self.config.kafka.work_topic], on_assign=self._on_assign,
                           on_revoke=self._on_revoke, on_lost=self._on_revoke)
        watchdog = threading.Thread(target=self._watchdog, args=(stop, deadline_s),
                                    name="item-deadline", daemon=True)
        watchdog.start()
        log.info("worker started", extra={  # with the policy it runs by: whose config it got
            "worker": self.name, "group": self.group, "max_attempts": self.max_attempts,
            "item_deadline_s": deadline_s, "compression": self.config.kafka.compression})
        try:
            for msg in serve(consumer, stop, assigned=self.assigned, idle_exit_s=idle_exit_s,
                             health=self.health, metrics=self.metrics,
                             done=lambda: max_items is not None
                             and self.items_done >= max_items,
                             each_turn=lambda: self._resume_due(consumer)):
                self._handle(msg, consumer, producer)
        finally:
            if self.transactions is not None:
                self.transactions.close()
            consumer.close()
            producer.flush(10 if watch.up else 0)
            watch.stop()
        return self.items_done

    def _watchdog(self, stop: threading.Event, deadline_s: float) -> None:
        """End the process when one item runs past the deadline: a hung item must not hold
        its partition; the group redelivers it to a healthy member (nothing was committed).

        Runs until the worker is stopped *and* idle. A stop that finds an item in flight
        takes its attempt back at once: whether the item still finishes or the process is
        killed when its grace runs out, the stop says nothing about the item.
        """
        released: Attempt | None = None
        while True:
            time.sleep(1.0)
            current = self._current
            if current is None:
                if stop.is_set():
                    return
                continue
            attempt, started = current
            if stop.is_set() and released is not attempt:
                released = attempt
                _bounded(self.ledger.release, attempt)
            if time.monotonic() - started > deadline_s:
                log.critical("work item past its deadline: exiting so that another worker "
                             "takes it", extra={"item": attempt.item.label,
                                                "deadline_s": deadline_s})
                _bounded(self.ledger.failed, attempt,
                         f"passed its deadline of {deadline_s:g} s on {self.name}")
                logging.shutdown()
                os._exit(70)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._paused.clear()  # a new assignment starts unpaused
        self._deferred.clear()
        self.assigned.set()
        if self.health is not None:
            self.health.set_ready(True, f"{len(partitions)} work partitions assigned")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.transactions is not None:
            self.transactions.revoke(partitions)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.work_items.labels(self.metrics.service, outcome).inc()

    def _defer(self, consumer: Consumer, msg: Message, item: WorkItem) -> bool:
        """Put back an item whose earlier overlapping visit-detectors are not in the L1
        database yet, pausing its partition briefly, and take other partitions' items
        meanwhile: when a backlog (a speed-0 replay, a restart after an outage) hands one
        worker a later visit before the earlier one it depends on, waiting would stall the
        worker on work queued behind it, and associate without it after the timeout. Bounded
        by ``prompt.association_wait_s``; then the item is processed as it is (the pipeline
        waits, and reports what was missing)."""
        ready = getattr(self.processor, "ready", None)
        topic, partition, offset = placed(msg)
        where = (partition, offset)
        if ready is None or ready(item):
            self._deferred.pop(where, None)
            return False
        first = self._deferred.setdefault(where, time.monotonic())
        if time.monotonic() - first > self.config.prompt.association_wait_s:
            self._deferred.pop(where, None)
            return False
        tp = TopicPartition(topic, partition, offset)
        try:
            consumer.pause([tp])
            consumer.seek(tp)  # the fetched messages after it are dropped, fetched again later
        except KafkaException:  # revoked meanwhile: its new owner takes it
            return True
        self._paused[(topic, partition)] = time.monotonic() + 0.5
        log.debug("work item not ready: put back", extra={"item": item.label})
        return True

    def _resume_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        due = [tp for tp, at in self._paused.items() if at <= now]
        for tp in due:
            del self._paused[tp]
        if due:
            with contextlib.suppress(KafkaException):  # revoked meanwhile
                consumer.resume([TopicPartition(t, p) for t, p in due])

    def _handle(self, msg: Message, consumer: Consumer, producer: Producer) -> None:
        kafka = self.config.kafka
        if (msg.topic(), msg.partition()) in self._paused:
            return  # fetched before its partition was put back: it comes again on resume
        try:
            item = decode_work_item(msg.value())
            key = item.visit_detector
            if key is None:
                raise BadEventError(f"work item {item.label} has no visit id: its attempts "
                                    "are counted by instrument, visit and detector")
        except BadEventError as exc:
            log.error("undecodable work item", extra={"offset": msg.offset(), "error": str(exc)})
            out = self._begin(consumer, msg, producer)
            if out is None:
                return
            produce_acknowledged(out, [dead_letter_of(
                msg, kafka.dead_letter_topic, reason=str(exc), error=type(exc).__name__,
                service="alertbutler-worker")])
            if self._commit(consumer, msg):
                self._count("undecodable")
            return
        if self._defer(consumer, msg, item):
            return
        out = self._begin(consumer, msg, producer)
        if out is None:
            return
        with self._publishing(out):
            self._process(item, key, msg, consumer, out)

    def _begin(self, consumer: Consumer, msg: Message, producer: Producer) -> Producer | None:
        """The producer for the item at ``msg``: the plain one, or, with transactions, the
        partition's transactional one with the item's transaction open. None when there is
        nothing to do now (the broker is away: handed back; or a transaction in doubt had
        committed the item)."""
        if self.transactions is None:
            return producer
        try:
            return self.transactions.begin(consumer, msg)
        except KafkaException as exc:
            self._outage(consumer, msg, None, exc)
            return None

    def _publishing(self, producer: Producer) -> contextlib.AbstractContextManager[object]:
        """With transactions, the processor publishes inside the item's transaction."""
        through = getattr(self.processor, "publishing_through", None)
        if self.transactions is None or through is None:
            return contextlib.nullcontext()
        return through(producer)

    def _commit(self, consumer: Consumer, msg: Message) -> bool:
        """Commit past the item: the offset alone, or the item's transaction with it. False
        when the transaction failed (the item was handed back to be processed again)."""
        if self.transactions is None:
            commit_past(consumer, msg)
            return True
        try:
            self.transactions.commit(consumer, msg)
        except KafkaException as exc:
            self._outage(consumer, msg, None, exc)
            return False
        return True

    def _process(self, item: WorkItem, key: VisitDetector, msg: Message, consumer: Consumer,
                 producer: Producer) -> None:
        try:
            attempt = self.ledger.begin(key, self.name)
        except sa.exc.DBAPIError as exc:
            self._outage(consumer, msg, None, exc)
            return
        log.info("work item started", extra={
            "worker": self.name, "visit": item.visit, "detector": item.detector,
            "partition": msg.partition(), "offset": msg.offset(), "attempt": attempt.number})
        if attempt.number > self.max_attempts:
            status = self._give_up(item, msg, producer, attempt.give_up_reason(), None)
        else:
            self._current = (attempt, time.monotonic())
            try:
                status = self.processor.process(item)
            except Exception as exc:
                self._current = None
                if is_outage(exc):
                    self._outage(consumer, msg, attempt, exc)
                    return
                # not the input's fault (that is a VisitDetectorError, recorded in the
                # status), nor the infrastructure's: retry, then give up loudly
                reason = f"{type(exc).__name__}: {exc}"
                try:
                    self.ledger.failed(attempt, reason)
                except sa.exc.DBAPIError as db_exc:  # the database is down as well
                    self._outage(consumer, msg, attempt, db_exc)
                    return
                log.error("work item failed", exc_info=True, extra={
                    "item": item.label, "attempt": attempt.number, "error": str(exc)})
                if self.metrics is not None:
                    self.metrics.errors.labels(self.metrics.service, type(exc).__name__).inc()
                if attempt.number < self.max_attempts:
                    self._rewind(consumer, msg, min(5.0, 0.5 * 2**attempt.number))
                    return
                status = self._give_up(
                    item, msg, producer,
                    f"gave up after {attempt.number} attempts; last error: {reason}",
                    traceback.format_exc()[-2000:])
            self._current = None
        try:
            produce_acknowledged(producer, [Outgoing(self.config.prompt.status_topic,
                                                     status.to_json(), status.key)])
            self.ledger.finished(attempt)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._outage(consumer, msg, attempt, exc)
            return
        crash_point("prompt.before-commit")
        if not self._commit(consumer, msg):
            return
        self._outages = 0
        self.items_done += 1
        self._count("ok" if status.ok else status.reason)
        if self.metrics is not None and status.ok:
            self.metrics.alerts_published.labels(self.metrics.service).inc(status.n_alerts)
            for stage, seconds in status.stages.items():
                self.metrics.stage_seconds.labels(self.metrics.service, stage).observe(seconds)
            if status.raw_arrived_at and status.alerts_acked_at:
                self.metrics.alert_latency_seconds.labels(self.metrics.service).observe(
                    status.alerts_acked_at - status.raw_arrived_at)

    def _rewind(self, consumer: Consumer, msg: Message, delay_s: float) -> None:
        """Process the item again from its offset, after ``delay_s`` (its transaction, if
        one is open, aborted: nothing it sent becomes visible)."""
        if self.transactions is not None:
            self.transactions.abort()
        try:
            consumer.seek(TopicPartition(*placed(msg)))
        except KafkaException as exc:  # revoked meanwhile: its new owner retries it
            log.warning("could not rewind to a failed item (partition revoked?)",
                        extra={"partition": msg.partition(), "error": str(exc)})
            return
        time.sleep(delay_s)

    def _outage(self, consumer: Consumer, msg: Message, attempt: Attempt | None,
                exc: BaseException) -> None:
        """The broker or a database failed, not the item: hand the item back without
        counting the attempt, and try again after a back-off that grows while it lasts (a
        failover must not dead-letter every item in flight)."""
        self._outages += 1
        delay = min(60.0, 2.0 ** min(self._outages, 6))
        log.error("infrastructure error: the work item is handed back and retried, not "
                  "counted as an attempt", exc_info=exc, extra={
                      "partition": msg.partition(), "offset": msg.offset(),
                      "error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay})
        if self.metrics is not None:
            self.metrics.errors.labels(self.metrics.service, "infrastructure").inc()
        if attempt is not None:
            try:
                self.ledger.release(attempt)
            except sa.exc.DBAPIError:  # the database may be what failed
                log.warning("could not take the attempt back", extra={"item": attempt.item.label})
        self._rewind(consumer, msg, delay)

    def _give_up(self, item: WorkItem, msg: Message, producer: Producer, reason: str,
                 trace: str | None) -> VisitDetectorStatus:
        """Dead-letter the item with its reason and close its visit-detector."""
        log.error("work item dead-lettered", extra={"item": item.label, "reason": reason})
        try:
            self.processor.abandon(item)
        except Exception:  # already failing: say so, keep the dead letter going
            log.exception("could not close the abandoned visit-detector",
                          extra={"item": item.label})
        produce_acknowledged(producer, [dead_letter_of(
            msg, self.config.kafka.dead_letter_topic, reason=reason, error="gave-up",
            service="alertbutler-worker", traceback=trace or None)])
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(self.metrics.service, "gave-up").inc()
        return VisitDetectorStatus(
            instrument=item.instrument, group_id=item.group_id, visit=item.visit,
            detector=item.detector, ok=False, reason="failed",
            message=f"{item.label}: {reason}", worker=self.name, finished_at=time.time())
