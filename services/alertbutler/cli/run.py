"""``alertbutler run``: the main job on the embedded defaults.

Until the end-to-end pipeline lands this does the smallest real thing: start the embedded
broker, publish a message, read it back, stop.
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from alertbutler.config import Config
from alertbutler.kafka import confluent_settings, create_topics, kafka_session


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the main job on the embedded defaults",
                            description="Start the embedded broker (unless kafka."
                            "bootstrap_servers is set), publish one message and read it back.")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    with kafka_session(config) as bootstrap:
        topic = f"alertbutler-smoke-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, {topic: 1}, settings=config.kafka.client)
        payload = f"hello from alertbutler at {time.time():.3f}".encode()
        producer = Producer(confluent_settings(config, bootstrap, acks="all",
                                               **{"enable.idempotence": True}))
        producer.produce(topic, payload, key=b"smoke")
        if producer.flush(10) != 0:
            raise RuntimeError("the broker did not acknowledge the message")
        del producer  # disconnect before the broker stops
        consumer = Consumer(confluent_settings(config, bootstrap, **{
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}))
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                ok = msg.value() == payload
                print(f"broker {bootstrap}: published and read back 1 message on {topic}: "
                      f"{'OK' if ok else 'MISMATCH'}")
                return 0 if ok else 1
        finally:
            consumer.close()
    raise RuntimeError("the message was not read back within 30 s")
