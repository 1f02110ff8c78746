"""Chaos: SIGKILL a random worker, the ingester and the fan-out, each twice, mid-night.

The supervisor restarts each killed service; the consumer groups hand its partitions on;
work items are committed only after their alerts were acknowledged, so a killed worker's
item is re-processed (by id-deterministic code: the same alerts again), and the ingester
keeps its offsets in the L1 database with the rows. What must hold afterwards:

* every visit-detector of the night ends with a successful status;
* on the alert topic, every visit-detector's alerts are there; copies from re-processing
  carry the same diaSourceId and the same content (processing timestamps aside), so a
  consumer keyed by diaSourceId sees each alert once;
* in the L1 database each of those alerts is exactly one DiaSource row;
* every work item on the work topic was processed; anything dead-lettered carries a reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from alertbutler.alerts import decode_message
from alertbutler.deploy.up import Deployment, UpOptions
from alertbutler.kafka import parse_headers
from alertbutler.l1db import L1db
from alertbutler.prompt.packaging import without_processing_times
from tests.deploy.nights import (
    CHAOS_NIGHT,
    alerts_by_visit_detector,
    night_config,
    read_topic,
)

pytestmark = pytest.mark.slow

TARGETS = ("worker", "ingest", "fanout")


def _started(log: Path) -> list[tuple[int, int]]:
    """(visit, detector) of every "work item started" line of a worker's log, in order."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"work item started"' in line:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                out.append((record["visit"], record["detector"]))
    return out


def _busy_worker(deployment: Deployment) -> str | None:
    """A worker whose latest item has no status yet: it holds an item in flight."""
    assert deployment.progress is not None
    try:
        done = set(deployment.progress.statuses)
    except RuntimeError:  # the main loop is adding a status right now: ask again later
        return None
    for replica in deployment.replicas:
        if replica.spec.name == "worker" and replica.pid:
            started = _started(deployment.root / "logs" / f"{replica.label}.log")
            if started and started[-1] not in done:
                return replica.label
    return None


def _chaos(deployment: Deployment, rng: random.Random, stop: threading.Event,
           killed: list[tuple[str, int, float]]) -> None:
    """Kill each target twice at random moments spread over the night; a worker is killed
    while it holds an item (a random busy one), so its item must be redelivered."""
    plan = [t for t in TARGETS for _ in range(2)]
    rng.shuffle(plan)
    for target in plan:
        if stop.wait(rng.uniform(1.0, 5.0)):
            return
        while not stop.is_set():
            assert deployment.supervisor is not None
            label = _busy_worker(deployment) if target == "worker" else target
            pid = deployment.supervisor.kill(label, signal.SIGKILL) if label else None
            if pid is not None:
                killed.append((label, pid, time.time()))
                break
            time.sleep(0.3)  # restarting, or no worker busy yet: try again shortly


