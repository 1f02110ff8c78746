"""``AlertStream``: one client for every start position, sync and async, with honest commits.

Partitions are assigned by the client itself (no group rebalance): the group id is only the
name under which progress is committed and from which ``committed`` resumes. That keeps
opening fast on any broker and makes "where do I start" a decision of the caller, never of
``auto.offset.reset`` (whose ``latest`` the embedded broker gets wrong).

Offsets are committed only for alerts the caller has finished with: ``commit()`` commits
everything handed out so far; with ``commit="after"`` an alert (or a batch) counts as
finished when the caller asks for the next one, and what is finished is committed every
``commit_interval`` seconds and on a clean close. An exception in the caller's loop leaves
the alert it was working on uncommitted, so it is read again on resume (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as TP

from alertbutler.config import Config, load_config
from alertbutler.kafka import (
    access_error,
    confluent_settings,
    factory,
    group_id,
    is_refusal,
    probe_access,
)
from alertbutler.kafka.transactions import bounded_call
from alertbutler.subscribe import seek
from alertbutler.subscribe.errors import SubscribeError
from alertbutler.subscribe.positions import (
    Committed,
    EndPosition,
    StartPosition,
    parse_end,
    parse_start,
)
from alertbutler.subscribe.url import StreamURL

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from alertbutler.alerts.writers import WriterSchemas

log = logging.getLogger(__name__)

#: bytes -> decoded record, or None for a message that is not an alert (skipped).
#: bytes -> the record as this stream delivers it (a dict, the bytes, a projection), or None
#: for a message that is not an alert
Decoder = Callable[[bytes], object]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAlert:
    """One alert as read: the decoded record and where it came from (raw bytes kept)."""

    record: Any
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes

    def __getitem__(self, name: str) -> Any:  # alert["diaSource"] reads the record
        return self.record[name]


def default_decoder() -> Decoder:
    """Full decoding with the alerts library; non-alert kinds (end-of-visit markers) skipped."""
    from alertbutler.alerts import decode_message

    def decode(value: bytes) -> dict[str, Any] | None:
        decoded = decode_message(value)
        return decoded.record if decoded.kind == "alert" else None

    return decode


def alert_bytes_decoder(writers: WriterSchemas | None = None) -> Decoder:
    """Keep alerts as their message bytes (no decoding); skip other kinds (end-of-visit
    markers). A message whose header cannot be read, or whose schema ``writers``
    (:class:`~alertbutler.alerts.writers.WriterSchemas`: ours, Rubin's, replayed archives')
    does not know, is kept, for a later decoder to report with the codec's own error."""
    from alertbutler.alerts import split_header
    from alertbutler.alerts.writers import default_writers

    kinds: dict[int, bool] = {}
    writers = writers or default_writers()

    def decode(value: bytes) -> bytes | None:
        try:
            schema_id, _ = split_header(value)
            is_alert = kinds.get(schema_id)
            if is_alert is None:
                is_alert = kinds[schema_id] = writers.get(schema_id).kind == "alert"
        except Exception:
            return value
        return value if is_alert else None

    return decode


def raw_decoder(value: bytes) -> bytes:
    """Keep the message bytes as they are (the wire format) without decoding."""
    return value


