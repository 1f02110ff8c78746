"""``alertbutler ingest status``: lag per partition, rows/s, last ingested visit-detector.

The end of each partition is the high watermark carried in a FETCH response, never a
ListOffsets answer (the embedded broker gets "latest" wrong). A throw-away consumer that
never commits is assigned every partition at its start (small fetches: the records are
dropped) and polled until each partition has been fetched once. A position beyond the end
(the broker or the topic lost its messages: the ingester stops reading there) is reported as
such, never as lag 0.
Positions come from the L1 database (where the ingester resumes); Kafka's committed offsets
are shown beside them. Rows/s is the difference of the database's totals over ``interval``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from alertbutler.kafka.factory import make_admin, make_consumer, make_reader
from alertbutler.l1db import L1db


@dataclass(frozen=True, kw_only=True)
class PartitionLag:
    topic: str
    partition: int
    position: int | None  # next offset the ingester will read (from the L1 database)
    committed: int | None  # Kafka's committed offset of the group
    high_watermark: int | None
    lag: int | None  # None when unknown or beyond the end
    #: the stored position is beyond the partition's end: nothing is ingested from it until
    #: ``alertbutler ingest reset-offsets``
    beyond_end: bool = False


@dataclass(frozen=True, kw_only=True)
class IngestStatus:
    group: str
    db: str
    partitions: tuple[PartitionLag, ...]
    total_lag: int | None
    messages_per_s: float
    rows_per_s: float
    n_messages: int
    n_rows: int
    last_commit_age_s: float | None
    last_ingested: dict[str, Any] | None

    @property
    def beyond_end(self) -> list[PartitionLag]:
        return [p for p in self.partitions if p.beyond_end]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "beyond_end": [f"{p.topic}:{p.partition}"
                                               for p in self.beyond_end]}


def high_watermarks(confluent: Mapping[str, object], positions: dict[tuple[str, int], int],
                    *, timeout: float = 10.0) -> tuple[dict[tuple[str, int], int],
                                                       dict[tuple[str, int], int | None]]:
    """High watermark of each partition from fetch responses, and the group's committed
    offsets (``committed`` is read with the group id in ``confluent``, if any)."""
    group = confluent.get("group.id")
    consumer = make_reader(confluent, **{"enable.partition.eof": True,
                                         "max.partition.fetch.bytes": 65536})
    committed: dict[tuple[str, int], int | None] = {}
    try:
        tps = [TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in positions]
        consumer.assign(tps)
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < len(tps) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                topic, partition = msg.topic(), msg.partition()
                if topic is not None and partition is not None:
                    seen.add((topic, partition))
        marks: dict[tuple[str, int], int] = {}
        for tp in tps:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and (tp.topic, tp.partition) in seen:
                marks[(tp.topic, tp.partition)] = high
        if group:
            reader = make_consumer(confluent, None, str(group))
            try:
                for tp in reader.committed([TopicPartition(t, p) for t, p in positions],
                                           timeout=timeout):
                    committed[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
            finally:
                reader.close()
        return marks, committed
    finally:
        consumer.close()


def ingest_status(*, db_url: str, group: str, topics: tuple[str, ...],
                  confluent: Mapping[str, object], interval: float = 2.0) -> IngestStatus:
    """Sample the ingester's state (two database samples ``interval`` apart for rates)."""
    with L1db(db_url) as db:
        before = db.consumer_progress(group)
        t0 = time.monotonic()
        stored = db.consumer_offsets(group)
        partitions = _partitions(confluent, topics)
        positions = {tp: (stored[tp].next_offset if tp in stored else 0) for tp in partitions}
        marks, committed = high_watermarks({**confluent, "group.id": group}, positions)
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
        after = db.consumer_progress(group)
        elapsed = max(time.monotonic() - t0, 1e-6)
        info = db.info()
    lags = []
    for (topic, partition), position in sorted(positions.items()):
        high = marks.get((topic, partition))
        beyond = high is not None and position > high
        lags.append(PartitionLag(
            topic=topic, partition=partition,
            position=stored[(topic, partition)].next_offset if (topic, partition) in stored
            else None, committed=committed.get((topic, partition)), high_watermark=high,
            lag=None if high is None or beyond else high - position, beyond_end=beyond))
    known = [p.lag for p in lags if p.lag is not None]
    last = None if info.last_ingested is None else {
        "visit": info.last_ingested.visit, "detector": info.last_ingested.detector,
        "completed_at": info.last_ingested_at}
    return IngestStatus(
        group=group, db=info.url, partitions=tuple(lags),
        total_lag=sum(known) if len(known) == len(lags) else None,
        messages_per_s=(after.n_messages - before.n_messages) / elapsed,
        rows_per_s=(after.n_rows - before.n_rows) / elapsed,
        n_messages=after.n_messages, n_rows=after.n_rows,
        last_commit_age_s=None if after.updated_at is None else time.time() - after.updated_at,
        last_ingested=last)


def _partitions(confluent: Mapping[str, object], topics: tuple[str, ...]) -> list[tuple[str, int]]:
    metadata = make_admin(confluent).list_topics(timeout=10)
    found = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic!r} not found on the broker")
        found += [(topic, p) for p in sorted(meta.partitions)]
    return found


def format_status(status: IngestStatus) -> str:
    lines = [f"group {status.group}  database {status.db}",
             f"{'topic':<24}{'partition':>10}{'position':>12}{'committed':>12}"
             f"{'high water':>12}{'lag':>10}"]
    for p in status.partitions:
        lag = "BEYOND END" if p.beyond_end else _n(p.lag)
        lines.append(f"{p.topic:<24}{p.partition:>10}{_n(p.position):>12}{_n(p.committed):>12}"
                     f"{_n(p.high_watermark):>12}{lag:>10}")
    lines.append(f"total lag {_n(status.total_lag)}; {status.messages_per_s:,.0f} messages/s, "
                 f"{status.rows_per_s:,.0f} rows/s; {status.n_messages:,} messages and "
                 f"{status.n_rows:,} rows ingested in all")
    for p in status.beyond_end:
        lines.append(f"ERROR {p.topic}:{p.partition}: stored position {p.position:,} is beyond "
                     f"the partition's end {p.high_watermark:,} (the broker or the topic lost "
                     "its messages): nothing is ingested from it until 'alertbutler ingest "
                     f"reset-offsets --topic {p.topic} --partition {p.partition}'")
    if status.last_commit_age_s is not None:
        lines.append(f"last commit {status.last_commit_age_s:.1f} s ago")
    last = status.last_ingested
    lines.append("last ingested visit-detector: " + (
        "none" if last is None else f"visit {last['visit']} detector {last['detector']}"))
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
