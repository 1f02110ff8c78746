"""Client settings: one librdkafka-style table in the configuration, used by both clients.

confluent-kafka takes librdkafka keys as they are; aiokafka takes keyword arguments, so the
security keys are translated here, in one place.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

from alertbutler.config import Config

#: librdkafka key -> aiokafka keyword, for the settings both clients understand.
_AIOKAFKA_KEYS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "client.id": "client_id",
}
_SSL_KEYS = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
             "ssl.key.password", "enable.ssl.certificate.verification")


def confluent_settings(config: Config, bootstrap: str | None = None,
                       **extra: Any) -> dict[str, object]:
    """Settings for a confluent-kafka Producer, Consumer or AdminClient."""
    settings: dict[str, object] = {"bootstrap.servers": bootstrap or config.kafka.bootstrap_servers}
    settings.update(config.kafka.client)
    settings.update(extra)
    return settings


def aiokafka_settings(config: Config, bootstrap: str | None = None) -> dict[str, object]:
    """Keyword arguments for an aiokafka consumer or producer."""
    client = config.kafka.client
    kwargs: dict[str, object] = {
        "bootstrap_servers": bootstrap or config.kafka.bootstrap_servers,
    }
    for key, value in client.items():
        if key in _AIOKAFKA_KEYS:
            kwargs[_AIOKAFKA_KEYS[key]] = value
    protocol = str(kwargs.get("security_protocol", "PLAINTEXT")).upper()
    if protocol in {"SSL", "SASL_SSL"}:
        kwargs["ssl_context"] = _ssl_context(client)
    if "security_protocol" in kwargs:
        kwargs["security_protocol"] = protocol
    return kwargs


def _ssl_context(client: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=client.get("ssl.ca.location"))
    cert = client.get("ssl.certificate.location")
    if cert:
        context.load_cert_chain(cert, client.get("ssl.key.location"),
                                client.get("ssl.key.password"))
    if client.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def group_id(config: Config, name: str) -> str:
    """A consumer-group id, prefixed by the SASL username as broker ACLs often require."""
    user = config.kafka.client.get("sasl.username", "")
    if user and not name.startswith(f"{user}-"):
        return f"{user}-{name}"
    return name


@contextlib.contextmanager
def kafka_session(config: Config) -> Iterator[str]:
    """Yield a bootstrap address: the configured Kafka, or a broker of ``kafka.engine``
    started for the block (Apache Kafka's data then lives in a temporary directory)."""
    if config.kafka.bootstrap_servers:
        yield config.kafka.bootstrap_servers
        return
    from alertbutler.broker import make_broker

    with make_broker(config.kafka.engine) as broker:
        yield broker.bootstrap
