"""Kafka plumbing shared by every service: client settings, topics, what the broker offers."""

from alertbutler.kafka.access import KafkaAccessError, access_error, is_refusal, probe_access
from alertbutler.kafka.clients import (
    aiokafka_settings,
    confluent_settings,
    group_id,
    kafka_session,
)
from alertbutler.kafka.deadletter import DeadLetterInfo, dead_letter, dead_letter_of, parse_headers
from alertbutler.kafka.produce import Delivery, DeliveryError, Outgoing, produce_acknowledged
from alertbutler.kafka.topics import (
    BrokerUnreachable,
    create_topics,
    delete_topics,
    list_topics,
    probe_broker,
)
from alertbutler.kafka.transactions import (
    TransactionProbeError,
    TransactionSupport,
    probe_transactions,
    transaction_support,
)

__all__ = [
    "BrokerUnreachable",
    "DeadLetterInfo",
    "Delivery",
    "DeliveryError",
    "KafkaAccessError",
    "Outgoing",
    "TransactionProbeError",
    "TransactionSupport",
    "access_error",
    "aiokafka_settings",
    "confluent_settings",
    "create_topics",
    "dead_letter",
    "dead_letter_of",
    "delete_topics",
    "group_id",
    "is_refusal",
    "kafka_session",
    "list_topics",
    "parse_headers",
    "probe_access",
    "probe_broker",
    "probe_transactions",
    "produce_acknowledged",
    "transaction_support",
]
