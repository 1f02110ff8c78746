"""Datastores: where persisted forms of datasets live (files, memory, Kafka, chains)."""

from .base import BridgeFactory, Datastore, DatastoreBridge, DatastoreRecord, NullBridge

__all__ = ["BridgeFactory", "Datastore", "DatastoreBridge", "DatastoreRecord", "NullBridge"]
