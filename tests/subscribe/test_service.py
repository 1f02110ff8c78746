"""The filter service: 100 filters over 20,000 alerts, SIGKILL mid-stream, restart, and the
filtered topics hold exactly what a brute-force evaluation keeps; reload on change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as TP

from alertbutler.alerts import encode_alerts, encode_visit_detector_end
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.subscribe import open_stream, raw_decoder
from alertbutler.subscribe.service import FilterService
from alertbutler.subscribe.testing import sample_filters, varied_alerts
from tests.subscribe.reference import reference_keep

N_ALERTS = 20_000
N_FILTERS = 100
PARTITIONS = 4


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 10,
                         "compression.type": "zstd"})
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


_COORDINATOR_BUSY = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                     KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT}


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets; a busy broker's group coordinator may still be loading
    (or moving), a retriable error that is asked again, as a client would."""
    deadline = time.monotonic() + 120
    while True:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            parts = consumer.committed([TP(topic, p) for p in range(PARTITIONS)], timeout=10)
            return {tp.partition: tp.offset for tp in parts}
        except KafkaException as exc:
            if exc.args[0].code() not in _COORDINATOR_BUSY or time.monotonic() > deadline:
                raise
        finally:
            consumer.close()
        time.sleep(0.5)


def _read_all(bootstrap: str, topics: list[str]) -> dict[str, list[tuple[bytes, bytes]]]:
    out: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    url = f"kafka://{bootstrap}/{','.join(topics)}"
    with open_stream(url, start="earliest", end="end", decoder=raw_decoder) as stream:
        for batch in stream.batches(5000):
            for alert in batch:
                out[alert.topic].append((alert.key, alert.value))
    return out


def _serve(path: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "alertbutler", "filter", "serve", str(path), "--until-end"],
        stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env)


@pytest.mark.slow
def test_100_filters_sigkill_and_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"svc-{uuid.uuid4().hex[:6]}"
    source = f"{prefix}-alerts"
    create_topics(kafka_bootstrap, {source: PARTITIONS})
    alerts = varied_alerts(N_ALERTS, seed=21, n_history=8)
    values = encode_alerts(alerts)
    messages = [(str(a["diaSourceId"]).encode(), v) for a, v in zip(alerts, values, strict=True)]
    # end-of-visit markers in the stream are not alerts: the service skips them
    markers = [(b"marker", encode_visit_detector_end(visit=1, detector=d, partition=d,
                                                     n_partitions=PARTITIONS, n_alerts=1))
               for d in range(PARTITIONS)]
    _produce(kafka_bootstrap, source, messages[:10_000] + markers + messages[10_000:])
    by_id = {a["diaSourceId"]: v for a, v in zip(alerts, values, strict=True)}

    filters = sample_filters(N_FILTERS, seed=4, selective=True)
    group = f"{prefix}-group"
    spec = {"source": f"kafka://{kafka_bootstrap}/{source}", "group": group,
            "start": "earliest", "batch_size": 500, "partitions": 1,
            "filters": {f.name: {"filter": f.text, "topic": f"{prefix}-{f.name}"}
                        for f in filters}}
    path = tmp_path / "filters.yaml"
    path.write_text(yaml.safe_dump(spec))
    log = tmp_path / "service.log"

    first = _serve(path, log)
    try:
        deadline = time.monotonic() + 240
        while True:
            done = sum(max(o, 0) for o in _committed(kafka_bootstrap, group, source).values())
            if done >= 2_000:
                break
            assert first.poll() is None, f"service exited early: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    at_kill = _committed(kafka_bootstrap, group, source)
    assert sum(max(o, 0) for o in at_kill.values()) < N_ALERTS + PARTITIONS, \
        "the service finished before it was killed: the crash was not mid-stream"

    second = _serve(path, log)
    out, _ = second.communicate(timeout=400)
    assert second.returncode == 0, log.read_text()[-3000:]
    stats = json.loads(out.decode().strip().splitlines()[-1])
    assert stats["refused"] == {}

    # where each source alert sits, to tell the crash window apart
    located: dict[bytes, tuple[int, int]] = {}
    url = f"kafka://{kafka_bootstrap}/{source}"
    with open_stream(url, start="earliest", end="end", decoder=raw_decoder) as stream:
        for batch in stream.batches(5000):
            for alert in batch:
                located[alert.key] = (alert.partition, alert.offset)

    topics = [f"{prefix}-{f.name}" for f in filters]
    written = _read_all(kafka_bootstrap, topics)
    total_kept = 0
    for f, topic in zip(filters, topics, strict=True):
        expected = {str(a["diaSourceId"]).encode() for a in alerts if reference_keep(f, a)}
        got = written.get(topic, [])
        keys = [k for k, _ in got]
        assert set(keys) == expected, f"{f.name}: {f.text}"
        total_kept += len(expected)
        seen: set[bytes] = set()
        for key, value in got:
            assert value == by_id[int(key)], "forwarded bytes differ from the source message"
            if key in seen:  # a duplicate: only from the batch in flight at the crash
                partition, offset = located[key]
                assert offset >= at_kill[partition], f"{f.name}: duplicate outside the window"
            seen.add(key)
    assert total_kept > 20_000  # the test exercises many kept alerts, not a handful