def _markers(url: str, vd: tuple[int, int]) -> list[tuple[int, int]]:
    """(partition, n_alerts) of the end markers the L1 database recorded for ``vd``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT partition, n_alerts FROM visit_detector_end WHERE visit = :v AND "
                "detector = :d ORDER BY partition"), {"v": vd[0], "d": vd[1]})]
    finally:
        engine.dispose()


def test_sigkill_worker_ingester_fanout_loses_nothing(tmp_path: Path,
                                                      kafka_bootstrap: str) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    # twice the small night: the six kills (1-5 s apart, a worker only while it holds an
    # item) must all land before a quiet machine finishes the night
    plan = CHAOS_NIGHT
    # the session's broker (both engines), with topics of this test's own
    deployment = Deployment(night_config(tmp_path / "data", kafka_bootstrap), UpOptions(
        workers=2, live=False, night=plan, timeout_s=1200, grace_s=60))
    stop = threading.Event()
    killed: list[tuple[str, int, float]] = []
    try:
        deployment.prepare().start()
        assert deployment.wait_ready(timeout=300), "services never became ready"
        deployment.start_feed()
        chaos = threading.Thread(target=_chaos, args=(deployment, rng, stop, killed),
                                 daemon=True)
        chaos.start()
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            deployment.step()
            if deployment.night_done():
                stop.set()  # never wait for a kill that can no longer land (no busy worker)
                chaos.join(timeout=30)
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"night not done (seed {seed}): "
                                 f"{deployment.progress.summary() if deployment.progress else ''}")
        stop.set()
        progress = deployment.progress
        assert progress is not None
        config = deployment.config
        bootstrap = config.kafka.bootstrap_servers
        kinds = [label.split("-")[0] for label, _, _ in killed]
        assert all(kinds.count(t) >= 2 for t in TARGETS), (seed, killed)
        # the night can finish before the last killed service is back: let the supervisor
        # restart it (with its backoff) before counting restarts
        settle = time.monotonic() + 60
        while (sum(r.restarts for r in deployment.replicas) < len(killed)
               and time.monotonic() < settle):
            deployment.step()
            time.sleep(0.2)
        restarts = {r.label: r.restarts for r in deployment.replicas}
        assert sum(restarts.values()) >= len(killed) >= 6, (seed, restarts, killed)

        expected = progress.expected
        assert set(progress.statuses) == expected
        # a visit-detector that failed is acceptable only as the issue allows: dead-lettered
        # with its reason after bounded retries (then it has no alerts, and the night went on)
        failed = {vd: s.message for vd, s in progress.statuses.items() if not s.ok}
        dead: dict[tuple[int, int], str] = {}
        # alerts the ingester set aside (see alertbutler.kafka.deadletter): never expected; they
        # would leave a visit-detector completed by its markers with no rows
        dead_alerts: dict[tuple[int, int], list[str]] = {}
        for msg in read_topic(bootstrap, config.kafka.dead_letter_topic, quiet_s=2.0):
            reason = parse_headers(msg.headers()).reason
            assert reason, (seed, msg.headers())
            with contextlib.suppress(Exception):  # undecodable letters keep their reason
                decoded = decode_message(msg.value())
                if decoded.kind == "work_item":
                    dead[(decoded.record["visit"], decoded.record["detector"])] = reason
                elif decoded.kind == "alert":
                    src = decoded.record["diaSource"]
                    dead_alerts.setdefault((int(src["visit"]), int(src["detector"])),
                                           []).append(reason)
        assert not dead_alerts, (seed, "alerts dead-lettered by the ingester", dead_alerts)
        # nor were records of the alert topic jumped over by the ingester's consumer
        ingest_log = (deployment.root / "logs" / "ingest.log").read_text(errors="replace")
        gaps = [line for line in ingest_log.splitlines() if "offsets never received" in line]
        assert not gaps, (seed, gaps)
        assert set(failed) <= set(dead), (seed, failed, dead)
        assert len(failed) < len(expected), (seed, failed)

        on_topic = alerts_by_visit_detector(read_topic(bootstrap, config.kafka.alert_topic))
        with L1db(config.l1db_url) as db:
            n_rows = db.row_counts()["DiaSource"]
            in_db = {vd: db.sources_of_visit_detector(*vd).column("diaSourceId").to_pylist()
                     for vd in expected}
        for vd in expected:
            ids = in_db[vd]
            assert len(ids) == len(set(ids)), (seed, vd, "duplicate DiaSource rows")
            # on failure, the evidence: what the worker reported, what the topic holds, the
            # end markers the ingester recorded, and whom the chaos killed when
            assert set(on_topic.get(vd, {})) == set(ids) == \
                set(progress.statuses[vd].alert_ids), (
                    seed, vd, {"on_topic": len(on_topic.get(vd, {})), "in_db": len(ids),
                               "status": progress.statuses[vd],
                               "markers": _markers(config.l1db_url, vd),
                               "attempts": progress.attempts.get(vd), "killed": killed})
            for source_id, copies in on_topic.get(vd, {}).items():
                first = without_processing_times(copies[0])
                assert all(without_processing_times(c) == first for c in copies[1:]), \
                    (seed, vd, source_id)
        assert n_rows == sum(len(ids) for ids in in_db.values()) > 0

        items = {}
        for msg in read_topic(bootstrap, config.kafka.work_topic, quiet_s=2.0):
            record = decode_message(msg.value()).record
            items[(record["visit"], record["detector"])] = record
        assert set(items) == expected
        starts: dict[tuple[int, int], int] = {}
        for log in (deployment.root / "logs").glob("worker-*.log"):
            for vd in _started(log):
                starts[vd] = starts.get(vd, 0) + 1
        reprocessed = {vd: n for vd, n in starts.items() if n > 1 and vd not in failed}
        assert reprocessed, (seed, "a worker killed mid-item must leave it to be redone")
        print(f"chaos seed {seed}: killed {killed}; restarts {restarts}; "
              f"re-processed visit-detectors {reprocessed}; "
              f"dead-lettered {dead}; duplicate alert copies on the topic "
              f"{sum(len(c) - 1 for ids in on_topic.values() for c in ids.values())}")
    finally:
        stop.set()
        deployment.stop()
