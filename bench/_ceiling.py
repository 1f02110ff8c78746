"""Each broker engine's raw ceiling for a benchmark's own bytes, shared by the benchmarks.

A Kafka figure alone says little on a shared 2-core machine: the same code moves 2-4x with
the other work running, and the two engines differ. So every benchmark that talks to Kafka
runs its workload on each engine (``--engine embedded|kafka|both``) and, on the same broker,
measures what the broker and our client do with the same already-encoded messages and
nothing else:

* produce: one confluent-kafka producer with the workload's own settings (acks=all,
  idempotent, the same compression), the messages produced in a tight loop until every one
  is acknowledged (no encoding, no per-message bookkeeping);
* consume: our subscriber's consumer settings (``AlertStream.consumer_settings``), every
  partition assigned from the beginning (no group join), read to the high watermark each
  fetch response carries (never ListOffsets, wrong on the embedded broker), no decoding.

The ceiling is measured twice, just before the workload and just after it, on the same
broker: the first run also warms the broker (Apache Kafka's JVM compiles its write path
during its first gigabytes) and this process, so the workload does not pay that alone (when
the ceiling ran only after the workload, Apache Kafka's workload produce came out at a fifth
of it), and two runs bracket the machine's load during the workload. The ceiling is the
better of the two runs (produce and consume each); both runs are printed. Figures are then
also given as ``*_fraction_of_ceiling`` = figure / ceiling (rates), the part of its broker's
ceiling the workload reaches.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from alertbutler.broker import ENGINES
from alertbutler.kafka import create_topics, delete_topics


class Raw(NamedTuple):
    """One already-encoded message: key, value, and a partition when the workload picks one."""

    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass(frozen=True)
class Ceiling:
    """What one broker and our client did with ``messages`` messages of ``bytes`` bytes
    (the best of ``runs``, when there were several)."""

    messages: int
    bytes: int
    produce_s: float
    consume_s: float
    runs: tuple[Ceiling, ...] = ()

    @classmethod
    def best(cls, *runs: Ceiling) -> Ceiling:
        """The fastest produce and the fastest consume of ``runs`` (the same messages)."""
        return cls(runs[0].messages, runs[0].bytes, min(r.produce_s for r in runs),
                   min(r.consume_s for r in runs), runs)

    @property
    def produce_per_s(self) -> float:
        return self.messages / self.produce_s

    @property
    def consume_per_s(self) -> float:
        return self.messages / self.consume_s

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": self.messages, "mean_bytes": round(self.bytes / self.messages),
            "produce_per_s": round(self.produce_per_s, 1),
            "produce_mb_per_s": round(self.bytes / 1e6 / self.produce_s, 1),
            "consume_per_s": round(self.consume_per_s, 1),
            "consume_mb_per_s": round(self.bytes / 1e6 / self.consume_s, 1)}
        if self.runs:
            out["runs"] = [{"produce_per_s": round(r.produce_per_s, 1),
                            "consume_per_s": round(r.consume_per_s, 1)} for r in self.runs]
        return out


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=[*ENGINES, "both"], default="both",
                        help="broker engine(s) to run the workload on, one after the other "
                        "(default: both)")


def engines(choice: str) -> list[str]:
    """The engines named by ``--engine``, in the order they run."""
    return list(ENGINES) if choice == "both" else [choice]


def fraction(rate: float, ceiling_rate: float) -> float:
    """``rate`` as a fraction of ``ceiling_rate`` (rates: higher is faster)."""
    return round(rate / ceiling_rate, 3)


def warm_up(bootstrap: str) -> None:
    """One idempotent produce right after the broker starts, so that no workload pays for a
    fresh broker's first producer id (Apache Kafka answers "coordinator load in progress"
    for a while after it starts)."""
    topic = f"bench-warm-up-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: 1})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "log_level": 3})
    producer.produce(topic, b"warm-up")
    if producer.flush(120):
        raise RuntimeError(f"the broker at {bootstrap} did not take a first message")
    delete_topics(bootstrap, [topic])


def measure(bootstrap: str, messages: Sequence[Raw], *, settings: Mapping[str, Any],
            partitions: int, label: str = "") -> Ceiling:
    """Produce ``messages`` to a fresh topic of ``partitions``, then read it back (see the
    module doc); the topic is deleted afterwards (the embedded broker keeps it in memory)."""
    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: partitions})
    try:
        produce_s = _produce(bootstrap, topic, messages, settings)
        consumed, size, consume_s = _consume(bootstrap, topic, partitions)
    finally:
        delete_topics(bootstrap, [topic])
    total = sum(len(m.value) for m in messages)
    if consumed != len(messages) or size != total:
        raise RuntimeError(f"ceiling: read back {consumed} messages of {size} bytes, produced "
                           f"{len(messages)} of {total}")
    ceiling = Ceiling(len(messages), total, produce_s, consume_s)
    c = ceiling.as_dict()
    print(f"{label}ceiling for {len(messages)} messages of {c['mean_bytes']:,} bytes: produce "
          f"{c['produce_per_s']:,.0f}/s ({c['produce_mb_per_s']} MB/s), consume "
          f"{c['consume_per_s']:,.0f}/s ({c['consume_mb_per_s']} MB/s)", flush=True)
    return ceiling


def _produce(bootstrap: str, topic: str, messages: Sequence[Raw],
             settings: Mapping[str, Any]) -> float:
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failed.append(err.name())

    producer = Producer({**settings, "bootstrap.servers": bootstrap,
                         "on_delivery": on_delivery})
    producer.list_topics(topic, timeout=30)  # connect and learn the partitions first
    start = time.perf_counter()
    for m in messages:
        kwargs = {} if m.partition is None else {"partition": m.partition}
        while True:
            try:
                producer.produce(topic, m.value, m.key, **kwargs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.01)
    left = producer.flush(300)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"ceiling: {left} messages unacknowledged, {len(failed)} failed "
                           f"({', '.join(sorted(set(failed)))})")
    return elapsed


def _consume(bootstrap: str, topic: str, partitions: int) -> tuple[int, int, float]:
    from alertbutler.subscribe.stream import AlertStream

    settings = AlertStream(f"kafka://{bootstrap}/{topic}").consumer_settings()
    consumer = Consumer({**settings, "enable.partition.eof": True, "log_level": 3})
    n = size = 0
    try:
        consumer.list_topics(topic, timeout=30)
        start = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                         for p in range(partitions)])
        done: set[int] = set()
        deadline = time.monotonic() + 600
        while len(done) < partitions and time.monotonic() < deadline:
            for msg in consumer.consume(2000, 0.5):
                err = msg.error()
                if err is None:
                    n += 1
                    size += len(msg.value())
                elif err.code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                else:
                    raise RuntimeError(f"ceiling: consume failed: {err}")
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return n, size, elapsed
