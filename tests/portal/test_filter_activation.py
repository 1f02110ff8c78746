"""A filter saved through the portal takes effect in the running filter service without a
restart: the alerts before the switch follow the old filter, those after it the new one,
none lost, none twice; the service's status shows each filter's live yield."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.l1db import L1db
from alertbutler.portal import PortalSettings
from alertbutler.portal.tokens import TokenStore
from alertbutler.subscribe.filters import compile_filter
from alertbutler.subscribe.service import FilterService, status_path
from alertbutler.subscribe.testing import varied_alerts
from tests.portal.served import Served

OLD = "diaSource.snr > 10"
NEW = "band == 'g'"


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, v in enumerate(values):
        producer.produce(topic, v, partition=i % 2)
    assert producer.flush(30) == 0


def _wait(what: str, ok: Any, timeout: float = 180.0) -> None:
    """Wait for a condition of the service's own report (not a sleep-then-assert)."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _status(path: Path) -> dict[str, Any]:
    try:
        return json.loads(status_path(path).read_text())
    except (OSError, ValueError):
        return {}


def test_saved_filter_takes_effect_at_once(kafka_bootstrap: str, sqlite_url: str,
                                           tmp_path: Path) -> None:
    topic = f"act-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    out = tmp_path / "kept.jsonl"
    filters = tmp_path / "filters.yaml"
    filters.write_text(yaml.safe_dump({
        "source": f"kafka://{kafka_bootstrap}/{topic}", "group": f"g-{topic}",
        "start": "earliest", "batch_size": 50,
        "filters": {"watch": {"filter": OLD, "file": str(out)}}}))
    alerts = varied_alerts(300, seed=31)
    values = encode_alerts(alerts)
    service = FilterService(filters, config=load_config(env={}), reload_interval=0.05)
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    try:
        _produce(kafka_bootstrap, topic, values[:150])
        _wait("the first 150 alerts", lambda: _status(filters).get("alerts") == 150)
        L1db.create(sqlite_url).close()
        state = tmp_path / "portal"
        token = TokenStore(state / "tokens.json").create("t")
        settings = PortalSettings(l1db_url=sqlite_url, state_dir=state, filters_file=filters)
        with Served(settings) as portal:
            status, body = portal.request("PUT", "/api/filters/watch",
                                          body={"filter": "band = 'g'"}, token=token)
            assert status == 422 and body["detail"]["column"] == 6  # the file is untouched
            assert yaml.safe_load(filters.read_text())["filters"]["watch"]["filter"] == OLD
            status, body = portal.request("PUT", "/api/filters/watch", body={"filter": NEW},
                                          token=token)
            assert status == 200 and body["filters"]["watch"]["file"] == str(out)
            saved = body["fingerprint"]
            _wait("the new filter to be active",
                  lambda: _status(filters).get("fingerprint") == saved)
            switch = _status(filters)["filters"]["watch"]
            assert switch["filter"] == NEW and switch["seen"] == 0
            _produce(kafka_bootstrap, topic, values[150:])
            _wait("the last 150 alerts", lambda: _status(filters).get("alerts") == 300)
            listed = portal.request("GET", "/api/filters")[1]
            live = listed["service"]["filters"]["watch"]
            assert listed["applied"] and live["seen"] == 150
            new = compile_filter(NEW).keep(alerts[150:])
            assert live["kept"] == int(new.sum())  # the live yield of the new version
    finally:
        service.stop_event.set()
        runner.join(60)
    assert not runner.is_alive()
    # every alert of the source before the switch offsets went through OLD, after through NEW
    assert sum(int(o) for o in switch["active_from"].values()) == 150
    old_keep = compile_filter(OLD).keep(alerts[:150])
    new_keep = compile_filter(NEW).keep(alerts[150:])
    want = [a["diaSourceId"] for a, k in zip(alerts[:150], old_keep, strict=True) if k] + \
        [a["diaSourceId"] for a, k in zip(alerts[150:], new_keep, strict=True) if k]
    got = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(got) == sorted(want)
