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


def test_backfill_from_the_night_archive_through_the_api(broker_engine: str,
                                                         kafka_bootstrap: str,
                                                         sqlite_url: str,
                                                         tmp_path: Path) -> None:
    """``archive=true``: the served night's archive first (the topic deleted it on Apache
    Kafka), an ``archive_seam``, the topic from exactly there, then live; each alert once."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from alertbutler.alerts.archive import write_alert_file
    from alertbutler.config import load_config
    from alertbutler.night.summary import read_alerts_placed
    from alertbutler.prompt.ledger import write_ledger

    topic = f"api-bfa-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    alerts = varied_alerts(240, seed=31)
    values = encode_alerts(alerts)
    now = int(time.time() * 1000)
    _produce(kafka_bootstrap, topic, values[:40], now - 7_200_000)  # before the start
    _produce(kafka_bootstrap, topic, values[40:120], now - 1_000_000)
    config = load_config(env={}, overrides={"kafka": {"bootstrap_servers": kafka_bootstrap,
                                                      "alert_topic": topic}})
    every, _, placed = read_alerts_placed(config)
    night = tmp_path / "mainjob"
    write_ledger(night, alert_topic=topic, l1db_url=sqlite_url, entries=[], alerts=every,
                 positions=placed)
    _produce(kafka_bootstrap, topic, values[120:160], now - 900_000)
    if broker_engine == "kafka":  # the past is only in the archive now
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_records([TopicPartition(topic, p, o)
                                            for p, o in placed.ends.items()]).values():
            future.result(30)
    flt = compile_filter(FILTER)
    mask = flt.keep(alerts)
    kept = {str(a["diaSourceId"]) for a, k in zip(alerts, mask, strict=True) if k}
    past = kept & {str(a["diaSourceId"]) for a in alerts[40:160]}
    later = kept & {str(a["diaSourceId"]) for a in alerts[160:]}
    L1db.create(sqlite_url).close()
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 3_600_000) / 1000))
    url = (f"/api/subscribe?start={start}&archive=true&filter=diaSource.snr%20%3E%2010"
           f"&limit={len(past) + len(later)}")
    got: dict[str, list[tuple[str, int, int]]] = {"archive": [], "history": [], "live": []}
    archive_seam = None
    old = tmp_path / "old"
    (old / "night").mkdir(parents=True)
    write_alert_file(old / "night" / "alerts.avro", alerts[:3])
    with Served(PortalSettings(l1db_url=sqlite_url, bootstrap=kafka_bootstrap,
                               alert_topic=topic, night_root=old)) as portal:
        status, body = portal.request("GET", url)
        assert status == 409 and "has no topic positions" in body["detail"]
    with Served(PortalSettings(l1db_url=sqlite_url, bootstrap=kafka_bootstrap,
                               alert_topic=topic, night_root=night)) as portal:
        for name, data in portal.events(url):
            if name == "archive_seam":
                archive_seam = data
            elif name == "seam":
                _produce(kafka_bootstrap, topic, values[160:], now)  # after the seam
            elif name == "alert":
                part = "archive" if archive_seam is None else data["phase"]
                got[part].append((data["diaSourceId"], data["partition"], data["offset"]))
            elif name == "end":
                assert data == {"sent": len(past) + len(later), "reason": "limit"}
                break
            else:
                assert name == "ready", (name, data)
    assert archive_seam is not None
    assert archive_seam["offsets"] == {f"{topic}[{p}]": o for p, o in placed.ends.items()}
    assert {a[0] for a in got["archive"]} == kept & {str(a["diaSourceId"])
                                                     for a in alerts[40:120]}
    assert all(o < placed.ends[p] for _, p, o in got["archive"])
    assert all(o >= placed.ends[p] for _, p, o in got["history"] + got["live"])
    ids = [a[0] for part in got.values() for a in part]
    assert len(ids) == len(set(ids)) and set(ids) == past | later
