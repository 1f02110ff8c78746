"""Crash test: 50,000 alerts stream in while the ingester process is SIGKILLed at random
moments (at least 5 times) and restarted; the L1 database ends with exactly the expected rows,
none lost, none duplicated. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.fake import fake_alerts
from alertbutler.l1db import L1db
from alertbutler.procs import spawn_owned

from ._support import (
    expected_rows,
    flush,
    new_topics,
    producer,
    publish_visit_detectors,
    read_topic,
    stored_keys,
)

N_ALERTS = 50_000
N_GROUPS = 50  # visit-detectors of 1,000 alerts
N_PARTITIONS = 4
MIN_KILLS = 5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stream() -> tuple[list, list[list[bytes]]]:
    """50 visit-detectors x 1,000 small alerts (2 history sources, no cutouts: the L1
    database keeps no pixels), generated and encoded once for both backends."""
    per = N_ALERTS // N_GROUPS
    template = fake_alerts(per, seed=1000, n_history=2, cutout_size=None, visit=0, detector=0)
    groups, encoded = [], []
    for g in range(N_GROUPS):
        visit, detector = 7000 + g, g % 189
        alerts = [_renumbered(a, g, visit, detector) for a in template]
        groups.append((visit, detector, alerts))
        encoded.append(encode_alerts(alerts))
    return groups, encoded


def _renumbered(alert: dict, g: int, visit: int, detector: int) -> dict:
    """A copy of a template alert with ids of visit-detector ``g`` (fake_alerts makes ~3k
    alerts/s; copying keeps the fixture to the encoding cost)."""
    offset = (g + 1) * 10**12
    object_id = alert["diaObject"]["diaObjectId"] + offset
    def source(s: dict) -> dict:
        return {**s, "diaSourceId": s["diaSourceId"] + offset, "diaObjectId": object_id,
                "visit": s["visit"] + visit, "detector": detector}
    return {
        **alert, "diaSourceId": alert["diaSourceId"] + offset,
        "diaSource": source(alert["diaSource"]),
        "prvDiaSources": [source(s) for s in alert["prvDiaSources"]],
        "prvDiaForcedSources": [{**f, "diaForcedSourceId": f["diaForcedSourceId"] + offset,
                                 "diaObjectId": object_id, "visit": f["visit"] + visit,
                                 "detector": detector} for f in alert["prvDiaForcedSources"]],
        "diaObject": {**alert["diaObject"], "diaObjectId": object_id},
    }


def _start(bootstrap: str, topic: str, dead: str, url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
           "ALERTBUTLER_GENERAL__LOG_LEVEL": "WARNING",
           # smaller batches than the default 2,000: kills then strike after various
           # numbers of committed batches, and often inside one
           "ALERTBUTLER_INGEST__MAX_BATCH_MESSAGES": "700"}
    with open(log, "ab") as fh:
        return spawn_owned([sys.executable, "-m", "alertbutler", "ingest", "--topic", topic,
                            "--group", f"crash-{topic}", "--db", url,
                            "--dead-letter-topic", dead, "--assign-all"],
                           env=env, stdout=fh, stderr=subprocess.STDOUT)


def _progress(db: L1db, group: str) -> int:
    return sum(o.next_offset for o in db.consumer_offsets(group).values())


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
        backend: str, stream, kafka_bootstrap: str, tmp_path: Path,  # type: ignore[no-untyped-def]
        request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'l1.sqlite3'}" if backend == "sqlite"
           else request.getfixturevalue("fresh_pg_url"))
    groups, encoded = stream
    topic, dead = new_topics(kafka_bootstrap, N_PARTITIONS)
    db = L1db.create(url)
    group = f"crash-{topic}"
    total_messages = N_ALERTS + N_GROUPS * N_PARTITIONS
    log = tmp_path / "ingest.log"

    sent: list[int] = []
    def publish() -> None:
        prod = producer(kafka_bootstrap)
        for g in range(0, N_GROUPS, 2):  # stream in, two visit-detectors at a time
            sent.append(publish_visit_detectors(prod, topic, N_PARTITIONS, groups[g:g + 2],
                                                encoded=encoded[g:g + 2]))
            prod.flush(30)
            time.sleep(0.4)
        flush(prod)
    publisher = threading.Thread(target=publish)
    publisher.start()
    started = time.monotonic()

    rng = random.Random(backend)
    kills: list[int] = []  # messages committed when each kill struck
    proc = _start(kafka_bootstrap, topic, dead, url, log)
    try:
        while len(kills) < MIN_KILLS or publisher.is_alive():
            # once this process has committed something, strike at a random moment
            before = kills[-1] if kills else 0
            deadline = time.monotonic() + 60
            while _progress(db, group) <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.5))
            kills.append(_progress(db, group))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = _start(kafka_bootstrap, topic, dead, url, log)
            if len(kills) > 40:
                break
        publisher.join(120)
        published = time.monotonic()
        assert sum(sent) == total_messages
        done = db.wait_for_ingested([(v, d) for v, d, _ in groups], timeout=180)
        print(f"{backend}: published by {published - started:.1f} s, "
              f"all ingested by {time.monotonic() - started:.1f} s")
        proc.send_signal(signal.SIGTERM)  # a clean stop commits and exits 0
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    print(f"kills at committed-message counts {kills}")
    assert done, f"not every visit-detector completed; log tail:\n{log.read_text()[-3000:]}"
    # the kills hit a running ingester mid-stream, not only before or after the work
    assert len(kills) >= MIN_KILLS
    assert sum(0 < k < total_messages for k in kills) >= 3, kills

    want = expected_rows([a for _, _, alerts in groups for a in alerts])
    got = stored_keys(url)
    for table, keys in want.items():
        assert len(got[table]) == len(keys), f"{table}: {len(got[table])} != {len(keys)}"
        assert sorted(got[table]) == sorted(keys), table
    assert len(want["DiaSource"]) == 3 * N_ALERTS
    assert _progress(db, group) == total_messages
    assert db.info().n_ingested_visit_detectors == N_GROUPS
    assert read_topic(kafka_bootstrap, dead, 0, timeout=2) == []
