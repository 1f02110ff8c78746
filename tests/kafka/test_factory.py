"""Every Kafka client kind comes from the configuration, through ``kafka/factory.py``.

A setting of ``kafka.client`` must reach every kind of client every service makes, in both
client libraries: the client itself refuses a bad value, which shows the value reached it
(no broker needed); and no service module builds a client by hand.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alertbutler.config import Config, load_config
from alertbutler.kafka import factory

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "alertbutler"

#: modules still building a client by hand (the night runner, being reworked meanwhile)
PENDING = {"night/progress.py", "replay/night_run.py"}

CLIENT_CLASSES = {"Consumer", "Producer", "AdminClient", "AIOKafkaConsumer",
                  "AIOKafkaProducer"}

SECURE = {"client.id": "ab-probe", "security.protocol": "SASL_PLAINTEXT",
          "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice",
          "sasl.password": "secret"}


def _config(client: dict[str, str], compression: str = "lz4") -> Config:
    return load_config(env={}, overrides={"kafka": {
        "bootstrap_servers": "127.0.0.1:1", "compression": compression, "client": client}})


CONFLUENT_KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "producer": lambda src: factory.producer_settings(src),
    "consumer": lambda src: factory.consumer_settings(src, None, "group"),
    "reader": lambda src: factory.reader_settings(src),
    "admin": lambda src: factory.admin_settings(src),
}


@pytest.mark.parametrize("kind", sorted(CONFLUENT_KINDS))
def test_client_settings_reach_every_confluent_kind(kind: str) -> None:
    config = _config(SECURE)
    settings = CONFLUENT_KINDS[kind](config)
    assert {k: settings[k] for k in SECURE} == SECURE
    assert settings["bootstrap.servers"] == "127.0.0.1:1"
    if kind == "producer":
        assert settings["compression.type"] == "lz4"
        assert (settings["acks"], settings["enable.idempotence"]) == ("all", True)
    if kind == "consumer":  # ACLs often want the user's prefix on group ids
        assert settings["group.id"] == "alice-group"


def test_client_settings_reach_the_aiokafka_kinds() -> None:
    kwargs = factory.aiokafka_kwargs(_config(SECURE))
    assert (kwargs["client_id"], kwargs["security_protocol"], kwargs["sasl_mechanism"],
            kwargs["sasl_plain_username"]) == ("ab-probe", "SASL_PLAINTEXT", "SCRAM-SHA-256",
                                                "alice")


MAKERS: dict[str, Callable[[Config], Any]] = {
    "producer": lambda c: factory.make_producer(c),
    "consumer": lambda c: factory.make_consumer(c, None, "group"),
    "reader": lambda c: factory.make_reader(c),
    "admin": lambda c: factory.make_admin(c),
    "derived producer": lambda c: factory.make_producer(factory.producer_settings(c)),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_bad_setting_reaches_every_confluent_client(kind: str) -> None:
    """The client refuses the configured value: it got it."""
    from confluent_kafka import KafkaException

    with pytest.raises((KafkaException, ValueError), match="security.protocol|bogus"):
        MAKERS[kind](_config({"security.protocol": "bogus"}))


@pytest.mark.parametrize("kind", ["consumer", "producer"])
def test_a_bad_setting_reaches_every_aiokafka_client(kind: str) -> None:
    config = _config({"security.protocol": "bogus"})

    async def make() -> None:
        if kind == "consumer":
            factory.make_aio_consumer(config)
        else:
            factory.make_aio_producer(config)

    with pytest.raises(ValueError, match="(?i)bogus|security"):
        asyncio.run(make())


def _hand_built(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name in CLIENT_CLASSES:
                lines.append(node.lineno)
    return lines


def test_no_service_builds_a_client_by_hand() -> None:
    """Outside the kafka library (and the broker library, which probes brokers it starts
    itself, before any configuration exists), clients come from the factory."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.split("/")[0] in ("kafka", "broker") or rel in PENDING:
            continue
        if lines := _hand_built(path):
            found[rel] = lines
    assert not found, f"Kafka clients built by hand (use alertbutler.kafka.factory): {found}"
