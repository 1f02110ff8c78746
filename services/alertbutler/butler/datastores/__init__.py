"""Datastores: where persisted forms of datasets live (files, memory, Kafka, chains)."""

from .base import BridgeFactory, Datastore, DatastoreBridge, DatastoreRecord, NullBridge
from .chained import ChainedDatastore
from .file import FileDatastore
from .memory import InMemoryDatastore
from .templates import DEFAULT_TEMPLATE, FileTemplates

__all__ = ["DEFAULT_TEMPLATE", "BridgeFactory", "ChainedDatastore", "Datastore",
           "DatastoreBridge", "DatastoreRecord", "FileDatastore", "FileTemplates",
           "InMemoryDatastore", "NullBridge"]
