"""Helpers for the alerts tests: dataset refs of alert datasets, unique topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from alertbutler.alerts import control_topic
from alertbutler.butler import DataCoordinate, DatasetRef, DatasetType
from alertbutler.kafka import create_topics

ALERT_BATCH = DatasetType("alert", ["instrument", "visit", "detector"], "AlertBatch")
ALERT_PACKET = DatasetType("alertPacket", ["instrument", "visit", "detector"], "AlertPacket")


def make_ref(dataset_type: DatasetType = ALERT_BATCH, *, visit: int = 1, detector: int = 0,
             run: str = "test/run") -> DatasetRef:
    data_id = DataCoordinate.standardize(
        {"instrument": "SimCam", "visit": visit, "detector": detector}, dataset_type.dimensions)
    return DatasetRef.make(dataset_type, data_id, run)


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Callable[..., str]:
    def make(partitions: int = 4, bootstrap: str = kafka_bootstrap) -> str:
        """An alert topic and its control topic (where the end markers go)."""
        name = f"alerts-test-{uuid.uuid4().hex[:10]}"
        create_topics(bootstrap, {name: partitions, control_topic(name): 1})
        return name
    return make
