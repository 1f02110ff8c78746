"""Every start position on the embedded broker, whose ListOffsets answers are wrong."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as TP

from alertbutler.kafka import create_topics
from alertbutler.subscribe import (
    StartPositionError,
    StreamURL,
    StreamURLError,
    SubscribeError,
    open_stream,
    parse_start,
    raw_decoder,
)

PARTITIONS = 3
PER_PARTITION = 300
STEP_MS = 1000


def _produce(bootstrap: str, topic: str, t0: int, start: int, stop: int) -> None:
    """Message i of partition p: value b"p:i", timestamp t0 + i s, several per batch."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 20,
                         "compression.type": "zstd"})
    for i in range(start, stop):
        for p in range(PARTITIONS):
            producer.produce(topic, f"{p}:{i}".encode(), key=f"{p}-{i}".encode(),
                             partition=p, timestamp=t0 + i * STEP_MS)
    assert producer.flush(30) == 0


@pytest.fixture(scope="module")
def stream_topic(kafka_bootstrap: str) -> tuple[str, int]:
    topic = f"sub-pos-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    t0 = int(time.time() * 1000) - 3_600_000
    _produce(kafka_bootstrap, topic, t0, 0, PER_PARTITION)
    return topic, t0


def _url(bootstrap: str, topic: str) -> str:
    return f"kafka://{bootstrap}/{topic}"


def _read(url: str, **options) -> list[tuple[int, int]]:
    options.setdefault("idle_timeout", 3.0)
    with open_stream(url, decoder=raw_decoder, **options) as stream:
        return [_pi(a.record) for a in stream]


def _pi(value: bytes) -> tuple[int, int]:
    p, i = value.decode().split(":")
    return int(p), int(i)


def test_list_offsets_is_wrong_only_on_the_embedded_broker(
        kafka_bootstrap: str, broker_engine: str, stream_topic: tuple[str, int]) -> None:
    """The premise of reading ends from fetches: the embedded broker's own "latest" answer
    differs from the real end; Apache Kafka's is right. The stream is right on both."""
    topic, _ = stream_topic
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "probe"})
    try:
        _, high = consumer.get_watermark_offsets(TP(topic, 0), timeout=10)
    finally:
        consumer.close()
    if broker_engine == "embedded":
        assert high != PER_PARTITION
    else:
        assert high == PER_PARTITION


def test_earliest_reads_everything_in_order(kafka_bootstrap: str,
                                            stream_topic: tuple[str, int]) -> None:
    topic, _ = stream_topic
    got = _read(_url(kafka_bootstrap, topic), start="earliest", end="end")
    assert len(got) == PARTITIONS * PER_PARTITION
    for p in range(PARTITIONS):
        assert [i for q, i in got if q == p] == list(range(PER_PARTITION))


def test_last_n_per_partition(kafka_bootstrap: str, stream_topic: tuple[str, int]) -> None:
    topic, _ = stream_topic
    got = _read(_url(kafka_bootstrap, topic), start="last:7", end="end")
    assert sorted(got) == sorted((p, i) for p in range(PARTITIONS)
                                 for i in range(PER_PARTITION - 7, PER_PARTITION))


@pytest.mark.parametrize("form", ["iso", "mjd", "datetime"])
def test_time_start(kafka_bootstrap: str, stream_topic: tuple[str, int], form: str) -> None:
    topic, t0 = stream_topic
    moment = dt.datetime.fromtimestamp((t0 + 123 * STEP_MS) / 1000, tz=dt.UTC)
    start: object = {"iso": moment.isoformat(), "datetime": moment,
                     "mjd": (t0 + 123 * STEP_MS) / 86_400_000 + 40587.0}[form]
    got = _read(_url(kafka_bootstrap, topic), start=start, end="end")
    # an MJD float carries ~microseconds: message 123 or 124 may be the first
    first = {p: min(i for q, i in got if q == p) for p in range(PARTITIONS)}
    expected = {123, 124} if form == "mjd" else {123}
    assert set(first.values()) <= expected
    for p in range(PARTITIONS):
        assert [i for q, i in got if q == p] == list(range(first[p], PER_PARTITION))


def test_time_window_ends_iteration(kafka_bootstrap: str, stream_topic: tuple[str, int]) -> None:
    topic, t0 = stream_topic
    start = dt.datetime.fromtimestamp((t0 + 100 * STEP_MS) / 1000, tz=dt.UTC)
    end = dt.datetime.fromtimestamp((t0 + 200 * STEP_MS) / 1000, tz=dt.UTC)
    # no idle timeout: only reaching the window's end can stop this iteration
    got = _read(_url(kafka_bootstrap, topic), start=(start, end), idle_timeout=None)
    assert sorted(got) == sorted((p, i) for p in range(PARTITIONS) for i in range(100, 201))


def test_time_past_the_end_is_empty(kafka_bootstrap: str, stream_topic: tuple[str, int]) -> None:
    topic, _ = stream_topic
    assert _read(_url(kafka_bootstrap, topic), start=dt.datetime.now(dt.UTC), end="end") == []


