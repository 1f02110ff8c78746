"""``/api/subscribe``: the history from a start time, the seam, then live alerts published
after the seam was announced; each alert once, none missing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.kafka import create_topics
from alertbutler.l1db import L1db
from alertbutler.portal import PortalSettings
from alertbutler.subscribe.filters import compile_filter
from alertbutler.subscribe.testing import varied_alerts
from tests.portal.served import Served

FILTER = "diaSource.snr > 10"


def _produce(bootstrap: str, topic: str, values: list[bytes], ts_ms: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, v in enumerate(values):
        producer.produce(topic, v, partition=i % 2, timestamp=ts_ms + i)
    assert producer.flush(30) == 0


def test_backfill_then_live_through_the_api(kafka_bootstrap: str, sqlite_url: str,
                                            tmp_path: Path) -> None:
    topic = f"api-bf-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    alerts = varied_alerts(240, seed=21)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, values[:40], now - 7_200_000)  # before the start
    _produce(kafka_bootstrap, topic, values[40:160], now - 1_000_000)
    flt = compile_filter(FILTER)
    mask = flt.keep(alerts)
    kept = [str(a["diaSourceId"]) for a, k in zip(alerts, mask, strict=True) if k]
    past = set(kept) & {str(a["diaSourceId"]) for a in alerts[40:160]}
    later = set(kept) & {str(a["diaSourceId"]) for a in alerts[160:]}
    L1db.create(sqlite_url).close()
    settings = PortalSettings(l1db_url=sqlite_url, bootstrap=kafka_bootstrap,
                              alert_topic=topic)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 3_600_000) / 1000))
    got: dict[str, list[str]] = {"history": [], "live": []}
    seam = None
    with Served(settings) as portal:
        status, body = portal.request("GET", "/api/subscribe?start=yesterday")
        assert status == 422 and "expected earliest" in body["detail"]
        status, body = portal.request("GET", "/api/subscribe?start=earliest&filter=snr%20%3E")
        assert status == 422 and body["detail"]["column"] == 6
        url = (f"/api/subscribe?start={start}&filter=diaSource.snr%20%3E%2010"
               f"&limit={len(past) + len(later)}")
        for name, data in portal.events(url):
            if name == "seam":
                seam = data
                _produce(kafka_bootstrap, topic, values[160:], now)  # after the seam
            elif name == "alert":
                got[data["phase"]].append(data["diaSourceId"])
            elif name == "end":
                assert data == {"sent": len(past) + len(later), "reason": "limit"}
                break
    assert seam is not None and sum(seam["offsets"].values()) == 160
    assert sorted(got["history"]) == sorted(past)
    assert sorted(got["live"]) == sorted(later)
