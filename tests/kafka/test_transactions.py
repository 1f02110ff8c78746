"""The transactions probe asks the broker, on both engines: Apache Kafka hides aborted
messages from read_committed readers; the embedded broker accepts every transactional call
and still shows them, and the probe is not fooled by the OKs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from alertbutler.broker import free_port, make_broker
from alertbutler.kafka import (
    TransactionProbeError,
    list_topics,
    probe_transactions,
    transaction_support,
)
from alertbutler.kafka import transactions as transactions_module
from alertbutler.kafka.topics import create_topics, delete_topics
from alertbutler.kafka.transactions import (
    PROBE_TOPIC_PREFIX,
    STALE_PROBE_S,
    probe_topic,
    stale_probe_topics,
)


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


def test_a_probe_deletes_the_topics_of_probes_killed_long_ago(kafka_bootstrap: str) -> None:
    """Probe topics named more than an hour ago are leftovers (a probe takes seconds) and the
    next probe deletes them; a recent one, an unnamed-time one and other topics stay."""
    now = time.time()
    stale = probe_topic("0000deadbeef", now - STALE_PROBE_S - 60)
    recent = probe_topic("0001deadbeef", now - 60)
    untimed = f"{PROBE_TOPIC_PREFIX}00deadbeef02"
    other = "alertbutler-not-a-probe-1"
    create_topics(kafka_bootstrap, {stale: 1, recent: 1, untimed: 1, other: 1})
    try:
        probe_transactions(kafka_bootstrap)
        deadline = time.monotonic() + 60  # Apache Kafka deletes a moment after saying so
        while stale in list_topics(kafka_bootstrap):
            assert time.monotonic() < deadline, f"{stale} was not deleted"
            time.sleep(0.2)
        assert {recent, untimed, other} <= set(list_topics(kafka_bootstrap))
    finally:
        delete_topics(kafka_bootstrap, [recent, untimed, other])


def test_which_probe_topics_are_stale() -> None:
    now = 1_800_000_000.0
    names = [probe_topic("a1", now - STALE_PROBE_S - 1), probe_topic("b2", now - 5),
             probe_topic("c3", now + 30),  # another host's clock ahead: not stale
             f"{PROBE_TOPIC_PREFIX}1234567890ab", f"{PROBE_TOPIC_PREFIX}x-1",
             "alertbutler-alerts", f"other-{probe_topic('d4', 0)}"]
    assert stale_probe_topics(names, now) == [names[0]]


def test_probe_is_asked_once_per_broker(kafka_bootstrap: str, broker_engine: str) -> None:
    first = transaction_support(kafka_bootstrap)
    assert first is transaction_support(kafka_bootstrap)
    assert first.available == (broker_engine == "kafka")


def test_an_unreachable_broker_is_no_answer() -> None:
    support = probe_transactions(f"127.0.0.1:{free_port()}", timeout=3)
    assert not support.available and not support.settled
    assert "probe topic" in support.reason


def test_an_unanswered_probe_is_not_kept_and_ends_in_a_clear_error() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(TransactionProbeError, match=f"broker at {bootstrap}"):
        transaction_support(bootstrap, timeout=1, wait=3)
    assert not [k for k in transactions_module._cache if k[0] == bootstrap]


def test_a_process_started_during_an_outage_asks_until_the_broker_answers(
        broker_engine: str, tmp_path: Path) -> None:
    """The broker is down when the probe starts and comes up on its address meanwhile: the
    answer is the broker's (transactions on Apache Kafka), not "no" for the process's life.
    The broker is started once the probe has failed at least once (a named point: the
    retry's warning), not after a sleep."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    failed_once = threading.Event()
    real = transactions_module.probe_transactions

    def probe(*args: object, **kwargs: object) -> transactions_module.TransactionSupport:
        support = real(*args, **kwargs)  # type: ignore[arg-type]
        if not support.settled:
            failed_once.set()
        return support

    answer: list[object] = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(transactions_module, "probe_transactions", probe)
        asker = threading.Thread(target=lambda: answer.append(
            transaction_support(bootstrap, timeout=5, wait=300)))
        asker.start()
        try:
            assert failed_once.wait(120)
            with make_broker(broker_engine, port=port, log_file=tmp_path / "broker.log"):
                asker.join(300)
                assert not asker.is_alive()
        finally:
            asker.join(300)
    support = answer[0]
    assert isinstance(support, transactions_module.TransactionSupport) and support.settled
    assert support.available == (broker_engine == "kafka"), support.reason
