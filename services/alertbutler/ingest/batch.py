"""One batch of Kafka messages -> L1 rows, end markers and dead letters (no I/O here).

Sorting happens per message, so one bad message never costs its neighbours: bytes that do not
decode, a kind that has no business on an alert or control topic, a marker that names another
partition or topic and an alert with impossible values (dec = 95) each become a dead letter
with a reason; every other message of the batch is stored.

End markers come from the alert topic's control topic (out of band: they name the alert topic
and the last offset of the visit-detector's alerts on each partition) or, on topics written by
earlier versions, inline on the alert partition they speak for, after its alerts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertbutler.alerts import CONTROL_SUFFIX, AlertFormatError, control_topic, decode_message
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
        on_control = msg.topic.endswith(CONTROL_SUFFIX)
        if decoded.kind == "alert" and not on_control:
            alerts.append((msg, decoded.record))
        elif decoded.kind == "visit_detector_end":
            marker, why = _marker(msg, decoded.record)
            if marker is None:
                error = ("MarkerPartitionError" if "wrong partition" in why
                         else "MarkerPlacementError")
                dead.append(DeadLetter(msg, why, error))
                continue
            markers.append(marker)
        else:
            where = "a control" if on_control else "an alert"
            dead.append(DeadLetter(msg, f"a {decoded.kind} message (schema id "
                                   f"{decoded.schema_id}) does not belong on {where} topic",
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


def _marker(msg: Message, record: dict[str, Any]) -> tuple[VisitDetectorEnd | None, str]:
    """The marker of a message, or None and why it cannot be one where it was read."""
    topic = record.get("topic")  # absent in schema 1.0: inline
    if topic is None:
        if msg.topic.endswith(CONTROL_SUFFIX):
            return None, (f"end marker without an alert topic read from control topic "
                          f"{msg.topic}: the publisher sent an inline marker there")
        if record["partition"] != msg.partition:
            return None, (f"end marker for partition {record['partition']} read from "
                          f"partition {msg.partition}: the publisher sent it to the wrong "
                          "partition")
        return VisitDetectorEnd(visit=record["visit"], detector=record["detector"],
                                partition=msg.partition, n_partitions=record["n_partitions"],
                                n_alerts=record["n_alerts"],
                                n_alerts_total=record.get("n_alerts_total")), ""
    if msg.topic != control_topic(topic):
        return None, (f"end marker for alert topic {topic} read from {msg.topic}: it belongs "
                      f"on {control_topic(topic)}")
    last = record.get("last_offset")
    if record["n_alerts"] > 0 and last is None:
        return None, (f"end marker of {record['n_alerts']} alerts on {topic}"
                      f"[{record['partition']}] names no last offset")
    return VisitDetectorEnd(visit=record["visit"], detector=record["detector"],
                            partition=record["partition"], n_partitions=record["n_partitions"],
                            n_alerts=record["n_alerts"], topic=topic,
                            last_offset=last if record["n_alerts"] > 0 else None,
                            n_alerts_total=record.get("n_alerts_total")), ""
