"""Kafka plumbing shared by every service: client settings, topics, what the broker offers."""

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
from alertbutler.kafka.transactions import (
    TransactionSupport,
    probe_transactions,
    transaction_support,
)

__all__ = [
    "BrokerUnreachable",
    "TransactionSupport",
    "aiokafka_settings",
    "confluent_settings",
    "create_topics",
    "delete_topics",
    "group_id",
    "kafka_session",
    "list_topics",
    "probe_broker",
    "probe_transactions",
    "transaction_support",
]
