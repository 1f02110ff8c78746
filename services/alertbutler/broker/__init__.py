"""The embedded Kafka-protocol broker used by tests and the default run."""

from alertbutler.broker.embedded import BrokerError, EmbeddedBroker, broker_binary, free_port

__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary", "free_port"]