class AlertStream:
    """A stream of alerts from one ``kafka://`` URL; see :func:`open_stream`."""

    def __init__(self, url: str | StreamURL, *, start: object = None,
                 end: object | None = None, group: str | None = None,
                 commit: Literal["manual", "after"] = "manual",
                 commit_interval: float = 5.0, decoder: Decoder | None = None,
                 config: Config | None = None, settings: Mapping[str, Any] | None = None,
                 idle_timeout: float | None = None, poll_timeout: float = 0.5,
                 open_timeout: float = 30.0, on_error: Literal["raise", "skip"] = "raise",
                 ) -> None:
        self.url = url if isinstance(url, StreamURL) else StreamURL.parse(url)
        self._config = config or load_config(env={})
        self.group = group_id(self._config, group) if group else None
        if start is None:
            start = Committed() if group else "earliest"
        self.start: StartPosition = parse_start(start)
        self.end: EndPosition | None = parse_end(end) if end is not None else None
        if isinstance(self.start, Committed) and not self.group:
            raise SubscribeError("start 'committed' needs a group")
        if commit not in ("manual", "after"):
            raise ValueError(f"commit must be 'manual' or 'after', not {commit!r}")
        self.commit_mode = commit
        self.commit_interval = commit_interval
        self.idle_timeout = idle_timeout
        self.poll_timeout = poll_timeout
        self.open_timeout = open_timeout
        self.on_error = on_error
        self._decode = decoder
        self._settings = dict(settings or {})
        self._consumer: Consumer | None = None
        self._buffer: deque[StreamAlert] = deque()
        self._pending: list = []  # fetched, not yet decoded (after a decode error)
        self._position: dict[seek.Partition, int] = {}   # next offset to hand out
        self._ends: dict[seek.Partition, int] | None = None
        self._handed: dict[seek.Partition, int] = {}     # next offset after what was handed out
        #: (topic, partition, offset of a buffered alert) -> next offset after the non-alert
        #: messages (markers) that follow it: handing the alert out consumes them too
        self._skips_after: dict[tuple[str, int, int], int] = {}
        self._finished: dict[seek.Partition, int] = {}   # next offset after finished alerts
        self._committed: dict[seek.Partition, int] = {}
        self._last_commit = time.monotonic()
        self._idle_since = time.monotonic()
        self.skipped = 0
        self.received = 0

    def __repr__(self) -> str:  # never shows settings: they may hold credentials
        return f"AlertStream({str(self.url)!r}, start={self.start!r}, group={self.group!r})"

    # -- life cycle -----------------------------------------------------------------------

    def consumer_settings(self) -> dict[str, Any]:
        """The librdkafka settings of the consumer: the configuration's client table
        (security keys included) under this stream's own consumer settings."""
        return confluent_settings(self._config, self.url.bootstrap, **{
            "group.id": self.group or f"alertbutler-subscribe-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 20,
            "max.partition.fetch.bytes": 4_000_000,
            "fetch.max.bytes": 32_000_000,
            "enable.partition.eof": False,
            # a topic written in transactions (a filtered topic on Apache Kafka) shows only
            # what was committed: never the alerts of a transaction aborted by a crash
            "isolation.level": "read_committed",
            "session.timeout.ms": self._config.kafka.session_timeout_ms,
            **self._settings,
        })

    def open(self) -> AlertStream:
        """Connect, resolve the start (and end) offsets from fetch responses, and assign."""
        if self._consumer is not None:
            return self
        if self._decode is None:
            self._decode = default_decoder()
        settings = self.consumer_settings()
        if str(settings.get("security.protocol", "PLAINTEXT")).upper() != "PLAINTEXT":
            # a secured broker: a wrong password or a forbidden group is named at once,
            # instead of a timeout after open_timeout naming something else
            probe_access(settings, topics=self.url.topics,
                         group=settings["group.id"] if self.group else None,
                         timeout=self.open_timeout)
        settings["error_cb"] = _log_client_error
        consumer = factory.make_reader(settings, **{"group.id": settings["group.id"]})
        try:
            parts = seek.partitions_of(consumer, self.url.topics, self.open_timeout,
                                       settings=self._settings_for_messages())
            marks = seek.fetch_watermarks(consumer, parts, self.open_timeout)
            starts = seek.resolve_start(consumer, self.start, marks, self.open_timeout)
            self._ends = seek.resolve_end(consumer, self.end, marks, self.open_timeout)
            consumer.assign([TP(t, p, off) for (t, p), off in starts.items()])
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        self._position = dict(starts)
        self._handed = dict(starts)
        self._skips_after = {}
        self._finished = dict(starts)
        self._committed = {}
        self.watermarks = marks
        self._idle_since = time.monotonic()
        log.info("stream opened", extra={"url": str(self.url), "start": repr(self.start),
                                         "group": self.group, "partitions": len(parts)})
        return self

    def close(self) -> None:
        """Commit what is finished (``commit="after"``) and disconnect."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            if self.commit_mode == "after" and self.group:
                self._commit(consumer, self._finished)
        finally:
            consumer.close()

    def __enter__(self) -> AlertStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cluster_id(self) -> str:
        """The Kafka cluster id of the broker read ("" when it reports none)."""
        meta = self._require_open().list_topics(timeout=self.open_timeout)
        return meta.cluster_id or ""

    # -- reading ----------------------------------------------------------------------------

    @property
    def ends(self) -> dict[tuple[str, int], int] | None:
        """The exclusive end offset of each partition (None: an endless stream)."""
        return None if self._ends is None else dict(self._ends)

    @property
    def at_end(self) -> bool:
        """True once every partition reached its end offset (never without an end)."""
        if self._ends is None:
            return False
        return all(self._position.get(p, 0) >= e for p, e in self._ends.items())

    def read_batch(self, max_alerts: int = 500, timeout: float | None = None
                   ) -> list[StreamAlert]:
        """Up to ``max_alerts`` alerts, waiting at most ``timeout`` seconds for the first.

        An empty list means nothing arrived in time, or the window's end was reached
        (check :attr:`at_end`). With ``commit="after"``, asking for a batch finishes the
        previous one.
        """
        self._finish_previous()
        batch = self._fill(max_alerts, timeout)
        self._hand_out(batch)
        return batch

    def batches(self, max_alerts: int = 500) -> Iterator[list[StreamAlert]]:
        """Non-empty batches until the end (or ``idle_timeout`` without an alert)."""
        while True:
            batch = self.read_batch(max_alerts)
            if batch:
                yield batch
            elif self._exhausted():
                self._finish_previous()
                return

    def __iter__(self) -> Iterator[StreamAlert]:
        while True:
            self._maybe_commit()
            batch = self._fill(500, None)
            if not batch and self._exhausted():
                return
            for alert in batch:
                self._hand_out((alert,))
                yield alert
                # resumed: the caller asked for the next alert, so it finished with this one
                self._mark_finished(alert)

    async def __aiter__(self) -> AsyncIterator[StreamAlert]:
        """``async for alert in stream``: fetches run in a thread, the loop stays free."""
        while True:
            self._maybe_commit()
            batch = await asyncio.to_thread(self._fill, 500, None)
            if not batch and self._exhausted():
                return
            for alert in batch:
                self._hand_out((alert,))
                yield alert
                self._mark_finished(alert)

    def _fill(self, max_alerts: int, timeout: float | None) -> list[StreamAlert]:
        consumer = self._require_open()
        if self._pending:
            pending, self._pending = self._pending, []
            self._take(pending)
        timeout = self.poll_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(self._buffer) < max_alerts and not self.at_end:
            wait = max(0.0, deadline - time.monotonic()) if not self._buffer else 0.0
            messages = consumer.consume(num_messages=max(max_alerts - len(self._buffer), 64),
                                        timeout=wait)
            self._take(messages)
            if not messages:
                self._pass_hidden(consumer)
                if self._buffer or time.monotonic() >= deadline:
                    break
        if self._buffer:
            self._idle_since = time.monotonic()
        return [self._buffer.popleft() for _ in range(min(max_alerts, len(self._buffer)))]

    def _exhausted(self) -> bool:
        """No more alerts will come: the end was reached, or the stream was idle too long."""
        if self._buffer:
            return False
        if self.at_end:
            return True
        return self.idle_timeout is not None and \
            time.monotonic() - self._idle_since >= self.idle_timeout

    # -- progress ---------------------------------------------------------------------------

    def commit(self, offsets: Mapping[tuple[str, int], int] | None = None) -> None:
        """Commit every alert handed out so far (the caller says it has finished with them),
        or only up to ``offsets`` (next offset per partition, e.g. an earlier
        :attr:`positions`) for a caller that finishes batches out of its reading order."""
        consumer = self._require_open()
        if not self.group:
            raise SubscribeError("commit() needs a group: open the stream with group=...")
        self._commit(consumer, self._finish(offsets))

    def _finish(self, offsets: Mapping[tuple[str, int], int] | None
                ) -> dict[seek.Partition, int]:
        """Mark as finished everything handed out, or up to ``offsets``."""
        if offsets is None:
            self._finished.update(self._handed)
        else:
            for part, offset in offsets.items():
                if offset > self._handed.get(part, 0):
                    raise SubscribeError(f"cannot commit {part} at {offset}: beyond what was "
                                         "handed out")
                self._finished[part] = max(self._finished.get(part, 0), offset)
        return self._finished

    def send_offsets_to_transaction(self, producer: Producer,
                                    offsets: Mapping[tuple[str, int], int] | None = None,
                                    timeout: float = 60.0) -> None:
        """Like :meth:`commit`, but inside ``producer``'s open transaction: the offsets
        take effect if and only if that transaction commits, together with what it
        produced (exactly-once forwarding on a broker with transactions). Bounded: librdkafka
        can block here far past ``timeout`` after a broker restart, and then
        :class:`~alertbutler.kafka.transactions.CallStuck` is raised (the producer is stuck
        and must never be used again)."""
        consumer = self._require_open()
        if not self.group:
            raise SubscribeError("committing needs a group: open the stream with group=...")
        finished = self._finish(offsets)
        bounded_call(producer.send_offsets_to_transaction,
                     [TP(t, p, o) for (t, p), o in finished.items()],
                     consumer.consumer_group_metadata(), timeout, timeout=timeout + 10.0)

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset this stream will hand out, per partition."""
        return dict(self._handed)

    @property
    def lag_by_partition(self) -> dict[tuple[str, int], int]:
        """Messages not yet consumed, per partition: the high watermark carried by the latest
        fetch response (never ListOffsets, wrong on the embedded broker) minus the position
        after the last message handed out or passed over. Markers and skipped messages are
        consumed once nothing before them is still buffered, so the lag reaches 0."""
        consumer = self._require_open()
        lags: dict[tuple[str, int], int] = {}
        for part, pos in self._handed.items():
            high = consumer.get_watermark_offsets(TP(*part), cached=True)[1]
            if high < 0:
                high = self.watermarks[part].high
            lags[part] = max(0, high - pos)
        return lags

    @property
    def lag(self) -> int:
        """Messages behind the end of the stream, summed over partitions."""
        return sum(self.lag_by_partition.values())

    # -- internals --------------------------------------------------------------------------

    def _settings_for_messages(self) -> dict[str, Any]:
        """The user and mechanism an access error names (never the password)."""
        conf = self.consumer_settings()
        return {k: conf[k] for k in ("sasl.username", "sasl.mechanism") if k in conf}

    def _require_open(self) -> Consumer:
        if self._consumer is None:
            raise SubscribeError("the stream is not open: use it in a with block or call open()")
        return self._consumer

    def _take(self, messages: list) -> None:
        decode = self._decode
        assert decode is not None
        ends = self._ends
        for j, msg in enumerate(messages):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if is_refusal(err):
                    raise access_error(err, settings=self._settings_for_messages(),
                                       doing=f"reading topic {msg.topic()!r}")
                raise SubscribeError(f"consume failed: {err}")
            part = (msg.topic(), msg.partition())
            offset = msg.offset()
            if offset < self._position.get(part, 0):
                continue  # a stale message from before a seek
            if ends is not None and offset >= ends[part]:
                self._position[part] = max(self._position[part], ends[part])
                continue
            self._position[part] = offset + 1
            value = msg.value()
            try:
                record = decode(value)
            except Exception as exc:
                if self.on_error == "skip":
                    self.skipped += 1
                    log.warning("undecodable message skipped", extra={
                        "topic": part[0], "partition": part[1], "offset": offset,
                        "error": str(exc)})
                    record = None
                else:  # the messages after it are kept for the next read
                    self._pending = list(messages[j + 1:])
                    raise SubscribeError(f"{part[0]}[{part[1]}] offset {offset}: "
                                         f"cannot decode: {exc}") from exc
            if record is None:  # not an alert (end-of-visit marker, or skipped)
                self._skip_over(part, offset + 1)
                continue
            self.received += 1
            self._buffer.append(StreamAlert(
                record=record, topic=part[0], partition=part[1], offset=offset,
                timestamp_ms=msg.timestamp()[1], key=msg.key(), value=value))

    def _pass_hidden(self, consumer: Consumer) -> None:
        """Move past records the client consumed but never hands out: transaction markers
        and aborted messages. A topic written in transactions ends with a commit marker, so
        without this the end of the window (and a lag of 0) would never be reached. The
        client's position counts them; it is a local read, no request to the broker."""
        parts = [p for p, pos in self._position.items()
                 if self._ends is None or pos < self._ends.get(p, pos)]
        if not parts:
            return
        for tp in consumer.position([TP(*p) for p in parts]):
            part = (tp.topic, tp.partition)
            pos = tp.offset
            if self._ends is not None:
                pos = min(pos, self._ends[part])
            if pos > self._position[part]:
                self._position[part] = pos
                self._skip_over(part, pos)

    def _skip_over(self, part: seek.Partition, next_offset: int) -> None:
        """A message nobody will see counts as handed out once nothing is buffered before it:
        at once, or when the last alert buffered before it on its partition is handed out."""
        for alert in reversed(self._buffer):
            if (alert.topic, alert.partition) == part:
                self._skips_after[(*part, alert.offset)] = next_offset
                return
        self._handed[part] = max(self._handed.get(part, 0), next_offset)

    def _hand_out(self, batch: Iterable[StreamAlert]) -> None:
        skips = self._skips_after
        for alert in batch:
            part = (alert.topic, alert.partition)
            after = skips.pop((*part, alert.offset), alert.offset + 1) if skips else \
                alert.offset + 1
            self._handed[part] = max(self._handed.get(part, 0), after)

    def _finish_previous(self) -> None:
        """With ``commit="after"``, asking for more means what was handed out is finished."""
        if self.commit_mode != "after":
            return
        self._finished.update(self._handed)
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        if self.commit_mode == "after" and self.group and self._consumer is not None and \
                time.monotonic() - self._last_commit >= self.commit_interval:
            self._commit(self._consumer, self._finished)

    def _mark_finished(self, alert: StreamAlert) -> None:
        if self.commit_mode != "after":
            return
        part = (alert.topic, alert.partition)
        self._finished[part] = max(self._finished.get(part, 0), alert.offset + 1)

    def _commit(self, consumer: Consumer, offsets: Mapping[seek.Partition, int]) -> None:
        todo = {p: o for p, o in offsets.items() if self._committed.get(p) != o}
        self._last_commit = time.monotonic()
        if not todo:
            return
        try:
            consumer.commit(offsets=[TP(t, p, o) for (t, p), o in todo.items()],
                            asynchronous=False)
        except KafkaException as exc:
            if is_refusal(exc):
                raise access_error(exc, settings=self._settings_for_messages(),
                                   doing="committing to consumer group "
                                   f"{self.consumer_settings()['group.id']!r}") from None
            raise
        self._committed.update(todo)
        log.debug("committed", extra={"group": self.group, "partitions": len(todo)})


def _log_client_error(err: KafkaError) -> None:
    log.warning("kafka client: %s", err.str())


def open_stream(url: str | StreamURL, **options: Any) -> AlertStream:
    """A stream of alerts: ``with open_stream("kafka://host:9092/alerts", start="latest") as s``.

    Options (keyword-only): ``start`` (earliest, latest, committed, ``last:N``, a time as
    ISO text, an MJD or a datetime; default ``committed`` with a group, else ``earliest``),
    ``end`` (a time, or ``"end"`` for the high watermark at open), ``group``, ``commit``
    (``"manual"`` or ``"after"``), ``decoder``, ``config``, ``settings`` (librdkafka keys),
    ``idle_timeout``. A ``start`` given as a ``(start, end)`` pair is a window.
    """
    start = options.get("start")
    if isinstance(start, tuple | list) and len(start) == 2:
        if options.get("end") is not None:
            raise SubscribeError("give the window as start=(start, end) or start= and end=, "
                                 "not both")
        options = {**options, "start": start[0], "end": start[1]}
    return AlertStream(url, **options)
