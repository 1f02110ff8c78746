"""Exactly-once work items: one Kafka transaction per item, with its consumed offset.

Without transactions a worker publishes an item's alerts and only then commits the item's
offset, so anything between the two (a SIGKILL, a broker restart that loses the commit or
the group membership, a delivery reported as failed although the broker wrote it) has the
item processed again and its alerts published twice: identical copies, but copies.

On a broker whose probe (:func:`alertbutler.kafka.transaction_support`) shows real
transactions, the worker instead opens one transaction per item and puts in it everything the
item sends (alerts, end-of-visit-detector markers, status, dead letter) and the item's offset
(``send_offsets_to_transaction`` with the consumer's group metadata): the alerts reach a
``read_committed`` reader if and only if the offset moved past the item. A failed or killed
attempt's transaction is aborted, and the item is processed again from its offset.

The transactional id is one per *work partition* (``<worker group>-<partition>``), not per process:
when a worker dies, whichever member the group gives its partition to starts transactions
under the same id, which fences the dead one and aborts its open transaction at once (rather
than after ``transaction.timeout.ms``, during which every ``read_committed`` reader of the
alert partitions it wrote would be held back). A producer is made for a partition when the
worker first handles one of its items there, and dropped when the partition is revoked.

librdkafka's ``send_offsets_to_transaction`` may block past its timeout after a broker
restart (a stale group coordinator; librdkafka issues 5456, 5511): it runs bounded
(:func:`alertbutler.kafka.transactions.bounded_call`), and a producer stuck in it is set
aside (kept alive, never used again) and fenced by the partition's next producer.

A commit whose answer was lost (the broker went away mid-commit) leaves the outcome in doubt.
The partition's producer is dropped; the next producer under the same id completes or aborts
the transaction at the coordinator when it starts, after which the group's committed offset
tells which it was: past the item (committed: skip it) or not (aborted: process it again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from alertbutler.config import Config
from alertbutler.kafka import group_id
from alertbutler.kafka.message import placed
from alertbutler.kafka.transactions import CallStuck, bounded_call
from alertbutler.prompt.kafka_io import make_producer

log = logging.getLogger(__name__)

#: the producer settings of alert batches (large messages, deep queues), as the publisher's
ALERT_BATCHING = {"message.max.bytes": 10 * 1024 * 1024,
                  "queue.buffering.max.messages": 500_000,
                  "queue.buffering.max.kbytes": 1024 * 1024,
                  "batch.size": 4 * 1024 * 1024}
#: how long one transactional call may wait for the broker before it counts as an outage
CALL_TIMEOUT_S = 30.0
#: retries of a commit that failed with an error librdkafka calls retriable
COMMIT_TRIES = 3


class WorkTransactions:
    """The transactional producers of one worker, one per work partition (see module doc).

    Used from the worker's poll thread only; at most one transaction is open at a time.
    """

    def __init__(self, config: Config, bootstrap: str, group: str, *,
                 transaction_timeout_s: float) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.group = group
        #: a transaction older than this is aborted by the broker (a hung worker)
        self.transaction_timeout_ms = int(min(900.0, max(60.0, transaction_timeout_s)) * 1000)
        self._producers: dict[tuple[str, int], Producer] = {}
        self._open: tuple[str, int] | None = None
        self._doubt: set[tuple[str, int]] = set()
        #: producers left inside a call that never returned: kept so they are not destroyed
        #: under it (see :func:`bounded_call`)
        self._stuck: list[Producer] = []

    def transactional_id(self, topic: str, partition: int) -> str:
        """Stable for the partition, so its next owner fences the last one."""
        return group_id(self.config, f"{self.group}-{partition}")

    def _producer(self, tp: tuple[str, int]) -> Producer:
        producer = self._producers.get(tp)
        if producer is None:
            txn_id = self.transactional_id(*tp)
            producer = make_producer(self.config, self.bootstrap, **{
                **ALERT_BATCHING, "transactional.id": txn_id,
                "transaction.timeout.ms": self.transaction_timeout_ms})
            # ends (commits or aborts) whatever a predecessor under this id left open
            producer.init_transactions(CALL_TIMEOUT_S)
            self._producers[tp] = producer
            log.info("transactional producer started", extra={"transactional_id": txn_id})
        return producer

    def begin(self, consumer: Consumer, msg: Message) -> Producer | None:
        """Open the transaction of the item at ``msg`` and return its producer; None when a
        transaction in doubt turned out to have committed the item (the consumer was moved
        past it). Raises KafkaException when the broker cannot be reached."""
        topic, partition, offset = placed(msg)
        tp = (topic, partition)
        self.abort()  # none should be open; never begin inside a stale one
        producer = self._producer(tp)
        if tp in self._doubt:
            committed = consumer.committed([TopicPartition(topic, partition)],
                                           timeout=CALL_TIMEOUT_S)[0].offset
            self._doubt.discard(tp)
            if committed > offset:
                log.info("the transaction in doubt had committed the item: not processed "
                         "again", extra={"partition": partition, "offset": offset})
                consumer.seek(TopicPartition(topic, partition, committed))
                return None
        producer.begin_transaction()
        self._open = tp
        return producer

    def commit(self, consumer: Consumer, msg: Message) -> None:
        """Add the item's offset to its transaction and commit it. On an error the
        transaction is aborted (or, its outcome unknown, left for the partition's next
        producer to settle) and KafkaException raised: process the item again."""
        topic, partition, offset = placed(msg)
        tp = (topic, partition)
        producer = self._producers[tp]
        try:
            bounded_call(producer.send_offsets_to_transaction,
                         [TopicPartition(topic, partition, offset + 1)],
                         consumer.consumer_group_metadata(), CALL_TIMEOUT_S,
                         timeout=CALL_TIMEOUT_S + 5.0)
            for attempt in range(1, COMMIT_TRIES + 1):
                try:
                    producer.commit_transaction(CALL_TIMEOUT_S)
                    break
                except KafkaException as exc:
                    err = exc.args[0]
                    if not err.retriable() or attempt == COMMIT_TRIES:
                        raise
            self._open = None
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(exc, CallStuck):  # never committed; the next producer aborts it
                log.warning("transactional producer stuck in send_offsets_to_transaction: "
                            "set aside, its transaction aborted by the next one",
                            extra={"partition": partition, "offset": offset})
                self._stuck.append(self._producers.pop(tp))
                self._open = None
                self._doubt.add(tp)
            elif err.txn_requires_abort():
                self.abort()
            else:  # committed or not: the partition's next producer will settle it
                log.warning("transaction outcome in doubt: settled before the partition's "
                            "next item", extra={"partition": partition, "offset": offset,
                                                "error": err.str()})
                self._doubt.add(tp)
                self._drop(tp)
            raise

    def abort(self) -> None:
        """Abort the open transaction, if any; a producer that cannot (fenced, or the broker
        away) is dropped, and its successor's start aborts the transaction instead."""
        tp, self._open = self._open, None
        if tp is None or tp not in self._producers:
            return
        try:
            self._producers[tp].abort_transaction(CALL_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("transaction not aborted here: its partition's next producer will",
                        extra={"partition": tp[1], "error": exc.args[0].str()})
            self._drop(tp)

    def revoke(self, partitions: Iterable[Any]) -> None:
        """Drop the producers of partitions another member now owns (it fences them)."""
        for p in partitions:
            tp = (p.topic, p.partition)
            self._doubt.discard(tp)
            if self._open == tp:
                self.abort()
            self._drop(tp)

    def _drop(self, tp: tuple[str, int]) -> None:
        if self._open == tp:
            self._open = None
        producer = self._producers.pop(tp, None)
        if producer is not None:
            producer.flush(0)  # nothing to deliver outside a transaction; do not wait

    def close(self) -> None:
        self.abort()
        for tp in list(self._producers):
            self._drop(tp)
