"""The dead-letter header scheme: what one service writes, any reader reads back."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from alertbutler.kafka import (
    DeadLetterInfo,
    DeliveryError,
    dead_letter,
    dead_letter_of,
    parse_headers,
    produce_acknowledged,
)
from alertbutler.kafka.deadletter import MAX_REASON, build_headers
from alertbutler.kafka.produce import Outgoing


def test_headers_round_trip_and_keep_the_original_headers() -> None:
    info = DeadLetterInfo(reason="x" * (MAX_REASON + 10), error="DecodeError",
                          service="alertbutler-ingest", topic="alerts", partition=3,
                          offset=17, timestamp=1234, traceback="Traceback ...")
    headers = build_headers(info, [("trace-id", b"abc")])
    assert [k for k, _ in headers][:2] == ["dlt.reason", "dlt.error"]
    assert headers[-1] == ("trace-id", b"abc")
    back = parse_headers(headers)
    assert back == info._replace(reason="x" * MAX_REASON)


def test_absent_fields_parse_as_empty() -> None:
    assert parse_headers(None) == DeadLetterInfo(reason="", error="", service="")
    info = DeadLetterInfo(reason="r", error="gave-up", service="alertbutler-worker")
    assert [k for k, _ in build_headers(info)] == ["dlt.reason", "dlt.error", "dlt.service"]


def test_a_dead_letter_of_a_consumed_message_names_where_it_was_read(
        kafka_bootstrap: str) -> None:
    """Produced, read, dead-lettered, read again: the scheme carries the source coordinates."""
    import uuid

    source, dead = f"src-{uuid.uuid4().hex[:8]}", f"dlt-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    got = produce_acknowledged(producer, [Outgoing(source, b"bad", b"k", 0,
                                                   headers=[("h", b"1")])])
    assert got[0].offset == 0
    msg = _read_one(kafka_bootstrap, source)
    letter_out = dead_letter_of(msg, dead, reason="garbage", error="DecodeError",
                                service="test")
    produce_acknowledged(producer, [letter_out._replace(partition=0)])
    letter = _read_one(kafka_bootstrap, dead)
    assert (letter.key(), letter.value()) == (b"k", b"bad")
    info = parse_headers(letter.headers())
    assert (info.reason, info.error, info.service) == ("garbage", "DecodeError", "test")
    assert (info.topic, info.partition, info.offset) == (source, 0, 0)
    assert ("h", b"1") in letter.headers()
    assert dead_letter(dead, None, b"v", info).headers == build_headers(info)


def test_an_unacknowledged_produce_is_one_delivery_error(kafka_bootstrap: str) -> None:
    """A message to a partition the topic does not have is named; the others were
    acknowledged, and the error carries the outage trait callers ask."""
    import uuid

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    topic = f"few-{uuid.uuid4().hex[:8]}"
    produce_acknowledged(producer, [Outgoing(topic, b"first", partition=0)])
    try:
        produce_acknowledged(producer, [Outgoing(topic, b"ok", partition=0, ident="ok"),
                                        Outgoing(topic, b"lost", partition=999, ident="lost")],
                             timeout=120)
    except DeliveryError as exc:
        assert exc.undelivered == ("lost",) and exc.delivered == 1
        assert exc.outage and "lost" in str(exc)
    else:
        raise AssertionError("a message to partition 999 was acknowledged")


def _read_one(bootstrap: str, topic: str):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        for _ in range(120):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                return msg
        raise AssertionError(f"nothing on {topic}")
    finally:
        consumer.close()
