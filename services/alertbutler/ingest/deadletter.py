"""The dead-letter topic: malformed messages, kept byte for byte with their reason.

Produced with confluent-kafka's idempotent producer (aiokafka's idempotent producer fails
on the embedded broker). The original key and value are kept; headers say why and where from
(``dlt.reason``, ``dlt.error``, ``dlt.source.topic``, ``dlt.source.partition``,
``dlt.source.offset``, ``dlt.source.timestamp``) and the original headers follow. Dead letters
are flushed before the batch's database transaction commits, so a message is never marked
consumed without its dead letter; a crash between the two may send one twice (at least once),
which the source coordinates in the headers let a reader de-duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException, Producer

from alertbutler.errors import AlertbutlerError
from alertbutler.ingest.batch import DeadLetter

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

#: Longest reason kept in a header (the full text is also logged).
_MAX_REASON = 2000


class DeadLetterError(AlertbutlerError, RuntimeError):
    """Dead letters were not acknowledged: the batch must not be committed."""


class DeadLetterProducer:
    """Sends dead letters to one topic and waits for every acknowledgement."""

    def __init__(self, settings: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self._producer = Producer({**settings, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 5, "message.max.bytes": 16 * 1024 * 1024})

    def send(self, letters: Sequence[DeadLetter], *, timeout: float = 30.0) -> None:
        if not letters:
            return
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        for letter in letters:
            msg = letter.message
            headers = [
                ("dlt.reason", letter.reason[:_MAX_REASON].encode()),
                ("dlt.error", letter.error.encode()),
                ("dlt.source.topic", msg.topic.encode()),
                ("dlt.source.partition", str(msg.partition).encode()),
                ("dlt.source.offset", str(msg.offset).encode()),
                ("dlt.source.timestamp", str(msg.timestamp).encode()),
                *[(k, v) for k, v in (msg.headers or ())],
            ]
            try:
                self._producer.produce(self.topic, value=msg.value, key=msg.key,
                                       headers=headers, on_delivery=on_delivery)
            except BufferError:
                self._producer.flush(timeout)
                self._producer.produce(self.topic, value=msg.value, key=msg.key,
                                       headers=headers, on_delivery=on_delivery)
            except KafkaException as exc:
                raise DeadLetterError(f"cannot queue a dead letter: {exc}") from exc
        left = self._producer.flush(timeout)
        if left or failures:
            raise DeadLetterError(
                f"{left} dead letter(s) unacknowledged after {timeout} s, "
                f"{len(failures)} refused ({'; '.join(failures[:3])})")

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
