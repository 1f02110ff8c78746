"""A transactional call that librdkafka leaves blocked (after a broker restart) cannot freeze
its caller: ``bounded_call`` gives up at its bound with ``CallStuck``, and the filter
service's offsets-in-transaction call goes through it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from alertbutler.kafka import create_topics
from alertbutler.kafka.transactions import CallStuck, bounded_call
from alertbutler.subscribe import open_stream, raw_decoder


def test_a_call_that_returns_or_raises_is_passed_through() -> None:
    seen: list[int] = []
    bounded_call(seen.append, 7, timeout=5)
    assert seen == [7]
    with pytest.raises(ValueError, match="bad"):
        bounded_call(lambda: (_ for _ in ()).throw(ValueError("bad")), timeout=5)


def test_a_blocked_call_is_given_up_at_its_bound() -> None:
    release = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(CallStuck, match="did not return within 0.5 s"):
        bounded_call(release.wait, timeout=0.5)
    assert time.monotonic() - t0 < 30
    release.set()


class _StuckProducer:
    """Stands for a producer whose coordinator went away: its call never returns."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.called = threading.Event()

    def send_offsets_to_transaction(self, *args: object) -> None:
        self.called.set()
        self.release.wait()


def test_the_streams_offsets_in_transaction_are_bounded(kafka_bootstrap: str) -> None:
    topic = f"stuck-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 1})
    producer = _StuckProducer()
    with open_stream(f"kafka://{kafka_bootstrap}/{topic}", group=f"g-{topic}",
                     decoder=raw_decoder, end="end") as stream:
        list(stream)
        with pytest.raises(CallStuck):
            stream.send_offsets_to_transaction(producer, {(topic, 0): 0},  # type: ignore[arg-type]
                                               timeout=0.5)
    assert producer.called.is_set()
    producer.release.set()
