"""The ingester: an asyncio aiokafka consumer that fills the L1 database from alert topics.

It reads each alert topic and its control topic (``<topic>.control``), where the publishers
put the end-of-visit-detector markers; a marker read there names the alert offsets it waits
for, and the visit-detector completes once the offsets stored for those alert partitions have
passed them (:func:`alertbutler.l1db.L1db.store`). Markers inline on an alert topic (topics
written by earlier versions) are still understood.

Exactly-once effects without Kafka transactions (absent on the embedded broker):

1. A batch (up to ``max_batch_messages`` or ``max_batch_ms``) is sorted into rows, end markers
   and dead letters (:mod:`.batch`), in a worker thread.
2. Dead letters are produced and acknowledged.
3. ONE database transaction stores the rows (idempotent keys), the markers and the
   consumer's next offset per partition (:meth:`L1db.store`).
4. Only then are the offsets committed to Kafka, for lag dashboards and tools.

The database's offsets are the truth: on every partition assignment the consumer seeks to the
offset stored with the rows (with none, to the beginning of the partition). A crash anywhere
re-reads at most the batch in flight, and re-storing it changes nothing. SIGTERM and SIGINT
end the loop after the batch in flight is committed, also during a broker outage (exit 0).

A stored offset beyond its partition's end means the broker or the topic lost its messages (a
memory-only broker restarted, the topic was deleted and re-created): reading on from it would
skip every new message below it. The ingester stops reading that partition, says so (an ERROR
line, ``alertbutler_offset_beyond_end``, ``/readyz``) and waits for an operator's
``alertbutler ingest reset-offsets`` (:mod:`.offsets`), which it notices by itself. The end is
the high watermark of a fetch response (the embedded broker answers a fetch beyond the end
with no records and its true high watermark) or the broker's OFFSET_OUT_OF_RANGE (Apache
Kafka). Broker outages are reported once each by :class:`alertbutler.kafka.outage.BrokerWatch`.

On a broker with transactions (probed, :func:`alertbutler.kafka.transaction_support`) the
prompt workers publish each work item in one transaction, and the ingester reads
``read_committed``: never the alerts of an aborted attempt (a killed worker, a broker outage),
whose item is processed again. Transaction markers then take offsets of their own, so offsets
skipped between records are expected there, not reported as gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)

from alertbutler.alerts import CONTROL_SUFFIX, control_topic
from alertbutler.faults import crash_point
from alertbutler.ingest.batch import Message, SortedBatch, sort_batch, warm_up
from alertbutler.ingest.deadletter import DeadLetterProducer
from alertbutler.kafka.factory import make_admin, make_aio_consumer
from alertbutler.kafka.outage import BrokerWatch, quiet_aiokafka, quiet_confluent
from alertbutler.kafka.transactions import transaction_support
from alertbutler.l1db import ConsumedOffsets, L1db, StoreResult
from alertbutler.metrics import Health, ServiceMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    """Everything the ingester needs, built once by its entry point."""

    topics: tuple[str, ...]
    db_url: str
    group: str
    dead_letter_topic: str
    aiokafka: dict[str, object]  # bootstrap_servers and security keywords
    confluent: dict[str, object]  # the same for the dead-letter producer
    max_batch_messages: int = 6000
    #: a batch also ends at this many bytes of message values (Rubin-size alerts carry
    #: three cutouts: 6000 of them would hold ~450 MB and leave nothing to overlap)
    max_batch_bytes: int = 32 * 1024 * 1024
    max_batch_ms: int = 200
    session_timeout_ms: int = 6000
    #: Assign every partition of the topics to this process instead of joining the group
    #: (one ingester per topic; no group join, so restarts are immediate).
    assign_all: bool = False
    #: probe the broker and report outages (one line each, readiness, metrics)
    watch_broker: bool = True
    #: read only committed transactions (None: where the broker's probe shows them)
    read_committed: bool | None = None
    member: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")


@dataclass
class IngestTotals:
    """What one run of the ingester did."""

    batches: int = 0
    messages: int = 0
    alerts: int = 0
    rows: int = 0
    dead_letters: int = 0
    completed: int = 0
    skipped: int = 0
    gaps: int = 0  # offsets jumped over (see Ingester._note_gap)
    sort_s: float = 0.0  # decoding and building rows
    store_s: float = 0.0  # dead letters and the database transaction


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, ingester: Ingester) -> None:
        self._ingester = ingester

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Let the batches in flight commit before another member takes their partitions,
        # and have the batch being collected dropped (see Ingester._pipeline).
        self._ingester._generation += 1
        await self._ingester._queue.join()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # Until the seeks are done, records come from positions the consumer chose itself:
        # whatever is collected meanwhile is dropped.
        ingester = self._ingester
        ingester._assigning = True
        ingester._generation += 1
        try:
            await ingester._seek_to_stored(list(assigned))
        finally:
            ingester._generation += 1
            ingester._assigning = False


class Ingester:
    """Consume alert topics into the L1 database until :meth:`stop` (or a signal)."""

    def __init__(self, settings: IngestSettings, *, db: L1db | None = None,
                 metrics: ServiceMetrics | None = None, health: Health | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self._db = db
        self._own_db = db is None
        self._stop = asyncio.Event()
        #: the alert topics and their control topics (the end markers)
        self._topics = tuple(settings.topics) + tuple(
            control_topic(t) for t in settings.topics if not t.endswith(CONTROL_SUFFIX))
        #: Decoded-ahead batches waiting for the writer (one ahead at most).
        self._queue: asyncio.Queue[tuple[list[Message], asyncio.Future] | None] = \
            asyncio.Queue(maxsize=1)
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="ingest-decode")
        self._next: dict[tuple[str, int], int] = {}
        #: Next offset per partition after the batches already handed to the writer: what
        #: is below it is never collected twice (in order, written or about to be).
        self._collected: dict[tuple[str, int], int] = {}
        #: Bumped by every rebalance: a batch collected across one is dropped.
        self._generation = 0
        #: Fetched past the last batch's byte limit: the next batch starts with these
        #: (dropped by a rebalance, or per partition by a seek or a stop).
        self._carry: list[Message] = []
        self._carry_generation = 0
        self._assigning = False
        self.totals = IngestTotals()
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_warned = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: partitions stopped at a stored offset beyond their end -> that stored offset
        self.beyond_end: dict[tuple[str, int], int] = {}
        #: since when a fetch's high watermark is below the position (not yet confirmed)
        self._below_since: dict[tuple[str, int], float] = {}
        self._last_recheck = 0.0
        self._watch: BrokerWatch | None = None
        #: Kafka topic ids seen at the last assignment (or check)
        self._topic_ids: dict[str, str] = {}
        self._last_id_check = time.monotonic()
        #: a stopped partition's offset in the database when it was stopped: a change is an
        #: operator's reset
        self._stopped_at: dict[tuple[str, int], int | None] = {}
        #: reading read_committed (decided at the start of :meth:`run`)
        self.read_committed = False

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member reads now; empty until it joined."""
        consumer = self._consumer
        if consumer is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in consumer.assignment())

    def stop(self) -> None:
        """Finish the batch in flight, commit it, and return from :meth:`run`.

        Safe to call from any thread (and from a signal handler of the loop)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        try:
            loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:  # the loop closed meanwhile
            self._stop.set()

    async def run(self, *, install_signal_handlers: bool = False) -> IngestTotals:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        if install_signal_handlers:
            loop = self._loop
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        if self._db is None:
            self._db = await asyncio.to_thread(L1db, s.db_url)
        # the columnar decoder's compiled code loads while the consumer connects
        warming = asyncio.get_running_loop().run_in_executor(self._decoder, warm_up)
        quiet_aiokafka()
        self.read_committed = await self._committed_only()
        watch = BrokerWatch(s.confluent, service="ingest", metrics=self.metrics,
                            health=self.health)
        if s.watch_broker:
            self._watch = watch.start()
        dlt = DeadLetterProducer({**s.confluent, **quiet_confluent("ingest dead letters")},
                                 s.dead_letter_topic)
        # "none": an offset out of range is an error to look at (retention, or a broker that
        # lost its data), never a silent jump (see _out_of_range)
        # a configured client id wins; otherwise each member names itself
        own_id = {} if "client_id" in s.aiokafka else {
            "client_id": f"alertbutler-ingest-{s.member}"}
        consumer = make_aio_consumer(
            s.aiokafka, group_id=s.group, **own_id, enable_auto_commit=False,
            auto_offset_reset="none", session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(s.session_timeout_ms // 3, 100),
            max_poll_interval_ms=300_000, max_partition_fetch_bytes=4 * 1024 * 1024,
            isolation_level="read_committed" if self.read_committed else "read_uncommitted")
        self._consumer = consumer
        try:
            await consumer.start()
        except BaseException:
            watch.stop()
            dlt.close(timeout=0)
            raise
        try:
            if s.assign_all:
                partitions = await self._partitions()
                consumer.assign(partitions)
                await self._seek_to_stored(partitions)
            else:
                consumer.subscribe(list(self._topics), listener=_Rebalance(self))
            await warming
            if self.health is not None:
                self.health.set_ready(True, "consuming")
            log.info("ingester started", extra={"topics": list(self._topics), "group": s.group,
                                                "member": s.member, "db": self._db.url})
            await self._pipeline(consumer, dlt)
        finally:
            await self._close(consumer, dlt)
            watch.stop()
            self._decoder.shutdown(wait=True)
            if self._own_db:
                self._db.close()
        log.info("ingester stopped", extra=vars(self.totals))
        return self.totals

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the topics. Asked with a metadata request of its own: aiokafka's
        cached metadata holds only the topics a consumer subscribed to (none here), which
        Apache Kafka takes literally; a topic created a moment ago may have no partitions
        listed yet, so ask again for up to 30 s. A control topic is read when it exists: a topic
        written by an earlier version has none (its markers are inline)."""
        from alertbutler.kafka import list_topics

        s = self.settings
        deadline = time.monotonic() + 30.0
        while True:
            found = await asyncio.to_thread(list_topics, str(s.confluent["bootstrap.servers"]),
                                            settings=s.confluent)
            if all(found.get(t) for t in s.topics) or time.monotonic() > deadline \
                    or self._stop.is_set():
                break
            await asyncio.sleep(0.5)
        partitions = [TopicPartition(topic, p) for topic in self._topics
                      for p in range(found.get(topic, 0))]
        if not partitions:
            raise RuntimeError(f"no partitions found for topics {', '.join(s.topics)}")
        return partitions

    async def _close(self, consumer: AIOKafkaConsumer, dlt: DeadLetterProducer) -> None:
        """Close the clients; a broker that is gone must not turn a stop into a crash (aiokafka
        raises the cancellation of its own pending fetch from ``stop()``)."""
        try:
            await consumer.stop()
        except (asyncio.CancelledError, KafkaError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("Kafka consumer closed uncleanly (broker unreachable?)",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
        # dead letters are flushed before each commit: nothing is left to wait for in an outage
        dlt.close(timeout=10.0 if self._watch is None or self._watch.up else 0.0)

    async def _pipeline(self, consumer: AIOKafkaConsumer, dlt: DeadLetterProducer) -> None:
        """Collect and decode batch N+1 while batch N is written: two threads overlap (the
        decoder holds the GIL, the writer mostly waits on the database), and batches are
        written strictly in order, so stored offsets only ever cover written rows."""
        loop = asyncio.get_running_loop()
        writer = asyncio.create_task(self._write_in_order(consumer, dlt))
        try:
            while not self._stop.is_set() and not writer.done():
                if self.health is not None:
                    self.health.beat()
                await self._recheck_topic_ids(consumer)
                if self.beyond_end:
                    await self._recheck_stored(consumer, writer)
                generation = self._generation
                messages = await self._collect(consumer)
                if generation != self._generation or self._assigning:
                    # A rebalance happened while collecting: the batch mixes records fetched
                    # before and after it. Drop it and read on from what is stored (every
                    # batch of the old assignment was written before the rebalance went on).
                    self.totals.skipped += len(messages)
                    for tp in consumer.assignment():
                        self._seek(tp, self._collected.get((tp.topic, tp.partition), 0))
                    continue
                fresh = [m for m in messages
                         if m.offset >= self._collected.get((m.topic, m.partition), 0)]
                self.totals.skipped += len(messages) - len(fresh)
                for m in fresh:
                    tp_key = (m.topic, m.partition)
                    self._note_gap(tp_key, m.offset)
                    self._collected[tp_key] = max(self._collected.get(tp_key, 0), m.offset + 1)
                if fresh:
                    sorting = loop.run_in_executor(self._decoder, self._sort, fresh)
                    put = asyncio.ensure_future(self._queue.put((fresh, sorting)))
                    await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
                    if not put.done():  # the writer failed: stop collecting
                        put.cancel()
                        break
        finally:
            if not writer.done():
                await self._queue.put(None)
            await writer  # re-raises the writer's error, if any

    async def _committed_only(self) -> bool:
        """Whether to read ``read_committed``: as configured, else as the broker's probe says
        (once per process)."""
        if self.settings.read_committed is not None:
            return self.settings.read_committed
        settings = dict(self.settings.confluent)
        bootstrap = str(settings.pop("bootstrap.servers"))
        support = await asyncio.to_thread(transaction_support, bootstrap, settings=settings)
        return support.available

    def _note_gap(self, tp_key: tuple[str, int], offset: int) -> None:
        """Say so when a partition's records jump past offsets never received: without
        transactions (whose markers and aborted records take offsets, hence not when reading
        ``read_committed``) a gap means records the broker did not deliver, and their alerts
        would be missing from the L1 database while their end markers complete the
        visit-detector."""
        expected = self._collected.get(tp_key)
        if expected is not None and offset > expected and not self.read_committed:
            self.totals.gaps += offset - expected
            log.warning("offsets never received: the consumer was handed later records",
                        extra={"topic": tp_key[0], "partition": tp_key[1],
                               "missing": f"{expected}..{offset - 1}"})

    async def _write_in_order(self, consumer: AIOKafkaConsumer,
                              dlt: DeadLetterProducer) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                messages, sorting = item
                await self._ingest(consumer, dlt, messages, await sorting)
            finally:
                self._queue.task_done()

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Seek to the offsets stored with the rows: the database is the truth."""
        assert self._db is not None and self._consumer is not None
        stored = await asyncio.to_thread(self._db.consumer_offsets, self.settings.group)
        for tp in partitions:
            known = stored.get((tp.topic, tp.partition))
            key = (tp.topic, tp.partition)
            self._clear_beyond_end(key)  # looked at afresh from the stored offset
            if known is None:
                # offset 0, not seek_to_beginning (a ListOffsets request); past retention the
                # broker refuses it and _out_of_range reads on from the start
                self._seek(tp, 0)
                self._next.pop(key, None)
                self._collected.pop(key, None)
            else:
                self._seek(tp, known.next_offset)
                self._next[key] = self._collected[key] = known.next_offset
        log.info("partitions assigned", extra={"partitions": [
            f"{tp.topic}:{tp.partition}@{self._next.get((tp.topic, tp.partition), 0)}"
            for tp in partitions]})
        await self._check_topic_ids(partitions, stored)

    async def _check_topic_ids(self, partitions: list[TopicPartition],
                               stored: dict[tuple[str, int], Any]) -> None:
        """A topic deleted and created again under its name has a new topic id: the stored
        offsets belong to the old one, whatever the new one's end (records below them would
        be skipped, records above them read in the wrong place). Stop those partitions; the
        first id seen for a topic is recorded with its offsets."""
        assert self._db is not None and self._consumer is not None
        group = self.settings.group
        current = await asyncio.to_thread(_topic_ids, self.settings.confluent,
                                          sorted({tp.topic for tp in partitions}))
        self._topic_ids.update(current)
        for topic, topic_id in current.items():
            recorded = await asyncio.to_thread(self._db.topic_id, group, topic)
            if recorded is None:
                await asyncio.to_thread(self._db.set_topic_id, group, topic, topic_id)
            elif recorded != topic_id:
                for tp in partitions:
                    known = stored.get((tp.topic, tp.partition))
                    if tp.topic == topic and known is not None:
                        self._stopped_at[(tp.topic, tp.partition)] = known.next_offset
                        self._stop_partition(
                            self._consumer, tp, known.next_offset, None,
                            why=f"the topic was re-created (topic id {topic_id}; the stored "
                            f"offsets belong to topic id {recorded})")

    async def _collect(self, consumer: AIOKafkaConsumer) -> list[Message]:
        """Up to max_batch_messages or max_batch_bytes, or what arrived within max_batch_ms
        of the first."""
        s = self.settings
        generation = self._generation  # a carry fetched across a rebalance is dropped
        if self._carry_generation != generation:
            self._carry = []
        messages: list[Message] = []
        size = 0

        def take(records: list[Message]) -> None:
            """Into the batch until a limit is reached (one message at least); the rest is
            carried to the next batch, in order."""
            nonlocal size
            for i, m in enumerate(records):
                if messages and (size >= s.max_batch_bytes
                                 or len(messages) >= s.max_batch_messages):
                    self._carry.extend(records[i:])
                    return
                messages.append(m)
                size += len(m.value or b"")

        carried, self._carry = self._carry, []
        take(carried)
        deadline: float | None = time.monotonic() + s.max_batch_ms / 1000 if messages else None
        while len(messages) < s.max_batch_messages and size < s.max_batch_bytes \
                and not self._stop.is_set() and not self._carry:
            wait = 200 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            try:
                fetched = await consumer.getmany(
                    timeout_ms=wait, max_records=s.max_batch_messages - len(messages))
            except OffsetOutOfRangeError as exc:
                await self._out_of_range(consumer, exc.args[0] if exc.args else {})
                break
            except NoOffsetForPartitionError as exc:
                # a partition assigned in a rebalance, fetched before its seek (no reset
                # policy): seek it to what the database holds, as the assignment does
                found = exc.args[0] if exc.args else []
                await self._seek_to_stored(
                    [found] if isinstance(found, TopicPartition) else list(found))
                break
            for records in fetched.values():
                take(records)
            self._carry_generation = generation
            self._check_ends(consumer)
            if messages and deadline is None:
                deadline = time.monotonic() + s.max_batch_ms / 1000
            if deadline is None or time.monotonic() >= deadline:
                break
        return messages

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        """Every seek goes here: what was carried of that partition is from before it."""
        assert self._consumer is not None
        self._consumer.seek(tp, offset)
        self._drop_carried(tp)

    def _drop_carried(self, tp: TopicPartition) -> None:
        self._carry = [m for m in self._carry
                       if (m.topic, m.partition) != (tp.topic, tp.partition)]

    # -- offsets beyond the partition's end ---------------------------------------------------
    def _check_ends(self, consumer: AIOKafkaConsumer) -> None:
        """Stop a partition whose fetch high watermark stays below the position (the embedded
        broker's answer for a position beyond the end). Confirmed over 3 s of fetches: after a
        restart Apache Kafka may briefly report a high watermark below its log end."""
        now = time.monotonic()
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            position = self._collected.get(key)
            high = consumer.highwater(tp)
            if key in self.beyond_end or position is None or high is None \
                    or high >= position:
                self._below_since.pop(key, None)
                continue
            since = self._below_since.setdefault(key, now)
            if now - since >= 3.0:
                self._stop_partition(consumer, tp, position, high)

    async def _out_of_range(self, consumer: AIOKafkaConsumer,
                            offsets: dict[TopicPartition, int]) -> None:
        """The broker refused a fetch position (Apache Kafka): below the partition's start,
        the messages were deleted by retention before they were read (said loudly, then read
        on from the start); beyond its end, the partition is stopped."""
        for tp, offset in offsets.items():
            key = (tp.topic, tp.partition)
            start = (await consumer.beginning_offsets([tp]))[tp]
            if offset < start:
                log.error("messages deleted by retention before they were ingested: reading on "
                          "from the partition's start", extra={
                              "topic": tp.topic, "partition": tp.partition,
                              "position": offset, "start": start, "lost": start - offset})
                self._seek(tp, start)
                self._collected[key] = self._next[key] = start
                continue
            end = (await consumer.end_offsets([tp]))[tp]  # ListOffsets: right on Apache Kafka
            self._stop_partition(consumer, tp, offset, end)

    def _stop_partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition, stored: int,
                        end: int | None, *, why: str | None = None) -> None:
        """Stop reading a partition whose stored offset does not belong to what it holds
        now (beyond its ``end``, or ``why``), until an operator resets it."""
        key = (tp.topic, tp.partition)
        if key in self.beyond_end:
            return
        self.beyond_end[key] = stored
        self._below_since.pop(key, None)
        consumer.pause(tp)
        self._drop_carried(tp)
        command = f"alertbutler ingest reset-offsets --topic {tp.topic} --partition {tp.partition}"
        cause = why or f"stored offset {stored} is beyond the partition's end {end}"
        log.error(("stored offset beyond the partition's end: the broker or the topic lost "
                   "its messages (a memory-only broker restarted, or the topic was "
                   "re-created)" if why is None else f"stored offset of another topic: {why}")
                  + "; nothing is read from this partition until an operator resets its "
                  "offset", extra={"topic": tp.topic, "partition": tp.partition,
                                   "stored_offset": stored, "end": end, "fix": command})
        if self.metrics is not None:
            self.metrics.offset_beyond_end.labels("ingest", tp.topic, str(tp.partition)).set(1)
        if self.health is not None:
            self.health.block(f"offset:{tp.topic}:{tp.partition}",
                              f"{tp.topic}:{tp.partition}: {cause}; run '{command}'")

    def _clear_beyond_end(self, key: tuple[str, int]) -> None:
        self._below_since.pop(key, None)
        self._stopped_at.pop(key, None)
        if self.beyond_end.pop(key, None) is None:
            return
        if self.metrics is not None:
            with contextlib.suppress(KeyError):
                self.metrics.offset_beyond_end.remove("ingest", key[0], str(key[1]))
        if self.health is not None:
            self.health.unblock(f"offset:{key[0]}:{key[1]}")

    async def _recheck_topic_ids(self, consumer: AIOKafkaConsumer) -> None:
        """Every 10 s: a topic re-created under a running ingester (and refilled before its
        end could tell) has a new topic id; stop its partitions."""
        if time.monotonic() - self._last_id_check < 10.0:
            return
        self._last_id_check = time.monotonic()
        assigned = list(consumer.assignment())
        current = await asyncio.to_thread(_topic_ids, self.settings.confluent,
                                          sorted({tp.topic for tp in assigned}))
        for topic, topic_id in current.items():
            known = self._topic_ids.setdefault(topic, topic_id)
            if known == topic_id:
                continue
            self._topic_ids[topic] = topic_id  # what a reset's offsets will belong to
            for tp in assigned:
                position = self._collected.get((tp.topic, tp.partition))
                if tp.topic == topic and position:
                    self._stop_partition(consumer, tp, position, None, why=(
                        f"the topic was re-created while it was read (topic id {topic_id}, "
                        f"was {known})"))

    async def _recheck_stored(self, consumer: AIOKafkaConsumer,
                              writer: asyncio.Task[None]) -> None:
        """Every 2 s while partitions are stopped: has an operator reset their offsets?"""
        if time.monotonic() - self._last_recheck < 2.0:
            return
        self._last_recheck = time.monotonic()
        assert self._db is not None
        # batches in flight are written first: the stored offsets are final (unless the
        # writer failed, which ends the pipeline)
        drained = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({drained, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            drained.cancel()
            return
        stored = await asyncio.to_thread(self._db.consumer_offsets, self.settings.group)
        for key in list(self.beyond_end):
            known = stored.get(key)
            offset = None if known is None else known.next_offset
            if key not in self._stopped_at:  # what the database held when it was stopped
                self._stopped_at[key] = offset
                continue
            if offset == self._stopped_at[key]:
                continue
            tp = TopicPartition(*key)
            self._clear_beyond_end(key)
            if tp in consumer.assignment():
                self._seek(tp, offset or 0)
                if offset is None:
                    self._collected.pop(key, None)
                    self._next.pop(key, None)
                else:
                    self._collected[key] = self._next[key] = offset
                consumer.resume(tp)
            log.warning("offset reset by an operator: reading the partition again",
                        extra={"topic": key[0], "partition": key[1], "from": offset or 0})
            topic_id = self._topic_ids.get(key[0])
            if topic_id is not None:  # the offsets now belong to the topic as it is
                await asyncio.to_thread(self._db.set_topic_id, self.settings.group, key[0],
                                        topic_id)

    async def _ingest(self, consumer: AIOKafkaConsumer, dlt: DeadLetterProducer,
                      messages: list[Message], sorted_batch: SortedBatch) -> None:
        result = await asyncio.to_thread(self._write, dlt, messages, sorted_batch)
        t = self.totals
        t.batches += 1
        t.messages += len(messages)
        t.alerts += sorted_batch.n_alerts
        t.rows += result.n_rows
        t.dead_letters += len(sorted_batch.dead)
        t.completed += len(result.completed)
        crash_point("ingest.after-db-commit")
        self._next.update(sorted_batch.next_offsets)
        if self.metrics is not None:
            self._observe(consumer, messages, sorted_batch, result)
        for vd in result.completed:
            log.info("visit-detector ingested", extra={"visit": vd.visit,
                                                       "detector": vd.detector})
        try:  # bounded: during an outage the commit would wait for the coordinator
            await asyncio.wait_for(consumer.commit(
                {TopicPartition(topic, p): offset for (topic, p), offset
                 in sorted_batch.next_offsets.items()
                 if TopicPartition(topic, p) in consumer.assignment()}), timeout=10.0)
        except (CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as exc:
            # The database already holds these offsets; Kafka's copy is for visibility only.
            log.log(logging.DEBUG if self._commit_warned else logging.WARNING,
                    "Kafka offset commit failed (the L1 database has the offsets): %s", exc)
            self._commit_warned = True

    def _observe(self, consumer: AIOKafkaConsumer, messages: list[Message],
                 sorted_batch: SortedBatch, result: StoreResult) -> None:
        m, name = self.metrics, "ingest"
        assert m is not None
        m.messages_consumed.labels(name).inc(len(messages))
        m.alerts_ingested.labels(name).inc(sorted_batch.n_alerts)
        for table, n in result.inserted.items():
            m.rows_ingested.labels(name, table).inc(n)
        for letter in sorted_batch.dead:
            m.dead_lettered.labels(name, letter.error).inc()
        m.stage_seconds.labels(name, "decode").observe(sorted_batch.seconds)
        for tp in consumer.assignment():
            high = consumer.highwater(tp)  # from the last fetch response, never ListOffsets
            position = self._next.get((tp.topic, tp.partition))
            if high is not None and position is not None:
                m.consumer_lag.labels(name, tp.topic, str(tp.partition)).set(
                    max(high - position, 0))

    def _sort(self, messages: list[Message]) -> SortedBatch:
        """Decode and sort a batch, and do the client's share of its store (the COPY
        encoding), in the decoder's thread while the writer stores the batch before."""
        assert self._db is not None
        sorted_batch = sort_batch(messages)
        start = time.perf_counter()
        sorted_batch.rows = self._db.prepare(sorted_batch.rows)
        sorted_batch.seconds += time.perf_counter() - start
        return sorted_batch

    def _write(self, dlt: DeadLetterProducer, messages: list[Message],
               sorted_batch: SortedBatch) -> StoreResult:
        assert self._db is not None
        t1 = time.perf_counter()
        for letter in sorted_batch.dead:
            log.warning("dead-lettered a message", extra={
                "topic": letter.message.topic, "partition": letter.message.partition,
                "offset": letter.message.offset, "reason": letter.reason})
        dlt.send(sorted_batch.dead)
        crash_point("ingest.after-dead-letters")
        consumed = ConsumedOffsets(consumer=self.settings.group, member=self.settings.member,
                                   next_offsets=sorted_batch.next_offsets,
                                   n_messages=len(messages))
        result = self._db.store(sorted_batch.rows, markers=sorted_batch.markers,
                                consumed=consumed)
        self.totals.sort_s += sorted_batch.seconds
        self.totals.store_s += time.perf_counter() - t1
        if self.metrics is not None:
            self.metrics.stage_seconds.labels("ingest", "store").observe(
                time.perf_counter() - t1)
        return result


def _topic_ids(confluent: Mapping[str, object], topics: list[str]) -> dict[str, str]:
    """Each topic's Kafka topic id (left out where the broker gives none)."""
    from confluent_kafka import TopicCollection

    admin = make_admin(confluent)
    out = {}
    for name, future in admin.describe_topics(TopicCollection(topics),
                                              request_timeout=15).items():
        try:
            found = future.result(timeout=20).topic_id
        except Exception:  # unknown topic, old broker: nothing to compare with
            continue
        text = str(found) if found is not None else ""
        if text and text.strip("A=") and text != "0":  # the all-zero id means none
            out[name] = text
    return out


def run_ingester(settings: IngestSettings, *, metrics_port: int | None = None) -> IngestTotals:
    """Run until SIGTERM or SIGINT (the CLI's entry point); with ``metrics_port``, serve
    ``/metrics``, ``/healthz`` and ``/readyz`` there."""
    from alertbutler.metrics import MetricsServer

    metrics, health = ServiceMetrics("ingest"), Health()
    server = None
    if metrics_port is not None:
        server = MetricsServer(metrics, health, port=metrics_port).start()
    try:
        ingester = Ingester(settings, metrics=metrics, health=health)
        return asyncio.run(ingester.run(install_signal_handlers=True))
    finally:
        if server is not None:
            server.stop()
