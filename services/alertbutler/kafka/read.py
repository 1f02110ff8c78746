"""Reading messages back from Kafka by position, without a consumer group: the one reader.

The publish datastore reads an alert back from its (topic, partition, offset) records
(:func:`fetch_messages`); ``alerts dump``, the main job's summary and the night recorder
read a topic to its end (:func:`iter_topic`). Both assign partitions directly (no group
join, which is slow on the embedded broker) and never ask the broker for its end offsets
(ListOffsets is wrong there): a read stops when it has what it wants, or at the high
watermark that each fetch response carries.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from alertbutler.kafka.message import placed, value_of


class Fetched(NamedTuple):
    """One message read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def _consumer(bootstrap: str, settings: Mapping[str, object] | None) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"alertbutler-read-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "logger": logging.getLogger("alertbutler.alerts.librdkafka"),
        **(settings or {}),
    })


def fetch_messages(bootstrap: str, wanted: Iterable[tuple[str, int, int]], *,
                   settings: Mapping[str, object] | None = None,
                   timeout: float = 30.0) -> dict[tuple[str, int, int], Fetched]:
    """The messages at the given (topic, partition, offset) positions.

    Positions that cannot be read (deleted by retention, beyond the end) are absent from the
    result; the caller decides whether that is an error.
    """
    want: dict[tuple[str, int], set[int]] = {}
    for topic, partition, offset in wanted:
        want.setdefault((topic, partition), set()).add(offset)
    if not want:
        return {}
    found: dict[tuple[str, int, int], Fetched] = {}
    consumer = _consumer(bootstrap, settings)
    try:
        consumer.assign([TopicPartition(t, p, min(offs)) for (t, p), offs in want.items()])
        pending = {tp: set(offs) for tp, offs in want.items()}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # everything there is has been read
                        pending.pop(placed(msg)[:2], None)
                    continue
                topic, partition, offset = placed(msg)
                offsets = pending.get((topic, partition))
                if offsets is None or offset not in offsets:
                    continue
                offsets.discard(offset)
                found[(topic, partition, offset)] = Fetched(
                    topic, partition, offset, msg.key(), value_of(msg), msg.timestamp()[1])
                if not offsets:
                    pending.pop((topic, partition), None)
    finally:
        consumer.close()
    return found


def iter_topic(bootstrap: str, topic: str, *, start: int | None = None,
               partitions: Iterable[int] | None = None, limit: int | None = None,
               settings: Mapping[str, object] | None = None,
               idle_timeout: float | None = 5.0,
               timeout: float | None = None) -> Iterator[Fetched]:
    """Messages of ``topic`` from offset ``start`` (default: the beginning) of each partition,
    until every partition reached its end (or ``limit`` messages were yielded).

    Reading also ends when nothing came for ``idle_timeout`` seconds; past ``timeout``
    seconds in all it raises :class:`TimeoutError` (what came before was yielded)."""
    consumer = _consumer(bootstrap, settings)
    try:
        meta = consumer.list_topics(topic, timeout=10)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise LookupError(f"topic {topic!r} not found at {bootstrap}: "
                              f"{info.error if info else 'no metadata'}")
        chosen = sorted(info.partitions) if partitions is None else list(partitions)
        offset = OFFSET_BEGINNING if start is None else start
        consumer.assign([TopicPartition(topic, p, offset) for p in chosen])
        open_partitions = set(chosen)
        yielded = 0
        last = time.monotonic()
        deadline = None if timeout is None else last + timeout
        while open_partitions and (limit is None or yielded < limit):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic!r} not read to its end within {timeout} s")
            msgs = consumer.consume(num_messages=500, timeout=0.5)
            if not msgs and idle_timeout is not None and \
                    time.monotonic() - last > idle_timeout:
                break
            for msg in msgs:
                last = time.monotonic()
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(msg.partition())
                    continue
                yield Fetched(*placed(msg), msg.key(), value_of(msg), msg.timestamp()[1])
                yielded += 1
                if limit is not None and yielded >= limit:
                    break
    finally:
        consumer.close()
