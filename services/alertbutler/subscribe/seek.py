"""Turn start and end positions into offsets using only fetch responses.

The embedded broker answers ListOffsets wrongly ("latest" is the start of the last batch,
a time is always offset 0), and a correct client must not depend on either answer anywhere.
Everything here reads what a fetch response carries, which every broker gets right:

* the high watermark (``get_watermark_offsets(tp, cached=True)`` after a fetch) gives the
  end of a partition, hence ``latest``, ``last:N`` and the lag;
* the log-start offset in the same response gives the low watermark;
* a time is found by bisection over ``[low, high)`` on the timestamps of fetched messages:
  every round positions all partitions still searching and reads one message from each, so
  the cost is about ``log2(messages per partition)`` fetch rounds, independent of the
  number of partitions. It assumes timestamps grow with offsets within a partition (true of
  LogAppendTime, and of CreateTime from a producer stamping alerts as it sends them); with
  disorder it still returns an offset at a boundary where the timestamps cross the time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as TP

from alertbutler.kafka import access_error, is_refusal
from alertbutler.kafka.message import placed
from alertbutler.subscribe.errors import SubscribeError
from alertbutler.subscribe.positions import (
    AtOffsets,
    AtTime,
    Committed,
    Earliest,
    EndOfPartitions,
    EndPosition,
    LastN,
    Latest,
    StartPosition,
)

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class Watermarks:
    low: int
    high: int


def partitions_of(consumer: Consumer, topics: Iterable[str], timeout: float, *,
                  settings: Mapping[str, object] | None = None) -> list[Partition]:
    """Every partition of the topics; a missing or forbidden topic is an error naming it
    (``settings``: the client's, for the user an access error names)."""
    out: list[Partition] = []
    for topic in topics:
        try:
            meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._TRANSPORT:
                raise SubscribeError(
                    f"no metadata for topic {topic!r}: {err.str()} (the broker closed the "
                    "connection: a broker that requires SASL or TLS does so to a client "
                    "without kafka.client security.protocol and sasl.* settings)") from None
            raise
        if meta is not None and meta.error is not None and is_refusal(meta.error):
            raise access_error(meta.error, settings=settings or {},
                               doing=f"reading topic {topic!r}")
        if meta is None or meta.error is not None or not meta.partitions:
            reason = meta.error if meta is not None and meta.error else "no such topic"
            raise SubscribeError(f"topic {topic!r} cannot be read: {reason}")
        out.extend((topic, p) for p in sorted(meta.partitions))
    return out


def fetch_watermarks(consumer: Consumer, partitions: list[Partition],
                     timeout: float) -> dict[Partition, Watermarks]:
    """Low and high watermarks as carried by a fetch response for every partition."""
    consumer.assign([TP(t, p, OFFSET_BEGINNING) for t, p in partitions])
    deadline = time.monotonic() + timeout
    marks: dict[Partition, Watermarks] = {}
    while True:
        consumer.consume(num_messages=64, timeout=0.05)  # drives the fetch; messages dropped
        for part in partitions:
            if part in marks:
                continue
            low, high = consumer.get_watermark_offsets(TP(*part), cached=True)
            if high >= 0:
                marks[part] = Watermarks(max(low, 0), high)
        if len(marks) == len(partitions):
            return marks
        if time.monotonic() > deadline:
            missing = [f"{t}[{p}]" for t, p in partitions if (t, p) not in marks]
            raise SubscribeError(f"no fetch response within {timeout}s for {', '.join(missing)}")


def _timestamp_probe(consumer: Consumer, wanted: Mapping[Partition, int],
                     timeout: float) -> dict[Partition, tuple[int, int]]:
    """One fetch round: ``(offset, timestamp_ms)`` of the first message at or after each offset."""
    consumer.assign([TP(t, p, off) for (t, p), off in wanted.items()])
    found: dict[Partition, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted):
        if time.monotonic() > deadline:
            raise SubscribeError(f"no message fetched within {timeout}s while seeking a time")
        for msg in consumer.consume(num_messages=256, timeout=0.1):
            if msg.error():
                continue
            topic, partition, offset = placed(msg)
            part = (topic, partition)
            if part in found or part not in wanted or offset < wanted[part]:
                continue
            kind, ts = msg.timestamp()
            if kind == TIMESTAMP_NOT_AVAILABLE:
                raise SubscribeError(f"{part[0]}[{part[1]}] offset {msg.offset()} has no "
                                     "timestamp: cannot start at a time")
            found[part] = (offset, ts)
    return found


def offsets_for_time(consumer: Consumer, marks: Mapping[Partition, Watermarks], ms: int,
                     timeout: float, *, after: bool = False) -> dict[Partition, int]:
    """Per partition, the first offset whose timestamp is >= ``ms`` (> ``ms`` with ``after``).

    A partition where no message qualifies gets its high watermark.
    """
    lo = {part: m.low for part, m in marks.items()}
    hi = {part: m.high for part, m in marks.items()}
    rounds = 0
    while True:
        searching = {part: (lo[part] + hi[part]) // 2 for part in marks if lo[part] < hi[part]}
        if not searching:
            return dict(lo)
        rounds += 1
        for part, (offset, ts) in _timestamp_probe(consumer, searching, timeout).items():
            if ts > ms or (ts == ms and not after):
                hi[part] = searching[part]
            else:
                lo[part] = offset + 1
        if rounds > 70:  # log2 of any real partition is far below this
            raise SubscribeError("time search did not converge")


def resolve_start(consumer: Consumer, start: StartPosition,
                  marks: Mapping[Partition, Watermarks], timeout: float) -> dict[Partition, int]:
    """The first offset to read from each partition."""
    if isinstance(start, Earliest):
        return {part: m.low for part, m in marks.items()}
    if isinstance(start, Latest):
        return {part: m.high for part, m in marks.items()}
    if isinstance(start, LastN):
        return {part: max(m.low, m.high - start.n) for part, m in marks.items()}
    if isinstance(start, AtTime):
        return offsets_for_time(consumer, marks, start.ms, timeout)
    if isinstance(start, AtOffsets):
        return _at_offsets(start, marks)
    if isinstance(start, Committed):
        committed = _committed(consumer, [TP(t, p) for t, p in marks], timeout)
        out: dict[Partition, int] = {}
        for tp in committed:
            part = (tp.topic, tp.partition)
            m = marks[part]
            if tp.error is not None:
                raise SubscribeError(f"cannot read committed offset of {part}: {tp.error}")
            if tp.offset < 0:
                out[part] = m.low if start.fallback == "earliest" else m.high
            else:  # a committed offset deleted by retention falls forward to what is kept
                out[part] = min(max(tp.offset, m.low), m.high)
        return out
    raise SubscribeError(f"unknown start position {start!r}")


def _at_offsets(start: AtOffsets, marks: Mapping[Partition, Watermarks]
                ) -> dict[Partition, int]:
    """Exact offsets, refused when the partition no longer holds them: starting elsewhere
    would silently skip or repeat alerts at a seam."""
    wanted = start.as_dict()
    out: dict[Partition, int] = {}
    for part, m in marks.items():
        offset = wanted.get(part, m.low)  # a partition added after the seam: all of it
        if offset < m.low:
            raise SubscribeError(f"{part[0]}[{part[1]}]: offset {offset} was deleted by the "
                                 f"broker (the partition starts at {m.low}): alerts "
                                 "between them are lost")
        if offset > m.high:
            raise SubscribeError(f"{part[0]}[{part[1]}]: offset {offset} is beyond the end "
                                 f"({m.high}): the topic lost messages (re-created, or a "
                                 "memory-only broker restarted)")
        out[part] = offset
    missing = sorted(set(wanted) - set(marks))
    if missing:
        raise SubscribeError(f"partitions {missing} of the seam are not in the stream")
    return out


def _committed(consumer: Consumer, parts: list[TP], timeout: float) -> list[TP]:
    """The group's committed offsets, retried while the coordinator moves or loads (a fresh
    Apache Kafka answers NOT_COORDINATOR while it creates its offsets topic)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.committed(parts, timeout=max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = isinstance(err, KafkaError) and (err.retriable() or err.code() in (
                KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                KafkaError.COORDINATOR_NOT_AVAILABLE))
            if isinstance(err, KafkaError) and is_refusal(err):
                raise access_error(err, settings={}, doing="reading the group's committed "
                                   "offsets") from None
            if not retriable or time.monotonic() > deadline:
                raise SubscribeError(f"cannot read the group's committed offsets: "
                                     f"{err.str() if isinstance(err, KafkaError) else exc}"
                                     ) from exc
            time.sleep(0.1)


def resolve_end(consumer: Consumer, end: EndPosition | None,
                marks: Mapping[Partition, Watermarks],
                timeout: float) -> dict[Partition, int] | None:
    """The exclusive end offset of each partition, or None for an endless stream."""
    if end is None:
        return None
    if isinstance(end, EndOfPartitions):
        return {part: m.high for part, m in marks.items()}
    return offsets_for_time(consumer, marks, end.ms, timeout, after=True)
