"""Both broker engines: round trips with both clients, groups, ordering and process hygiene."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka import Consumer, Producer

from alertbutler.broker import make_broker
from alertbutler.kafka import create_topics, delete_topics, list_topics
from alertbutler.testing import pid_alive


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "compression.type": "zstd",
                         "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0


def _consume_group(bootstrap: str, topic: str, group: str, n: int,
                   timeout: float = 60.0) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    out: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.partition(), msg.key(), msg.value()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return out


def test_topic_helpers_are_idempotent(kafka_bootstrap: str) -> None:
    topic = _topic("admin")
    assert create_topics(kafka_bootstrap, {topic: 3}) == {topic: 3}
    assert create_topics(kafka_bootstrap, {topic: 3}) == {topic: 3}  # again: no error
    assert list_topics(kafka_bootstrap)[topic] == 3
    delete_topics(kafka_bootstrap, [topic])
    deadline = time.monotonic() + 10
    while topic in list_topics(kafka_bootstrap) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic not in list_topics(kafka_bootstrap)
    delete_topics(kafka_bootstrap, [topic])  # deleting a missing topic is not an error


def test_confluent_round_trip(kafka_bootstrap: str) -> None:
    topic = _topic("confluent")
    create_topics(kafka_bootstrap, {topic: 1})
    records = [(f"k{i}".encode(), os.urandom(64) + bytes([i % 256])) for i in range(500)]
    _produce(kafka_bootstrap, topic, records)
    got = _consume_group(kafka_bootstrap, topic, _topic("g"), len(records))
    assert [(k, v) for _, k, v in got] == records


def test_aiokafka_round_trip(kafka_bootstrap: str) -> None:
    topic = _topic("aiokafka")
    create_topics(kafka_bootstrap, {topic: 1})
    records = [(f"k{i}".encode(), f"value-{i}".encode() * 20) for i in range(300)]

    async def main() -> list[tuple[bytes, bytes]]:
        # aiokafka's idempotent producer fails InitProducerId on Tansu (UnknownError):
        # producers that need idempotence use confluent-kafka, which works on both brokers.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                    compression_type="zstd")
        await producer.start()
        try:
            for key, value in records:
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got: list[tuple[bytes, bytes]] = []
            while len(got) < len(records):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for msgs in batch.values():
                    got.extend((m.key, m.value) for m in msgs)
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(main()) == records


def test_group_offsets_resume_after_restart(kafka_bootstrap: str) -> None:
    topic, group = _topic("resume"), _topic("group")
    create_topics(kafka_bootstrap, {topic: 2})
    first = [(f"a{i}".encode(), f"first-{i}".encode()) for i in range(200)]
    _produce(kafka_bootstrap, topic, first)
    got1 = _consume_group(kafka_bootstrap, topic, group, len(first))
    assert sorted(v for _, _, v in got1) == sorted(v for _, v in first)
    second = [(f"b{i}".encode(), f"second-{i}".encode()) for i in range(100)]
    _produce(kafka_bootstrap, topic, second)
    got2 = _consume_group(kafka_bootstrap, topic, group, len(second), timeout=30)
    # only the new messages: the committed offsets were honoured on restart
    assert sorted(v for _, _, v in got2) == sorted(v for _, v in second)


def test_eight_partitions_keep_per_key_order(kafka_bootstrap: str) -> None:
    topic = _topic("order")
    create_topics(kafka_bootstrap, {topic: 8})
    keys = [f"object-{i}".encode() for i in range(40)]
    records = [(keys[i % 40], f"{keys[i % 40].decode()}:{i // 40}".encode())
               for i in range(4000)]
    _produce(kafka_bootstrap, topic, records)
    got = _consume_group(kafka_bootstrap, topic, _topic("g"), len(records))
    assert len(got) == len(records)
    assert len({p for p, _, _ in got}) > 1, "keys should spread over partitions"
    partition_of: dict[bytes, int] = {}
    seq: dict[bytes, list[int]] = {}
    for partition, key, value in got:
        assert partition_of.setdefault(key, partition) == partition
        seq.setdefault(key, []).append(int(value.split(b":")[1]))
    assert all(s == list(range(100)) for s in seq.values())


def test_stop_leaves_no_process(broker_engine: str) -> None:
    broker = make_broker(broker_engine).start()
    pid = broker.pid
    assert pid is not None and pid_alive(pid)
    broker.stop()
    assert not pid_alive(pid)
    broker.stop()  # idempotent


def test_failing_block_still_stops_broker(broker_engine: str) -> None:
    pid = None
    with pytest.raises(RuntimeError), make_broker(broker_engine) as broker:
        pid = broker.pid
        raise RuntimeError("a failing test")
    assert pid is not None and not pid_alive(pid)


def test_sigkill_of_owner_leaves_no_broker(broker_engine: str) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "from alertbutler.broker import make_broker\n"
         f"import time\nb = make_broker({broker_engine!r}).start()\n"
         "print(b.pid, flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline()  # type: ignore[union-attr]
        broker_pid = int(line)
        assert pid_alive(broker_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(broker_pid), "broker outlived its SIGKILLed owner"
    finally:
        owner.kill()
