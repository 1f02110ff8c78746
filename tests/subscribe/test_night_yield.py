"""``night reconcile --filters``: each active filter's yield of a night, end to end.

A real filter service runs two filters over a night's alerts (after a previous night's), a
third filter is saved while it runs; the reconciliation counts, per filter, the night's alerts
before its activation, seen, kept (evaluated again) and forwarded (its topic read back), and
names a filter whose topic holds an alert it does not keep.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.cli import main
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.l1db import L1db
from alertbutler.portal import PortalSettings
from alertbutler.prompt.ledger import VisitDetectorEntry, write_ledger
from alertbutler.subscribe.service import FilterService
from alertbutler.subscribe.testing import varied_alerts
from tests.portal.served import Served

VISIT = 7


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, value, key=key)
    assert producer.flush(60) == 0


def _wait(service: FilterService, thread: threading.Thread, n: int) -> None:
    deadline = time.monotonic() + 120
    while service.stats.alerts < n:
        assert thread.is_alive() and time.monotonic() < deadline, "the service stalled"
        time.sleep(0.1)


def _bright(alert: dict) -> bool:
    snr = alert["diaSource"]["snr"]
    return snr is not None and snr > 10


def _reconcile(root: Path, filters: Path, capsys: pytest.CaptureFixture[str]
               ) -> tuple[int, dict, str]:
    code = main(["night", "reconcile", str(root), "--filters", str(filters), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_each_filter_accounts_for_the_night(kafka_bootstrap: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"yield-{uuid.uuid4().hex[:6]}"
    source = f"{prefix}-alerts"
    create_topics(kafka_bootstrap, {source: 2})
    alerts = varied_alerts(300, seed=12)
    values = encode_alerts(alerts)
    messages = [(str(a["diaSourceId"]).encode(), v)
                for a, v in zip(alerts, values, strict=True)]
    night = list(range(100, 300))  # alerts 0..99 are an earlier night's
    vd = {i: (VISIT, i % 3) for i in night}

    spec = {"source": f"kafka://{kafka_bootstrap}/{source}", "group": f"{prefix}-g",
            "batch_size": 64,
            "filters": {"bright": {"filter": "diaSource.snr > 10", "topic": f"{prefix}-bright"},
                        "g": {"filter": "band == 'g'", "topic": f"{prefix}-g"}}}
    filters = tmp_path / "filters.yaml"
    filters.write_text(yaml.safe_dump(spec))
    service = FilterService(filters, config=load_config(env={}), reload_interval=0.1)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        _produce(kafka_bootstrap, source, messages[:200])
        _wait(service, thread, 200)
        # saved while it runs (as the portal does): applies from the position it had read to
        spec["filters"]["red"] = {"filter": "band == 'r'", "topic": f"{prefix}-red"}
        filters.write_text(yaml.safe_dump(spec))
        deadline = time.monotonic() + 60
        while "red" not in service._active:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)
        _produce(kafka_bootstrap, source, messages[200:])
        _wait(service, thread, 300)
    finally:
        service.stop_event.set()
        thread.join(60)
    assert not thread.is_alive()

    root = tmp_path / "mainjob"
    url = f"sqlite:///{tmp_path / 'l1db.sqlite3'}"
    with L1db.create(url) as db:
        for detector in range(3):
            rows = [{"diaSourceId": alerts[i]["diaSourceId"], "visit": VISIT,
                     "detector": detector, "diaObjectId": 1000 + i,
                     "midpointMjdTai": 60000.5, "ra": 10.0, "dec": -5.0, "x": 1.5, "y": 2.5,
                     "psfFlux": 1.0, "band": "r", "isDipole": False}
                    for i in night if vd[i][1] == detector]
            db.store_visit_detector(VISIT, detector, sources=rows)
    entries = []
    for detector in range(3):
        ids = tuple(alerts[i]["diaSourceId"] for i in night if vd[i][1] == detector)
        entries.append(VisitDetectorEntry(visit=VISIT, detector=detector, ok=True, reason="ok",
                                          worker="w", produced=len(ids), acknowledged=len(ids),
                                          on_topic=len(ids), alert_ids=ids))
    write_ledger(root, alert_topic=source, l1db_url=url, entries=entries,
                 alerts=[alerts[i] for i in night])

    code, out, err = _reconcile(root, filters, capsys)
    assert code == 0, err
    got = {f["name"]: f for f in out["filters"]}
    assert set(got) == {"bright", "g", "red"}
    bright = sum(1 for i in night if _bright(alerts[i]))
    band = {b: sum(1 for i in night if alerts[i]["diaSource"]["band"] == b) for b in "gr"}
    assert (got["bright"]["before_activation"], got["bright"]["seen"],
            got["bright"]["kept"], got["bright"]["forwarded"]) == (0, 200, bright, bright)
    assert (got["g"]["seen"], got["g"]["kept"], got["g"]["forwarded"]) == (200, band["g"],
                                                                            band["g"])
    # 'red' was saved after the first 200 alerts were read: the night's first 100 are not its
    red_after = sum(1 for i in night[100:] if alerts[i]["diaSource"]["band"] == "r")
    assert (got["red"]["before_activation"], got["red"]["seen"], got["red"]["kept"],
            got["red"]["forwarded"]) == (100, 100, red_after, red_after)
    assert all(f["matches"] and f["not_read_yet"] == 0 for f in got.values())
    rows = out["visit_detectors"]
    for name in ("bright", "g", "red"):
        assert sum(r["forwarded"][name] for r in rows) == got[name]["forwarded"]
    assert rows[1]["forwarded"]["g"] == sum(
        1 for i in night if vd[i][1] == 1 and alerts[i]["diaSource"]["band"] == "g")

    # the portal's night page and API show the same counts
    with Served(PortalSettings(l1db_url=url, night_root=root, filters_file=filters)) as portal:
        status, api = portal.request("GET", "/api/night")
        assert status == 200 and api["matches"] is True
        assert [(f["name"], f["forwarded"]) for f in api["filters"]] == \
            [(f["name"], f["forwarded"]) for f in out["filters"]]
        with urllib.request.urlopen(portal.url + "/night", timeout=300) as response:
            html = response.read().decode()
        assert 'id="filter-yields"' in html and f"{prefix}-red" in html

    # someone else writes an alert of the night that 'bright' does not keep to its topic
    stray = next(i for i in night if not _bright(alerts[i]))
    _produce(kafka_bootstrap, f"{prefix}-bright", [messages[stray]])
    code, out, err = _reconcile(root, filters, capsys)
    assert code == 1
    assert f"mismatch: filter bright: 1 alerts on '{prefix}-bright' it does not keep" \
        in err.splitlines()
    assert [f["name"] for f in out["filters"] if not f["matches"]] == ["bright"]


def test_a_filters_file_without_a_status_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mainjob"
    write_ledger(root, alert_topic="alerts", l1db_url=f"sqlite:///{tmp_path / 'l1.sqlite3'}",
                 entries=[], alerts=[])
    filters = tmp_path / "filters.yaml"
    filters.write_text("source: kafka://127.0.0.1:1/alerts\ngroup: g\nfilters: {}\n")
    assert main(["night", "reconcile", str(root), "--filters", str(filters)]) == 2
    assert "no filter service status" in capsys.readouterr().err
