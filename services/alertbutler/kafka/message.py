"""Typed views of a consumed confluent-kafka message.

confluent-kafka types a message's topic, partition, offset and value as optional because an
error event arrives as a ``Message`` too; a record read from a partition always has its place.
These helpers say so once, so callers work with ``str`` and ``int`` instead of checking each time.
"""

from __future__ import annotations

from confluent_kafka import Message


def placed(msg: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record; ``ValueError`` for an event that has no place."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"a Kafka event without topic/partition/offset: {msg.error()!r}")
    return topic, partition, offset


def value_of(msg: Message) -> bytes:
    """The value of a record; ``ValueError`` for a tombstone (a record without one)."""
    value = msg.value()
    if value is None:
        raise ValueError(f"a record without a value at {msg.topic()}[{msg.partition()}]"
                         f"@{msg.offset()}")
    return value
