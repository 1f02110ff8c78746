"""Helpers for the prompt tests: a configuration with topics of their own, and a reader."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from alertbutler.config import Config, load_config
from alertbutler.prompt.service_support import ensure_topics


def read_all(bootstrap: str, topic: str, *, partitions: int, expect: int | None = None,
             timeout: float = 20.0) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of every message, reading until the end (or ``expect``)."""
    import time

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 3})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: list[tuple[int, bytes | None, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    if expect is None and len(at_end) == partitions:
                        break
                continue
            at_end.discard(msg.partition())
            out.append((msg.partition(), msg.key(), msg.value()))
            if expect is not None and len(out) >= expect:
                break
    finally:
        consumer.close()
    return out


@pytest.fixture
def prompt_config(tmp_path: Path, kafka_bootstrap: str) -> Callable[..., Config]:
    """A configuration whose topics and files are this test's alone; topics created."""

    def make(**sections: dict) -> Config:
        tag = uuid.uuid4().hex[:8]
        overrides: dict[str, dict] = {
            "general": {"data_dir": str(tmp_path / "data")},
            "kafka": {"bootstrap_servers": kafka_bootstrap, "alert_topic": f"alerts-{tag}",
                      "next_visit_topic": f"nv-{tag}", "work_topic": f"work-{tag}",
                      "dead_letter_topic": f"dl-{tag}", "partitions": 4},
            "prompt": {"status_topic": f"status-{tag}", "raw_timeout_s": 5.0,
                       "association_wait_s": 10.0},
        }
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        config = load_config(env={}, overrides=overrides)
        ensure_topics(config, kafka_bootstrap)  # the services' own set, control topic too
        return config

    return make
