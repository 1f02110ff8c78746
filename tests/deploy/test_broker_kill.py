"""Durability as deployed: SIGKILL the Apache Kafka broker of ``alertbutler up --engine kafka
--night`` and have ``up`` start it again on the same data directory.

The kill lands at a defined point of the night: once two visit-detectors are complete in the
L1 database. While the broker is gone every service's ``/readyz`` says so and
``alertbutler_kafka_up`` is 0; then the deployment's loop restarts the broker, the services'
producers and consumers reconnect by themselves (none is restarted), and every
visit-detector's alerts end on the alert topic and in the L1 database, each exactly once:
the workers publish every work item in one Kafka transaction with its offset
(:mod:`alertbutler.prompt.transactions`), so an item whose attempt the outage broke is
aborted and processed again, and a ``read_committed`` reader (the ingester, this test's
reader) never sees the broken attempt's copies.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from alertbutler.deploy.up import Deployment, UpOptions
from alertbutler.l1db import L1db
from alertbutler.testing import kafka_unavailable_reason
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

#: the kill lands once this many visit-detectors are complete in the L1 database
KILL_AFTER = 2


def test_night_survives_sigkill_of_its_apache_kafka_broker(tmp_path: Path) -> None:
    reason = kafka_unavailable_reason()
    if reason:
        pytest.skip(reason)
    deployment = Deployment(night_config(tmp_path / "data"), UpOptions(
        workers=2, live=False, night=SMALL_NIGHT, exit_when_done=True, timeout_s=1200,
        grace_s=60, engine="kafka"))
    try:
        deployment.prepare()
        broker = deployment.broker
        assert broker is not None and broker.engine == "kafka"
        assert broker.data_dir == deployment.root / "kafka"
        deployment.start()
        assert deployment.wait_ready(timeout=300), "services never became ready"
        deployment.start_feed()
        progress = deployment.progress
        assert progress is not None
        ports = {r.label: r.metrics_port for r in deployment.replicas if r.metrics_port}
        deadline = time.monotonic() + 1200
        while len(progress.ingested_at) < KILL_AFTER:
            assert time.monotonic() < deadline, progress.summary()
            deployment.step()
            time.sleep(0.5)
        assert len(progress.ingested_at) < len(progress.expected), "killed after the night"
        old_pid = broker.kill()
        assert old_pid is not None and not broker.is_running()

        def gone() -> None:  # no step(): the broker stays down until every service said so
            for label, port in ports.items():
                assert status_code(port, "/readyz") == 503, label
                assert total(scrape(port), "alertbutler_kafka_up") == 0, label
                assert status_code(port, "/healthz") == 200, label

        eventually(gone, timeout=120)
        deployment.step()  # the loop starts the broker again, on the same data directory
        assert broker.is_running() and broker.restarts == 1 and broker.pid != old_pid

        def back() -> None:
            for label, port in ports.items():
                assert status_code(port, "/readyz") == 200, label
                m = scrape(port)
                assert total(m, "alertbutler_kafka_up") == 1, label
                assert total(m, "alertbutler_kafka_outages_total") >= 1, label
                assert total(m, "alertbutler_kafka_outage_seconds_total") > 0, label

        eventually(back, timeout=240)
        while not deployment.night_done():
            assert time.monotonic() < deadline, progress.summary()
            deployment.step()
            time.sleep(0.5)
        expected = progress.expected
        assert all(s.ok for s in progress.statuses.values()), progress.summary()["errors"]
        bootstrap = deployment.config.kafka.bootstrap_servers
        on_topic = alerts_by_visit_detector(
            read_topic(bootstrap, deployment.config.kafka.alert_topic))
        with L1db(deployment.config.l1db_url) as db:
            in_db = {vd: db.sources_of_visit_detector(*vd).column("diaSourceId").to_pylist()
                     for vd in expected}
        again = []
        for vd in expected:
            ids = in_db[vd]
            assert len(ids) == len(set(ids)), vd  # once in the L1 database
            assert set(on_topic.get(vd, {})) == set(ids) == set(
                progress.statuses[vd].alert_ids), vd
            again += [(vd, i, len(c)) for i, c in on_topic.get(vd, {}).items() if len(c) > 1]
        # once on the topic, read read_committed: no copy of an attempt the outage broke
        assert not again, (f"{len(again)} alerts on the topic more than once", again[:5])
        assert sum(len(ids) for ids in in_db.values()) > 0
    finally:
        deployment.stop()
    # producers and consumers reconnected by themselves: no service was restarted, and each
    # stopped cleanly
    codes = {r.label: (r.proc.returncode if r.proc else None, r.restarts)
             for r in deployment.replicas}
    assert all(code == (0, 0) for code in codes.values()), codes
    for path in (deployment.root / "logs").glob("*.log"):
        if path.name == "broker.log":
            continue
        lines = path.read_text(errors="replace").splitlines()
        # one line each way per outage (not one per reconnection attempt)
        down = sum("Kafka broker unreachable" in line for line in lines)
        up = sum("Kafka broker reachable again" in line for line in lines)
        assert down == up >= 1, (path.name, down, up)
        flood = [line for line in lines if "Connection refused" in line
                 or "Connect call failed" in line or "Unable connect" in line]
        assert not flood, (path.name, len(flood), flood[:3])