def test_reload_refuses_bad_filter_and_keeps_others(kafka_bootstrap: str,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    prefix = f"reload-{uuid.uuid4().hex[:6]}"
    source = f"{prefix}-alerts"
    create_topics(kafka_bootstrap, {source: 2})
    alerts = varied_alerts(400, seed=8)
    values = encode_alerts(alerts)
    first, second = list(range(200)), list(range(200, 400))

    spec = {"source": f"kafka://{kafka_bootstrap}/{source}", "group": f"{prefix}-g",
            "batch_size": 100,
            "filters": {"bright": {"filter": "diaSource.snr > 10", "topic": f"{prefix}-bright"},
                        "g": {"filter": "band == 'g'", "topic": f"{prefix}-g",
                              "file": str(tmp_path / "g.jsonl")}}}
    path = tmp_path / "filters.yaml"
    path.write_text(yaml.safe_dump(spec))
    service = FilterService(path, config=load_config(env={}), reload_interval=0.2)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 60
        while service.stats.alerts < n:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)

    _produce(kafka_bootstrap, source, [(b"k", values[i]) for i in first])
    wait_for(200)
    spec["filters"]["bright"]["filter"] = "diaSource.snr > 10 and"  # broken: refused
    spec["filters"]["red"] = {"filter": "band == 'r'", "topic": f"{prefix}-red"}
    path.write_text(yaml.safe_dump(spec))
    deadline = time.monotonic() + 30
    while "red" not in service._active:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _produce(kafka_bootstrap, source, [(b"k", values[i]) for i in second])
    wait_for(400)
    service.stop_event.set()
    thread.join(60)
    assert not thread.is_alive()

    assert "bright" in service.stats.refused and "ends too early" in \
        service.stats.refused["bright"]
    assert any("filter refused" in r.getMessage() for r in caplog.records)
    written = _read_all(kafka_bootstrap, [f"{prefix}-bright", f"{prefix}-g", f"{prefix}-red"])
    snr = [a["diaSource"]["snr"] for a in alerts]
    # the old 'bright' kept running over both halves
    assert len(written[f"{prefix}-bright"]) == sum(1 for s in snr if s is not None and s > 10)
    assert len(written[f"{prefix}-g"]) == sum(1 for a in alerts if a["diaSource"]["band"] == "g")
    red_second = sum(1 for i in second if alerts[i]["diaSource"]["band"] == "r")
    assert red_second <= len(written[f"{prefix}-red"]) <= red_second + sum(
        1 for i in first if alerts[i]["diaSource"]["band"] == "r")
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    assert len(lines) == len(written[f"{prefix}-g"])
    assert all(json.loads(line)["diaSource"]["band"] == "g" for line in lines)
