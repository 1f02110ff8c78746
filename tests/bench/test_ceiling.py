"""bench/_ceiling.py, the raw broker ceiling every Kafka benchmark reports its figures against:
it must read back exactly what it produced (to the end of every partition, on either engine)
and honour the partitions a workload picked."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def ceiling_module():
    spec = importlib.util.spec_from_file_location("_ceiling", BENCH / "_ceiling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_ceiling", module)
    spec.loader.exec_module(module)
    return module


def test_measure_reads_back_every_message(ceiling_module, kafka_bootstrap: str) -> None:
    raw = ceiling_module.Raw
    # uneven partitions (one left empty) and sizes, incompressible and compressible values
    messages = [raw(str(i).encode(), os.urandom(100 + 37 * i) if i % 2 else b"z" * 5000,
                    i % 3) for i in range(300)]
    settings = {"acks": "all", "enable.idempotence": True, "compression.type": "zstd",
                "linger.ms": 5}
    first = ceiling_module.measure(kafka_bootstrap, messages, settings=settings, partitions=4)
    second = ceiling_module.measure(kafka_bootstrap, messages, settings=settings, partitions=4)
    best = ceiling_module.Ceiling.best(first, second)
    assert best.messages == 300
    assert best.bytes == sum(len(m.value) for m in messages)
    assert best.produce_per_s == max(first.produce_per_s, second.produce_per_s)
    assert best.consume_per_s == max(first.consume_per_s, second.consume_per_s)
    assert len(best.as_dict()["runs"]) == 2


def test_engine_option(ceiling_module) -> None:
    assert ceiling_module.engines("both") == ["embedded", "kafka"]
    assert ceiling_module.engines("kafka") == ["kafka"]
    assert ceiling_module.fraction(50.0, 200.0) == 0.25
