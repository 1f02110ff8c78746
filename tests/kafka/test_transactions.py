"""The transactions probe asks the broker, on both engines: Apache Kafka hides aborted
messages from read_committed readers; the embedded broker accepts every transactional call
and still shows them, and the probe is not fooled by the OKs."""

from __future__ import annotations

import time

from alertbutler.kafka import list_topics, probe_transactions, transaction_support
from alertbutler.kafka.transactions import PROBE_TOPIC_PREFIX


def test_probe_tells_the_engines_apart(kafka_bootstrap: str, broker_engine: str) -> None:
    support = probe_transactions(kafka_bootstrap)
    if broker_engine == "kafka":
        assert support.available, support.reason
        assert support.reason == "aborted messages are hidden from read_committed readers"
    else:
        # every transactional call succeeded: the answer comes from what the reader saw
        assert not support.available
        assert support.reason == "the broker hands aborted messages to read_committed readers"
    # its own topic only: a process SIGKILLed mid-probe by an earlier test (the chaos night)
    # leaves its probe topic behind on the session's broker, harmlessly
    assert support.topic.startswith(PROBE_TOPIC_PREFIX)
    deadline = time.monotonic() + 60  # Apache Kafka deletes a topic a moment after saying so
    while support.topic in list_topics(kafka_bootstrap):
        assert time.monotonic() < deadline, f"the probe topic {support.topic} was not deleted"
        time.sleep(0.2)


def test_probe_is_asked_once_per_broker(kafka_bootstrap: str, broker_engine: str) -> None:
    first = transaction_support(kafka_bootstrap)
    assert first is transaction_support(kafka_bootstrap)
    assert first.available == (broker_engine == "kafka")


def test_an_unreachable_broker_means_no_transactions() -> None:
    from alertbutler.broker import free_port

    support = probe_transactions(f"127.0.0.1:{free_port()}", timeout=3)
    assert not support.available
    assert "probe topic" in support.reason