def test_latest_and_until_end_and_lag(kafka_bootstrap: str) -> None:
    topic = f"sub-latest-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    t0 = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, t0, 0, 50)
    url = _url(kafka_bootstrap, topic)
    with open_stream(url, decoder=raw_decoder, start="latest", idle_timeout=3.0) as stream:
        assert stream.lag == 0
        _produce(kafka_bootstrap, topic, t0, 50, 60)
        got = [_pi(a.record) for a in stream]
        assert stream.lag == 0
    assert sorted(got) == sorted((p, i) for p in range(PARTITIONS) for i in range(50, 60))
    with open_stream(url, decoder=raw_decoder, start="earliest", end="end") as stream:
        _produce(kafka_bootstrap, topic, t0, 60, 70)  # after open: beyond the end
        first = stream.read_batch(10, timeout=10)
        assert stream.lag > 0
        got = [_pi(a.record) for a in first] + [_pi(a.record) for a in stream]
    assert len(got) == PARTITIONS * 60


def test_group_resume_and_commit_only_finished(kafka_bootstrap: str,
                                               stream_topic: tuple[str, int]) -> None:
    topic, _ = stream_topic
    url = _url(kafka_bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[int, int]] = []
    with open_stream(url, decoder=raw_decoder, group=group, end="end") as stream:
        for alert in stream:
            seen.append(_pi(alert.record))
            if len(seen) == 100:
                stream.commit()
                break
    # explicit commit: the 100 handed out are committed, nothing else
    with open_stream(url, decoder=raw_decoder, group=group, commit="after", end="end",
                     idle_timeout=3.0) as stream:
        with pytest.raises(RuntimeError):
            for alert in stream:
                seen.append(_pi(alert.record))
                if len(seen) == 250:
                    raise RuntimeError("the caller fails on this alert")
    failed_on = seen.pop()  # not finished: must come again
    with open_stream(url, decoder=raw_decoder, group=group, commit="after",
                     idle_timeout=3.0) as stream:
        rest = [_pi(a.record) for a in stream]
    assert rest[0] == failed_on or failed_on in rest
    assert sorted(seen + rest) == sorted((p, i) for p in range(PARTITIONS)
                                         for i in range(PER_PARTITION))
    # everything finished is committed: a fourth open reads nothing
    assert _read(url, group=group, end="end") == []


def test_async_iteration(kafka_bootstrap: str, stream_topic: tuple[str, int]) -> None:
    topic, _ = stream_topic

    async def main() -> list[tuple[int, int]]:
        out = []
        with open_stream(_url(kafka_bootstrap, topic), decoder=raw_decoder,
                         start="last:10", end="end") as stream:
            async for alert in stream:
                out.append(_pi(alert.record))
        return out

    assert len(asyncio.run(main())) == PARTITIONS * 10


def test_url_and_position_errors(kafka_bootstrap: str) -> None:
    url = StreamURL.parse("kafka://a:9092,b:9093/alerts,alerts-2")
    assert url.brokers == ("a:9092", "b:9093") and url.topics == ("alerts", "alerts-2")
    for bad in ("http://a:1/t", "kafka://a/t", "kafka://a:1/", "kafka://u:p@a:1/t",
                "kafka://a:1/bad topic"):
        with pytest.raises(StreamURLError):
            StreamURL.parse(bad)
    for bad in ("yesterday", "last:0", "mjd:12", True):
        with pytest.raises(StartPositionError):
            parse_start(bad)
    with pytest.raises(SubscribeError, match="no such topic|cannot be read"):
        with open_stream(f"kafka://{kafka_bootstrap}/missing-{uuid.uuid4().hex[:6]}",
                         decoder=raw_decoder, open_timeout=5):
            pass
    with pytest.raises(SubscribeError, match="group"):
        open_stream(f"kafka://{kafka_bootstrap}/t", start="committed")


def test_decode_error_names_the_message_and_loses_nothing(kafka_bootstrap: str) -> None:
    topic = f"sub-bad-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 1})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 50})
    for i in range(20):
        producer.produce(topic, b"bad" if i == 5 else f"0:{i}".encode(), partition=0)
    assert producer.flush(30) == 0

    def strict(value: bytes) -> bytes:
        if value == b"bad":
            raise ValueError("not an alert")
        return value

    got = []
    with open_stream(_url(kafka_bootstrap, topic), decoder=strict, end="end") as stream:
        with pytest.raises(SubscribeError, match=r"\[0\] offset 5: cannot decode"):
            got.extend(_pi(a.record) for a in stream)
        got.extend(_pi(a.record) for a in stream)  # the caller may go on past it
    assert [i for _, i in got] == [i for i in range(20) if i != 5]
    with open_stream(_url(kafka_bootstrap, topic), decoder=strict, end="end",
                     on_error="skip") as stream:
        assert len(list(stream)) == 19 and stream.skipped == 1
