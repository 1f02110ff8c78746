"""Every Kafka client a service makes, built in one place from the configuration.

The configuration's client table (``kafka.client``: SASL, TLS, ``client.id``, any librdkafka
key) and ``kafka.compression`` reach every client through here, so a setting added to the
file reaches the producers, consumers, topic readers and admin clients of every service, in
both client libraries. Each kind then adds its one policy:

* producer: idempotent with ``acks=all`` (what every service needs to commit its input only
  after its output was acknowledged), by default a 5 ms linger and the configured
  compression;
* consumer: a group member that never commits on its own (the caller commits after the
  work is done), starting at the earliest offset, round-robin assignment;
* reader: a consumer for reading by assignment (no group join, never commits);
* admin: metadata and topic administration.

A ``source`` is the :class:`~alertbutler.config.Config`, or settings already derived from it
(:func:`~alertbutler.kafka.clients.confluent_settings`; for aiokafka,
:func:`~alertbutler.kafka.clients.aiokafka_settings`), for code handed settings rather than
the whole configuration. Keyword ``extra`` settings come last and win.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from alertbutler.config import Config
from alertbutler.kafka.clients import aiokafka_settings, confluent_settings, group_id

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

#: settings for a confluent client: the configuration, or settings derived from it
Source = Config | Mapping[str, object]

#: compression of a producer whose source is not the whole configuration (and names none)
DEFAULT_COMPRESSION = "zstd"
#: what every producer must be: its acknowledged writes are what a service commits after
REQUIRED_PRODUCER = {"acks": "all", "enable.idempotence": True}


def _base(source: Source, bootstrap: str | None) -> dict[str, object]:
    if isinstance(source, Config):
        return confluent_settings(source, bootstrap)
    settings: dict[str, object] = dict(source)
    if bootstrap:
        settings["bootstrap.servers"] = bootstrap
    return settings


def producer_settings(source: Source, bootstrap: str | None = None, /,
                      **extra: object) -> dict[str, object]:
    compression = source.kafka.compression if isinstance(source, Config) else \
        DEFAULT_COMPRESSION
    # defaults, then what the source says (a publisher's own linger), then what is required
    return {"linger.ms": 5, "compression.type": compression, **_base(source, bootstrap),
            **REQUIRED_PRODUCER, **extra}


def consumer_settings(source: Source, bootstrap: str | None, group: str, /,
                      **extra: object) -> dict[str, object]:
    settings = _base(source, bootstrap)
    session_ms = 45_000
    if isinstance(source, Config):
        group = group_id(source, group)
        session_ms = source.kafka.session_timeout_ms
    return {**settings, "group.id": group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": session_ms,
            # keyed topics (work items by detector): round-robin spreads one visit's
            # detectors over the members, where the range assignor gives the first partitions,
            # hence the first detectors, all to one member
            "partition.assignment.strategy": "roundrobin",
            "heartbeat.interval.ms": max(500, session_ms // 3), **extra}


def reader_settings(source: Source, bootstrap: str | None = None, /,
                    **extra: object) -> dict[str, object]:
    settings = _base(source, bootstrap)
    return {**settings, "group.id": f"alertbutler-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False, "enable.auto.offset.store": False, **extra}


def admin_settings(source: Source, bootstrap: str | None = None, /,
                   **extra: object) -> dict[str, object]:
    settings = {k: v for k, v in _base(source, bootstrap).items() if k != "group.id"}
    return {"log_level": 0, **settings, **extra}


def aiokafka_kwargs(source: Config | Mapping[str, object], bootstrap: str | None = None, /,
                    **extra: object) -> dict[str, object]:
    """aiokafka keyword arguments: from the configuration, or from :func:`aiokafka_settings`
    of it."""
    kwargs = aiokafka_settings(source, bootstrap) if isinstance(source, Config) \
        else dict(source)
    if bootstrap:
        kwargs["bootstrap_servers"] = bootstrap
    return {**kwargs, **extra}


def make_producer(source: Source, bootstrap: str | None = None, /, **extra: object) -> Producer:
    """An idempotent, ``acks=all`` producer (see the module doc)."""
    return Producer(producer_settings(source, bootstrap, **extra))


def make_consumer(source: Source, bootstrap: str | None, group: str, /,
                  **extra: object) -> Consumer:
    """A group member that commits only when told (see the module doc)."""
    return Consumer(consumer_settings(source, bootstrap, group, **extra))


def make_reader(source: Source, bootstrap: str | None = None, /, **extra: object) -> Consumer:
    """A consumer for reading by assignment: no group join, no commits."""
    return Consumer(reader_settings(source, bootstrap, **extra))


def make_admin(source: Source, bootstrap: str | None = None, /, **extra: object) -> AdminClient:
    # librdkafka checks the values; the stub wants scalars
    return AdminClient(cast("dict[str, str | int | float | bool]",
                            admin_settings(source, bootstrap, **extra)))


def make_aio_consumer(source: Config | Mapping[str, object], bootstrap: str | None = None, /,
                      **extra: object) -> AIOKafkaConsumer:
    """An aiokafka consumer; ``extra`` are its keyword arguments (group, offsets...)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(**aiokafka_kwargs(source, bootstrap, **extra))


def make_aio_producer(source: Config | Mapping[str, object], bootstrap: str | None = None, /,
                      **extra: object) -> AIOKafkaProducer:
    """An aiokafka producer with the configured compression (``acks=all``)."""
    from aiokafka import AIOKafkaProducer

    compression = source.kafka.compression if isinstance(source, Config) else None
    policy: dict[str, object] = {"acks": "all"}
    if compression and compression != "none":
        policy["compression_type"] = compression
    return AIOKafkaProducer(**aiokafka_kwargs(source, bootstrap, **{**policy, **extra}))
