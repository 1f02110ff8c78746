"""Stream archived alerts into a Kafka topic, paced, and count what the broker acknowledged.

One confluent-kafka producer (aiokafka's idempotent producer fails on the embedded broker):
``acks=all`` and idempotence (a retried batch is not written twice and per-partition order
survives retries), zstd batches with a 5 ms linger and large batch limits, so a single Python
thread keeps the broker busy. Messages are produced in archive order with their keys, so each
object's alerts stay in order in their partition (and the whole stream does, on a topic of one
partition).

Pacing is either a rate (``rate`` messages/s, evenly spaced) or a speed relative to the
recorded timestamps (``speed`` x real time; messages without a timestamp go out at once).
Produced messages carry the time of the replay as their Kafka timestamp, unless
``keep_timestamps`` asks for the recorded ones (careful: a topic with time-based retention
may delete those at once).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException

from alertbutler.kafka import factory
from alertbutler.replay.clock import Pacer, RatePacer
from alertbutler.replay.errors import StreamError
from alertbutler.replay.sources import ArchivedAlert

if TYPE_CHECKING:
    from confluent_kafka import Message

log = logging.getLogger(__name__)

#: What every replay producer uses; callers' settings cannot weaken these.
REQUIRED_SETTINGS: dict[str, Any] = {"acks": "all", "enable.idempotence": True}
DEFAULT_SETTINGS: dict[str, Any] = {
    "compression.type": "zstd",
    "linger.ms": 5,
    "batch.size": 8 * 1024 * 1024,
    "batch.num.messages": 10_000,
    "message.max.bytes": 16 * 1024 * 1024,
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.timeout.ms": 120_000,
    "log_level": 3,
}


@dataclass
class StreamSummary:
    """What a replay into a topic did."""

    topic: str
    messages: int = 0
    delivered: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    #: seconds the schedule ran late at worst (the broker could not keep up)
    behind_s: float = 0.0
    pacing: str = "as fast as possible"
    schema_ids: Counter[int] = field(default_factory=Counter)
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def rate_per_s(self) -> float:
        """Acknowledged messages per second, first produce to last acknowledgement."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "messages": self.messages, "delivered": self.delivered,
            "failed": self.failed, "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "rate_per_s": round(self.rate_per_s, 1), "mb_per_s": round(self.mb_per_s, 2),
            "behind_s": round(self.behind_s, 3), "pacing": self.pacing,
            "schema_ids": {str(k): v for k, v in sorted(self.schema_ids.items())},
            "first_timestamp_ms": self.first_timestamp_ms,
            "last_timestamp_ms": self.last_timestamp_ms, "errors": self.errors[:10],
        }


def producer_settings(bootstrap: str, *, client: Mapping[str, Any] | None = None,
                      compression: str = "zstd", **extra: Any) -> dict[str, Any]:
    """Settings of the replay producer (see the module doc).

    zstd runs at level 1: on alerts of noisy cutouts it compresses as well as the default
    level 3 at about 60% of the CPU (measured here: 0.15 vs 0.27 ms per 35 KB alert), and
    librdkafka compresses on one thread per broker connection, so it bounds the rate.
    """
    level = {"compression.level": 1} if compression == "zstd" else {}
    return {"bootstrap.servers": bootstrap, **DEFAULT_SETTINGS,
            "compression.type": compression, **level, **(client or {}), **extra,
            **REQUIRED_SETTINGS}


def stream_alerts(messages: Iterable[ArchivedAlert], *, topic: str,
                  settings: Mapping[str, object], rate: float | None = None,
                  speed: float | None = None, keep_timestamps: bool = False,
                  progress: Callable[[int], None] | None = None,
                  flush_timeout_s: float = 120.0,
                  summary: StreamSummary | None = None) -> StreamSummary:
    """Produce ``messages`` to ``topic`` in order and wait for every acknowledgement.

    Raises :class:`StreamError` when any message was not acknowledged. When reading the
    archive fails midway, what was already produced is still delivered before the error
    propagates; pass ``summary`` to see the counts then. ``progress`` is called with the
    number acknowledged so far, now and then.
    """
    if rate is not None and speed is not None:
        raise ValueError("give a rate or a speed, not both")
    summary = summary if summary is not None else StreamSummary(topic)
    pacer: Pacer
    if rate is not None:
        pacer = RatePacer(rate)
        summary.pacing = f"{rate:g} alerts/s"
    else:
        pacer = Pacer(speed or 0.0)
        if speed:
            summary.pacing = f"{speed:g} x recorded time"

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            summary.delivered += 1
        else:
            summary.failed += 1
            if len(summary.errors) < 10:
                summary.errors.append(f"{err.name()}: {err.str()}")

    producer = factory.make_producer(settings, on_delivery=on_delivery)
    first_ts: int | None = None
    start = time.monotonic()  # the pacer starts with the first message read
    last_report = 0
    try:
        for i, msg in enumerate(messages):
            if isinstance(pacer, RatePacer):
                pacer.wait_for(i)
            elif pacer.speed and msg.timestamp_ms is not None:
                if first_ts is None:
                    first_ts = msg.timestamp_ms
                pacer.wait_until(max(0.0, (msg.timestamp_ms - first_ts) / 1000.0))
            kwargs: dict[str, Any] = {}
            if keep_timestamps and msg.timestamp_ms is not None:
                kwargs["timestamp"] = msg.timestamp_ms
            while True:
                try:
                    producer.produce(topic, msg.value, msg.key, **kwargs)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.01)
            summary.messages += 1
            summary.bytes += len(msg.value)
            summary.schema_ids[msg.schema_id] += 1
            if msg.timestamp_ms is not None:
                if summary.first_timestamp_ms is None:
                    summary.first_timestamp_ms = msg.timestamp_ms
                summary.last_timestamp_ms = msg.timestamp_ms
            if summary.messages % 256 == 0:
                producer.poll(0)
                if progress is not None and summary.delivered != last_report:
                    last_report = summary.delivered
                    progress(last_report)
    except KafkaException as exc:
        summary.errors.append(str(exc))
        log.error("replay producer failed", extra={"topic": topic, "error": str(exc)})
    finally:  # also on a bad archive: what was produced is delivered before the error
        deadline = time.monotonic() + flush_timeout_s
        while summary.delivered + summary.failed < summary.messages:
            if time.monotonic() > deadline:
                break
            producer.flush(0.2)
            if progress is not None:
                progress(summary.delivered)
        summary.seconds = time.monotonic() - start
        summary.behind_s = pacer.behind_s
    if progress is not None:
        progress(summary.delivered)
    if summary.delivered < summary.messages:
        missing = summary.messages - summary.delivered
        raise StreamError(
            f"{missing} of {summary.messages} messages to {topic!r} were not acknowledged"
            + (f": {summary.errors[0]}" if summary.errors else " (no delivery report)"),
            delivered=summary.delivered, failed=missing)
    return summary
