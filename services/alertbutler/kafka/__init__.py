"""Kafka plumbing shared by every service: client settings, topics, broker-safe offsets."""

from alertbutler.kafka.clients import (
    aiokafka_settings,
    confluent_settings,
    group_id,
    kafka_session,
)
from alertbutler.kafka.topics import (
    BrokerUnreachable,
    create_topics,
    delete_topics,
    list_topics,
    probe_broker,
)

__all__ = [
    "BrokerUnreachable",
    "aiokafka_settings",
    "confluent_settings",
    "create_topics",
    "delete_topics",
    "group_id",
    "kafka_session",
    "list_topics",
    "probe_broker",
]
