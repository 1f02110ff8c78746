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

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from alertbutler.alerts import (
    CONTROL_SUFFIX,
    AlertFormatError,
    Codec,
    control_topic,
    decode_message,
    default_codec,
)
from alertbutler.ingest.columns import AlertRowDecoder
from alertbutler.l1db import (
    RowBatch,
    RowError,
    VisitDetectorEnd,
    alert_problem,
    rows_from_alerts,
)

log = logging.getLogger(__name__)


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
    """Decode and sort a batch; the offsets cover every message, stored or dead-lettered.

    Alerts of a schema the columnar decoder compiles go to rows a schema at a time
    (:mod:`.columns`); everything else (markers, other kinds, a batch with a corrupt or
    impossible alert) is decoded message by message, which names each bad one."""
    start = time.perf_counter()
    next_offsets: dict[tuple[str, int], int] = {}
    for msg in messages:
        tp = (msg.topic, msg.partition)
        if msg.offset >= next_offsets.get(tp, 0):
            next_offsets[tp] = msg.offset + 1
    fast: list[RowBatch] = []
    n_fast = 0
    slow: list[Message] = []
    for decoder, group in _by_schema(messages, slow):
        rows = None
        try:
            rows = decoder.rows([m.value for m in group])  # type: ignore[misc]
        except RowError:
            pass  # some alert is impossible: the slow path sets it aside
        if rows is None:
            slow.extend(group)
        else:
            fast.append(rows)
            n_fast += len(group)
    sorted_batch = _sort_slowly(slow, next_offsets) if slow else SortedBatch(
        rows=RowBatch.build(), next_offsets=next_offsets)
    if fast:
        sorted_batch.rows = _merge([*fast, sorted_batch.rows])
        sorted_batch.n_alerts += n_fast
    sorted_batch.seconds = time.perf_counter() - start
    return sorted_batch


#: columnar decoders per wire schema header (None: that schema is decoded per message)
_DECODERS: dict[tuple[int, bytes], AlertRowDecoder | None] = {}


def _by_schema(messages: list[Message], slow: list[Message]
               ) -> list[tuple[AlertRowDecoder, list[Message]]]:
    """The alert-topic messages of each columnar alert schema; the rest go to ``slow``."""
    groups: dict[bytes, list[Message]] = {}
    for msg in messages:
        value = msg.value
        if value is None or msg.topic.endswith(CONTROL_SUFFIX):
            slow.append(msg)
        else:
            groups.setdefault(bytes(value[:5]), []).append(msg)
    out = []
    codec = default_codec()  # the ids on the wire are the codec's (a registry's, maybe)
    for header, group in groups.items():
        decoder = _cached_decoder(codec, header)
        if decoder is None:
            slow.extend(group)
        else:
            out.append((decoder, group))
    return out


def warm_up() -> None:
    """Make the current alert schema's columnar decoder ready (numba's compiled code loaded
    from its cache, or compiled on a first run) before the first batch needs it; run by the
    ingester beside its first connection to the broker."""
    codec = default_codec()
    header = b"\x00" + codec.wire_id("alert").to_bytes(4, "big")
    decoder = _cached_decoder(codec, header)
    if decoder is not None:
        decoder.rows([])


def _cached_decoder(codec: Codec, header: bytes) -> AlertRowDecoder | None:
    key = (id(codec), header)
    if key not in _DECODERS:
        _DECODERS[key] = _decoder_for(codec, header)
    return _DECODERS[key]


def _decoder_for(codec: Codec, header: bytes) -> AlertRowDecoder | None:
    try:
        info = codec.schema_of(header)
    except Exception:  # not a header we know: the slow path says what it is
        return None
    if info.kind != "alert":
        return None
    try:
        return AlertRowDecoder(info.parsed)
    except ImportError:  # numba missing: fastavro still works
        return None
    except Exception as exc:  # a schema the program compiler does not handle
        log.info("alerts of schema %d are decoded one by one: %s", info.id, exc)
        return None


def _merge(batches: list[RowBatch]) -> RowBatch:
    batches = [b for b in batches if b.n_rows]
    if len(batches) == 1:
        return batches[0]

    def cat(name: str) -> pa.Table | None:
        tables = [getattr(b, name) for b in batches if getattr(b, name).num_rows]
        return pa.concat_tables(tables) if tables else None

    return RowBatch.build(objects=cat("objects"), sources=cat("sources"),
                          forced_sources=cat("forced_sources"), ss_sources=cat("ss_sources"))


def _sort_slowly(messages: list[Message], next_offsets: dict[tuple[str, int], int]
                 ) -> SortedBatch:
    """Decode message by message (markers, other kinds, bad messages)."""
    alerts: list[tuple[Message, dict[str, Any]]] = []
    markers: list[VisitDetectorEnd] = []
    dead: list[DeadLetter] = []
    for msg in messages:
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
                       next_offsets=next_offsets)


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
