"""``alertbutler up`` runs a simulated night as services, and every endpoint agrees.

The deployment is the real one: an embedded broker, ``alertbutler fanout``, two
``alertbutler worker`` processes, ``alertbutler ingest`` and ``alertbutler filter serve``,
each its own process with its own metrics port, and the night fed in real time. Afterwards
each endpoint is scraped and its counters are compared with the topics and the L1 database.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from alertbutler.config import load_config
from alertbutler.deploy.up import Deployment, UpOptions
from alertbutler.l1db import L1db
from tests.deploy.nights import (
    SMALL_NIGHT,
    alerts_by_visit_detector,
    eventually,
    night_config,
    read_topic,
    scrape,
    status_code,
    total,
)

pytestmark = pytest.mark.slow


def test_up_night_metrics_agree_with_topics_and_database(tmp_path: Path) -> None:
    """Starts with one worker and adds a second once the first item is done: the group
    rebalances and both take work; then every count must agree."""
    filters = tmp_path / "filters.yaml"
    deployment = Deployment(night_config(tmp_path / "data"), UpOptions(
        workers=1, live=False, night=SMALL_NIGHT, exit_when_done=True, timeout_s=900,
        filters=filters, grace_s=60))
    try:
        deployment.prepare()
        bootstrap = deployment.config.kafka.bootstrap_servers
        filters.write_text(f"source: kafka://{bootstrap}/alerts\ngroup: deploy-test-filters\n"
                           "filters:\n  everything:\n    filter: 'diaSource.snr > 0'\n"
                           "    topic: alerts-everything\n")
        deployment.start()
        # the services run with the whole effective configuration, not only its locations
        # (this night's 60 s raw and association waits are set in code, not in a file)
        effective = load_config(deployment.root / "effective-config.toml", env={})
        assert effective.prompt == deployment.config.prompt
        assert effective.kafka == deployment.config.kafka
        assert deployment.wait_ready(timeout=300), "services never became ready"
        deployment.start_feed()
        progress = deployment.progress
        assert progress is not None
        deadline = time.monotonic() + 900
        while not deployment.night_done():
            assert time.monotonic() < deadline, progress.summary()
            deployment.step()
            if progress.n_done >= 1 and len(deployment.replicas) == 4:
                assert [r.label for r in deployment.scale_workers(2)] == ["worker-1"]
            time.sleep(0.5)
        expected = progress.expected
        assert len(expected) == SMALL_NIGHT.n_visits * SMALL_NIGHT.n_detectors
        assert all(s.ok for s in progress.statuses.values()), progress.summary()["errors"]
        ports = {r.label: r.metrics_port for r in deployment.replicas}
        assert set(ports) == {"fanout", "worker", "worker-1", "ingest", "filter"}
        for label, port in ports.items():
            assert port is not None
            assert status_code(port, "/healthz") == 200, label
            assert status_code(port, "/readyz") == 200, label

        alert_messages = read_topic(bootstrap, deployment.config.kafka.alert_topic)
        on_topic = alerts_by_visit_detector(alert_messages)
        n_on_topic = sum(len(ids) for ids in on_topic.values())
        with L1db(deployment.config.l1db_url) as db:
            rows = db.row_counts()
            in_db = {vd: set(db.sources_of_visit_detector(*vd).column("diaSourceId")
                             .to_pylist()) for vd in expected}
        n_status = sum(s.n_alerts for s in progress.statuses.values())
        assert n_on_topic > 0

        def agree() -> dict[str, dict]:
            m = {label: scrape(port) for label, port in ports.items() if port}
            published = sum(total(m[w], "alertbutler_alerts_published_total")
                            for w in ("worker", "worker-1"))
            ingested = total(m["ingest"], "alertbutler_alerts_ingested_total")
            rows_ds = total(m["ingest"], "alertbutler_rows_ingested_total", table="DiaSource")
            assert published == ingested == rows_ds == rows["DiaSource"] == n_status \
                == n_on_topic, (published, ingested, rows_ds, rows, n_status, n_on_topic)
            # the filter service evaluated every alert of the topic (end markers are skipped)
            assert total(m["filter"], "alertbutler_messages_consumed_total") == n_on_topic
            return m

        m = eventually(agree)
        for vd in expected:  # the same alerts, visit-detector by visit-detector
            assert set(on_topic.get(vd, {})) == in_db[vd] == \
                set(progress.statuses[vd].alert_ids), vd
        items = sum(total(m[w], "alertbutler_work_items_total", outcome="ok")
                    for w in ("worker", "worker-1"))
        assert items == len(expected)
        assert total(m["fanout"], "alertbutler_work_items_total", outcome="sent") == \
            len(expected)
        latency = sum(total(m[w], "alertbutler_alert_latency_seconds_count")
                      for w in ("worker", "worker-1"))
        assert latency == len(expected)
        stages = {dict(ls)["stage"] for (n, ls), v in m["worker"].items()
                  if n == "alertbutler_stage_seconds_count" and v > 0}
        assert {"preload", "publish"} <= stages, stages
        assert total(m["ingest"], "alertbutler_stage_seconds_count", stage="store") > 0
        for label, samples in m.items():
            assert total(samples, "alertbutler_dead_lettered_total") == 0, label
            assert total(samples, "alertbutler_errors_total") == 0, label
        both_worked = [total(m[w], "alertbutler_work_items_total") > 0
                       for w in ("worker", "worker-1")]
        assert all(both_worked), "the added worker took part of the work topic"
    finally:
        deployment.stop()
    # every service stopped cleanly on SIGTERM (exit 0), none was restarted
    codes = {r.label: (r.proc.returncode if r.proc else None, r.restarts)
             for r in deployment.replicas}
    assert all(code == (0, 0) for code in codes.values()), codes
    # structured logs: the workers' lines name the visit and detector of their item
    logs = deployment.root / "logs"
    seen = set()
    for path in logs.glob("worker*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"work item started"' in line:
                record = json.loads(line)
                seen.add((record["visit"], record["detector"]))
    assert seen == expected
    ingested_lines = [json.loads(line) for line in (logs / "ingest.log").read_text()
                      .splitlines() if '"visit-detector ingested"' in line]
    assert {(r["visit"], r["detector"]) for r in ingested_lines} == expected
