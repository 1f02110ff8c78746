"""One batch of Kafka messages -> L1 rows, end markers and dead letters (no I/O here).

Sorting happens per message, so one bad message never costs its neighbours: bytes that do not
decode, a kind that has no business on an alert topic, a marker that names another partition
and an alert with impossible values (dec = 95) each become a dead letter with a reason; every
other message of the batch is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertbutler.alerts import AlertFormatError, decode_message
from alertbutler.l1db import (
    RowBatch,
    RowError,
    VisitDetectorEnd,
    alert_problem,
    rows_from_alerts,
)


class Message(Protocol):
    """What a batch needs of a consumed record (aiokafka's ConsumerRecord has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Any


@dataclass(frozen=True)
class DeadLetter:
    """A message that cannot be ingested, and why (one line an operator can act on)."""

    message: Message
    reason: str
    error: str


@dataclass
class SortedBatch:
    """A batch sorted into what to store and what to set aside."""

    rows: RowBatch
    markers: list[VisitDetectorEnd] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    n_alerts: int = 0
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    seconds: float = 0.0  # time spent sorting


def sort_batch(messages: list[Message]) -> SortedBatch:
    """Decode and sort a batch; the offsets cover every message, stored or dead-lettered."""
    start = time.perf_counter()
    alerts: list[tuple[Message, dict[str, Any]]] = []
    markers: list[VisitDetectorEnd] = []
    dead: list[DeadLetter] = []
    next_offsets: dict[tuple[str, int], int] = {}
    for msg in messages:
        tp = (msg.topic, msg.partition)
        next_offsets[tp] = max(next_offsets.get(tp, 0), msg.offset + 1)
        try:
            decoded = decode_message(msg.value)  # type: ignore[arg-type]
        except AlertFormatError as exc:
            dead.append(DeadLetter(msg, str(exc), type(exc).__name__))
            continue
        if decoded.kind == "alert":
            alerts.append((msg, decoded.record))
        elif decoded.kind == "visit_detector_end":
            record = decoded.record
            if record["partition"] != msg.partition:
                dead.append(DeadLetter(
                    msg, f"end marker for partition {record['partition']} read from partition "
                    f"{msg.partition}: the publisher sent it to the wrong partition",
                    "MarkerPartitionError"))
                continue
            markers.append(VisitDetectorEnd(
                visit=record["visit"], detector=record["detector"], partition=msg.partition,
                n_partitions=record["n_partitions"], n_alerts=record["n_alerts"]))
        else:
            dead.append(DeadLetter(msg, f"a {decoded.kind} message (schema id "
                                   f"{decoded.schema_id}) does not belong on an alert topic",
                                   "UnexpectedKindError"))
    try:
        rows = rows_from_alerts(record for _, record in alerts)
    except RowError:
        # Some alert is impossible: find which, set it aside, store the rest.
        kept = []
        for msg, record in alerts:
            problem = alert_problem(record)
            if problem is None:
                kept.append((msg, record))
            else:
                dead.append(DeadLetter(msg, problem, "RowError"))
        alerts = kept
        rows = rows_from_alerts(record for _, record in alerts)
    return SortedBatch(rows=rows, markers=markers, dead=dead, n_alerts=len(alerts),
                       next_offsets=next_offsets, seconds=time.perf_counter() - start)
