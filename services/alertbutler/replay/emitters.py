"""What the scheduler emits: recorded Kafka messages and raw arrivals.

Both do what the live system does, so the pipeline cannot tell a replay from a night: the
nextVisit event is the recorded message, byte for byte, published with acks=all to the
replay's nextVisit topic; a raw lands in the landing area under the camera's layout with a
temporary name and an atomic rename (``alertbutler.prompt.raws.deliver_raw``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer

from alertbutler.prompt.raws import deliver_raw
from alertbutler.replay.errors import RecordingError, StreamError
from alertbutler.replay.recording import ScheduledEvent


class KafkaEmitter:
    """Publish recorded messages by index, waiting for each acknowledgement."""

    def __init__(self, settings: Mapping[str, Any], topic: str,
                 messages: Sequence[tuple[bytes | None, bytes]], *,
                 timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.messages = messages
        self.timeout_s = timeout_s
        self._producer = Producer(dict(settings))
        self.sent = 0

    def __call__(self, event: ScheduledEvent) -> None:
        if event.index is None or not 0 <= event.index < len(self.messages):
            raise RecordingError(self.topic, f"schedule entry for group {event.group_id} "
                                 f"points at message {event.index}, which is not recorded")
        key, value = self.messages[event.index]
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        self._producer.produce(self.topic, value, key, on_delivery=on_delivery)
        if self._producer.flush(self.timeout_s) != 0 or errors:
            cause = errors[0].str() if errors else "no acknowledgement in time"
            raise StreamError(f"nextVisit for group {event.group_id} was not acknowledged by "
                              f"{self.topic!r}: {cause}", delivered=self.sent, failed=1)
        self.sent += 1

    def close(self) -> None:
        self._producer.flush(5.0)


class RawDeliverer:
    """Land the recorded raws in the replay's landing area."""

    def __init__(self, recording_root: Path, landing: Path, instrument: str) -> None:
        self.root = recording_root
        self.landing = landing
        self.instrument = instrument
        self.delivered: list[tuple[str, int, float]] = []  # group, detector, arrival time

    def __call__(self, event: ScheduledEvent) -> None:
        if event.file is None or event.detector is None:
            raise RecordingError(self.root, f"raw entry for group {event.group_id} names no "
                                 "file or detector")
        source = self.root / event.file
        if not source.is_file():
            raise RecordingError(source, "raw missing from the recording")
        _, arrived = deliver_raw(source, self.landing, self.instrument, event.group_id,
                                 event.detector)
        self.delivered.append((event.group_id, event.detector, arrived))
