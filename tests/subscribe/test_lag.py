"""Consumer lag counts every message not yet consumed, end-of-visit markers included.

On the real embedded broker: alerts followed by the workers' end-of-visit-detector markers
(as every visit-detector ends). Once the filter service has consumed everything its lag gauge
must read 0, not the number of trailing markers; with messages left unconsumed the lag is
their count. High watermarks come from fetch responses (ListOffsets is wrong on this broker).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from alertbutler.alerts import encode_alerts, encode_visit_detector_end
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.metrics import Health, MetricsServer, ServiceMetrics
from alertbutler.subscribe import open_stream
from alertbutler.subscribe.service import FilterService
from alertbutler.subscribe.testing import varied_alerts

PARTITIONS = 2
N_ALERTS = 40  # per partition
N_MARKERS = 3  # per partition, after the alerts


def _produce(bootstrap: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for partition, value in messages:
        producer.produce(topic, value, key=b"k", partition=partition)
    assert producer.flush(30) == 0


def _markers(partition: int, n: int) -> list[tuple[int, bytes]]:
    return [(partition, encode_visit_detector_end(visit=1, detector=d, partition=partition,
                                                  n_partitions=PARTITIONS, n_alerts=1))
            for d in range(n)]


def _alerts(seed: int) -> list[tuple[int, bytes]]:
    values = encode_alerts(varied_alerts(N_ALERTS * PARTITIONS, seed=seed))
    return [(i % PARTITIONS, v) for i, v in enumerate(values)]


def _topic(bootstrap: str, prefix: str) -> str:
    topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, {topic: PARTITIONS})
    return topic


def _lag_samples(port: int) -> dict[int, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {int(s.labels["partition"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "alertbutler_consumer_lag"}


def _service(tmp_path: Path, bootstrap: str, topic: str, **options: object
             ) -> tuple[FilterService, ServiceMetrics]:
    spec = {"source": f"kafka://{bootstrap}/{topic}", "group": f"{topic}-g",
            "start": "earliest", "batch_size": 25,
            "filters": {"all": {"filter": "diaSource.snr > -1e9", "topic": f"{topic}-all"}}}
    path = tmp_path / "filters.yaml"
    path.write_text(yaml.safe_dump(spec))
    metrics = ServiceMetrics("filter")
    service = FilterService(path, config=load_config(env={}), metrics=metrics,
                            health=Health(), **options)  # type: ignore[arg-type]
    return service, metrics


def test_lag_is_zero_once_alerts_and_trailing_markers_are_consumed(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = _topic(kafka_bootstrap, "lag-end")
    _produce(kafka_bootstrap, topic, _alerts(1) + _markers(0, N_MARKERS)
             + _markers(1, N_MARKERS))
    service, metrics = _service(tmp_path, kafka_bootstrap, topic, until_end=True)
    server = MetricsServer(metrics, Health(), host="127.0.0.1", port=0).start()
    try:
        stats = service.run()  # returns at the end of the stream as it was at start
        assert stats.alerts == N_ALERTS * PARTITIONS
        assert _lag_samples(server.port) == {p: 0.0 for p in range(PARTITIONS)}
    finally:
        server.stop()


def test_lag_gauge_follows_fetches_without_alerts(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A visit-detector without alerts ends with its markers alone: a running service whose
    fetches hold no alert must still publish its lag (0 once consumed), then again after
    alerts and their markers."""
    topic = _topic(kafka_bootstrap, "lag-idle")
    service, metrics = _service(tmp_path, kafka_bootstrap, topic)
    server = MetricsServer(metrics, Health(), host="127.0.0.1", port=0).start()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    want = {p: 0.0 for p in range(PARTITIONS)}

    def wait_for_zero_lag() -> None:
        # the gauge follows within a loop turn of the fetch that carried the markers
        deadline = time.monotonic() + 30
        while (lags := _lag_samples(server.port)) != want:
            assert thread.is_alive()
            assert time.monotonic() < deadline, f"lag stuck at {lags}"
            time.sleep(0.2)

    try:
        _produce(kafka_bootstrap, topic, _markers(0, N_MARKERS) + _markers(1, N_MARKERS))
        wait_for_zero_lag()
        _produce(kafka_bootstrap, topic, _alerts(2) + _markers(0, 1) + _markers(1, 1))
        deadline = time.monotonic() + 60
        while service.stats.alerts < N_ALERTS * PARTITIONS:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)
        wait_for_zero_lag()
    finally:
        service.stop_event.set()
        thread.join(60)
        server.stop()
    assert not thread.is_alive()


def test_lag_counts_unconsumed_alerts_and_markers(kafka_bootstrap: str) -> None:
    """What the gauge reads: messages after the position, whatever their kind."""
    topic = _topic(kafka_bootstrap, "lag-part")
    # partition 0: 40 alerts then 3 markers; partition 1: 2 markers between its alerts
    alerts = _alerts(3)
    p0 = [m for m in alerts if m[0] == 0]
    p1 = [m for m in alerts if m[0] == 1]
    _produce(kafka_bootstrap, topic, p0 + _markers(0, N_MARKERS) + p1[:20] + _markers(1, 2)
             + p1[20:])
    total = {0: N_ALERTS + N_MARKERS, 1: N_ALERTS + 2}
    url = f"kafka://{kafka_bootstrap}/{topic}"
    with open_stream(url, start="earliest") as stream:
        taken = {0: 0, 1: 0}  # alerts handed out
        while sum(taken.values()) < 30:
            for alert in stream.read_batch(30 - sum(taken.values()), timeout=5):
                taken[alert.partition] += 1
        lags = {p: lag for (_, p), lag in stream.lag_by_partition.items()}
        # every message after the last alert handed out is not consumed yet
        for p in (0, 1):
            handed = taken[p] + (2 if p == 1 and taken[p] >= 20 else 0)
            assert lags[p] == total[p] - handed, (p, taken, lags)
        while sum(taken.values()) < N_ALERTS * PARTITIONS:
            for alert in stream.read_batch(500, timeout=5):
                taken[alert.partition] += 1
        assert stream.lag_by_partition == {(topic, 0): 0, (topic, 1): 0}
        assert stream.lag == 0
