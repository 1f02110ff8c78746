"""The dead-letter topic: malformed messages, kept byte for byte with their reason.

Produced with confluent-kafka's idempotent producer (aiokafka's idempotent producer fails
on the embedded broker). The original key and value are kept; the headers follow the one
scheme of every dead-letter topic (:mod:`alertbutler.kafka.deadletter`: ``dlt.reason``,
``dlt.error``, ``dlt.service``, ``dlt.source.*``), then the original headers. Dead letters
are acknowledged before the batch's database transaction commits, so a message is never
marked consumed without its dead letter; a crash between the two may send one twice (at
least once), which the source coordinates in the headers let a reader de-duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alertbutler.ingest.batch import DeadLetter
from alertbutler.kafka import DeadLetterInfo, DeliveryError, dead_letter, produce_acknowledged
from alertbutler.kafka.factory import make_producer

#: A dead letter was not acknowledged: the batch must not be committed (the one error of an
#: acknowledged produce).
DeadLetterError = DeliveryError

SERVICE = "alertbutler-ingest"


class DeadLetterProducer:
    """Sends dead letters to one topic and waits for every acknowledgement."""

    def __init__(self, settings: Mapping[str, object], topic: str) -> None:
        self.topic = topic
        self._producer = make_producer(settings, **{"message.max.bytes": 16 * 1024 * 1024})

    def send(self, letters: Sequence[DeadLetter], *, timeout: float = 30.0) -> None:
        """Produce ``letters``; raise :class:`DeliveryError` unless all were acknowledged."""
        if not letters:
            return
        produce_acknowledged(self._producer, [
            dead_letter(self.topic, letter.message.key, letter.message.value, DeadLetterInfo(
                reason=letter.reason, error=letter.error, service=SERVICE,
                topic=letter.message.topic, partition=letter.message.partition,
                offset=letter.message.offset, timestamp=letter.message.timestamp),
                letter.message.headers)
            for letter in letters], timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
