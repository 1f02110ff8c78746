"""Kafka-protocol brokers on loopback: the embedded Tansu broker and Apache Kafka.

One API for both engines: :func:`make_broker` returns an unstarted broker, used as a
context manager (or ``start()``/``stop()``); every broker has ``engine``, ``bootstrap``,
``pid``, ``kill()`` and ``is_running()``, and dies with its owner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from alertbutler.broker.apache import KAFKA_VERSION, KafkaBroker, kafka_classpath
from alertbutler.broker.embedded import BrokerError, EmbeddedBroker, broker_binary, free_port
from alertbutler.broker.security import AclRule, KafkaSecurity

__all__ = ["ENGINES", "KAFKA_VERSION", "AclRule", "Broker", "BrokerError", "EmbeddedBroker",
           "KafkaBroker", "KafkaSecurity", "broker_binary", "free_port", "kafka_classpath",
           "make_broker"]

#: Broker engines: ``embedded`` (Tansu, memory only; the default) and ``kafka`` (Apache Kafka).
ENGINES = ("embedded", "kafka")


class Broker(Protocol):
    engine: str

    @property
    def bootstrap(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    def start(self) -> Broker: ...
    def stop(self) -> None: ...
    def kill(self) -> int | None: ...
    def is_running(self) -> bool: ...
    def admin_settings(self) -> dict[str, str]: ...
    def __enter__(self) -> Broker: ...
    def __exit__(self, *exc: object) -> None: ...


def make_broker(engine: str = "embedded", *, data_dir: Path | str | None = None,
                port: int | None = None, log_file: Path | None = None,
                security: KafkaSecurity | None = None) -> Broker:
    """An unstarted broker of ``engine``; ``data_dir`` and ``security`` (SCRAM users and
    ACLs) only for Apache Kafka (Tansu keeps everything in memory and has no
    authentication)."""
    if engine == "kafka":
        return KafkaBroker(data_dir=data_dir, port=port, log_file=log_file, security=security)
    if engine == "embedded":
        if data_dir is not None:
            raise BrokerError("the embedded broker keeps everything in memory: --data-dir "
                              "needs --engine kafka")
        if security is not None:
            raise BrokerError("the embedded broker has no authentication: SCRAM users and "
                              "ACLs need --engine kafka")
        return EmbeddedBroker(port=port, log_file=log_file)
    raise BrokerError(f"unknown broker engine {engine!r}: choose one of {', '.join(ENGINES)}")
