"""``up``'s broker: started again on the same port after it dies; Apache Kafka keeps its data."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer

from alertbutler.deploy.broker import SupervisedBroker
from alertbutler.kafka import create_topics, list_topics


def test_a_dead_broker_comes_back_on_its_port(broker_engine: str, tmp_path: Path) -> None:
    restarted: list[str] = []
    data = tmp_path / "kafka" if broker_engine == "kafka" else None
    broker = SupervisedBroker(broker_engine, data_dir=data, log_file=tmp_path / "broker.log",
                              on_restart=restarted.append).start()
    try:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, {"kept": 2})
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("kept", b"acknowledged")
        assert producer.flush(60) == 0
        assert not broker.poll()  # running: nothing to do
        pid = broker.kill()
        assert pid is not None and not broker.is_running()
        deadline = time.monotonic() + 300
        while not broker.poll():  # a start refused (its port still held) is retried
            assert time.monotonic() < deadline, "the broker was never started again"
            time.sleep(0.2)
        assert broker.is_running() and broker.pid != pid
        assert broker.bootstrap == bootstrap and restarted == [bootstrap]
        assert broker.restarts == 1
        topics = list_topics(bootstrap)
        if broker_engine == "kafka":  # the same data directory: the topic is still there
            assert topics.get("kept") == 2
        else:  # memory only: it comes back empty (up's on_restart re-creates its topics)
            assert "kept" not in topics
    finally:
        broker.stop()
    assert not broker.is_running()
    assert not broker.poll()  # stopped on purpose: never started again
