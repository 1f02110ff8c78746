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

import dataclasses
import os
import random
import signal
import threading
import time
from pathlib import Path

from alertbutler.alerts import decode_message
from alertbutler.deploy.up import Deployment, UpOptions
from alertbutler.l1db import L1db
from alertbutler.prompt.packaging import without_processing_times
from tests.deploy.nights import (
    SMALL_NIGHT,
    alerts_by_visit_detector,
    night_config,
    read_topic,
)

TARGETS = ("worker", "ingest", "fanout")


def _chaos(deployment: Deployment, rng: random.Random, stop: threading.Event,
           killed: list[tuple[str, int, float]]) -> None:
    """Kill each target twice at random moments while the night is fed and processed."""
    plan = [t for t in TARGETS for _ in range(2)]
    rng.shuffle(plan)
    feed = deployment.feed
    assert feed is not None
    for target in plan:
        # a random moment: 2-12 s after the previous kill, once the target is running again
        if stop.wait(rng.uniform(2.0, 12.0)):
            return
        labels = [r.label for r in deployment.replicas if r.spec.name == target]
        label = rng.choice(labels)
        while not stop.is_set():
            assert deployment.supervisor is not None
            pid = deployment.supervisor.kill(label, signal.SIGKILL)
            if pid is not None:
                killed.append((label, pid, time.time()))
                break
            time.sleep(0.5)  # still restarting: wait for it to be back


def test_sigkill_worker_ingester_fanout_loses_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("ALERTBUTLER_CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    plan = dataclasses.replace(SMALL_NIGHT, n_visits=4)
    deployment = Deployment(night_config(tmp_path / "data"), UpOptions(
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
            if not chaos.is_alive() and deployment.night_done():
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
        restarts = {r.label: r.restarts for r in deployment.replicas}
        assert sum(restarts.values()) >= 6, (seed, restarts)

        expected = progress.expected
        assert set(progress.statuses) == expected
        failed = {vd: s.message for vd, s in progress.statuses.items() if not s.ok}
        assert not failed, (seed, failed)

        on_topic = alerts_by_visit_detector(read_topic(bootstrap, config.kafka.alert_topic))
        with L1db(config.l1db_url) as db:
            n_rows = db.row_counts()["DiaSource"]
            in_db = {vd: db.sources_of_visit_detector(*vd).column("diaSourceId").to_pylist()
                     for vd in expected}
        for vd in expected:
            ids = in_db[vd]
            assert len(ids) == len(set(ids)), (seed, vd, "duplicate DiaSource rows")
            assert set(on_topic.get(vd, {})) == set(ids) == \
                set(progress.statuses[vd].alert_ids), (seed, vd)
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
        for msg in read_topic(bootstrap, config.kafka.dead_letter_topic, quiet_s=2.0):
            headers = dict(msg.headers() or [])
            assert headers.get("reason"), (seed, headers)
        print(f"chaos seed {seed}: killed {killed}; restarts {restarts}; "
              f"re-processed visit-detectors {progress.summary()['retried']}; "
              f"duplicate alert copies on the topic "
              f"{sum(len(c) - 1 for ids in on_topic.values() for c in ids.values())}")
    finally:
        stop.set()
        deployment.stop()
