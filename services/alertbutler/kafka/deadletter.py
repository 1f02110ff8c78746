"""Dead letters: one header scheme on every dead-letter topic, built and read here.

A dead letter keeps the original key and value byte for byte; its headers say why and where
from, the same whichever service set it aside (the prompt worker, the fan-out, the ingester),
so one reader serves the whole topic:

==========================  =========================================================
``dlt.reason``              why, in words (at most 2,000 characters; the log has it all)
``dlt.error``               the error's class (``DecodeError``, ``gave-up``...)
``dlt.service``             who set it aside (``alertbutler-worker``...)
``dlt.source.topic``        where the message was read: topic, partition, offset and
``dlt.source.partition``    timestamp (ms), so a reader can de-duplicate a dead letter
``dlt.source.offset``       sent twice (dead letters are at least once)
``dlt.source.timestamp``
``dlt.traceback``           the traceback, when there is one
==========================  =========================================================

The original message's headers follow, unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

from confluent_kafka import Message

from alertbutler.kafka.message import placed
from alertbutler.kafka.produce import Headers, Outgoing

PREFIX = "dlt."
#: Longest reason kept in a header.
MAX_REASON = 2000


class DeadLetterInfo(NamedTuple):
    """What the headers of a dead letter say (:func:`parse_headers`)."""

    reason: str
    error: str
    service: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp: int | None = None
    traceback: str | None = None


def build_headers(info: DeadLetterInfo, original: Headers | None = ()
                  ) -> list[tuple[str, bytes | str | None]]:
    """The headers of a dead letter: the scheme's, then the original message's."""
    fields: list[tuple[str, object]] = [
        ("reason", info.reason[:MAX_REASON]), ("error", info.error),
        ("service", info.service), ("source.topic", info.topic),
        ("source.partition", info.partition), ("source.offset", info.offset),
        ("source.timestamp", info.timestamp), ("traceback", info.traceback)]
    headers: list[tuple[str, bytes | str | None]] = [
        (PREFIX + name, str(value).encode()) for name, value in fields if value is not None]
    headers.extend((k, v) for k, v in (original or ()))
    return headers


def parse_headers(headers: Headers | None) -> DeadLetterInfo:
    """The scheme's fields of a dead letter's headers (absent ones empty or None)."""
    got: dict[str, str] = {}
    for key, value in headers or ():
        if key.startswith(PREFIX) and key[len(PREFIX):] not in got:
            got[key[len(PREFIX):]] = value if isinstance(value, str) else \
                (value or b"").decode(errors="replace")

    def number(name: str) -> int | None:
        text = got.get(name)
        return int(text) if text not in (None, "") and text.lstrip("-").isdigit() else None

    return DeadLetterInfo(
        reason=got.get("reason", ""), error=got.get("error", ""), service=got.get("service", ""),
        topic=got.get("source.topic"), partition=number("source.partition"),
        offset=number("source.offset"), timestamp=number("source.timestamp"),
        traceback=got.get("traceback"))


def dead_letter(topic: str, key: bytes | None, value: bytes | None, info: DeadLetterInfo,
                original: Headers | None = ()) -> Outgoing:
    """The dead letter of a message, for :func:`~alertbutler.kafka.produce_acknowledged`."""
    return Outgoing(topic, value, key, headers=build_headers(info, original))


def dead_letter_of(msg: Message, topic: str, *, reason: str, error: str, service: str,
                   traceback: str | None = None) -> Outgoing:
    """The dead letter of a message a confluent-kafka consumer read, sent to ``topic``."""
    _, timestamp = msg.timestamp()
    source, partition, offset = placed(msg)
    info = DeadLetterInfo(reason=reason, error=error, service=service, topic=source,
                          partition=partition, offset=offset,
                          timestamp=timestamp if timestamp >= 0 else None,
                          traceback=traceback)
    headers = msg.headers()
    original = list(headers.items()) if isinstance(headers, dict) else headers
    return dead_letter(topic, msg.key(), msg.value(), info, original)
