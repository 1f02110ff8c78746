"""Crash test: 50,000 alerts (and a poison message per visit-detector) are ingested by
processes SIGKILLed at named crash points of a batch's way (:mod:`alertbutler.faults`): inside
the database transaction, between the dead-letter send and the transaction, between the
database commit and the Kafka commit. The L1 database ends with exactly the expected rows, none
lost, none duplicated, and every poison message is dead-lettered. On SQLite, PostgreSQL and a
real 3-node Cassandra cluster (replication factor 3, QUORUM; embedded broker only), end markers
on the control topic (a visit-detector completes when its markers and the stored offsets
agree)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alertbutler.alerts import encode_alerts
from alertbutler.alerts.fake import fake_alerts
from alertbutler.faults import CRASH_ENV, crash_mark
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
#: bytes that decode as no message at all (wrong magic byte), made unique per group
POISON = b"\x07not an alert "

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


def _start(bootstrap: str, topic: str, dead: str, url: str, log: Path,
           fault: str | None = None, mark: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
           "ALERTBUTLER_GENERAL__LOG_LEVEL": "WARNING",
           # smaller batches than the default 2,000: each kill leaves most of the stream
           # to the processes after it
           "ALERTBUTLER_INGEST__MAX_BATCH_MESSAGES": "700"}
    env.pop(CRASH_ENV, None)
    if fault is not None and mark is not None:
        env[CRASH_ENV] = f"{fault}@{mark}"
    with open(log, "ab") as fh:
        return spawn_owned([sys.executable, "-m", "alertbutler", "ingest", "--topic", topic,
                            "--group", f"crash-{topic}", "--db", url,
                            "--dead-letter-topic", dead, "--assign-all"],
                           env=env, stdout=fh, stderr=subprocess.STDOUT)


def _progress(db: L1db, group: str) -> int:
    return sum(o.next_offset for o in db.consumer_offsets(group).values())


#: (fault point, the batch of the process's life it strikes at, whether the database's
#: offsets must have moved since the process started): each point of a batch's way, at a
#: process's first batch (where what must have happened is exact) and later.
KILLS = [
    ("l1db.store.mid-transaction", 1, False),  # rows written, transaction never committed
    ("ingest.after-dead-letters", 1, False),  # dead letters sent, nothing stored
    ("ingest.after-db-commit", 1, True),  # stored with its offsets; Kafka commit not done
    ("l1db.store.mid-transaction", 3, True),
    ("ingest.after-dead-letters", 2, True),
    ("ingest.after-db-commit", 4, True),
]


@pytest.mark.parametrize("backend", [
    "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("cassandra", marks=[pytest.mark.cassandra, pytest.mark.slow,
                                     pytest.mark.timeout(3600)])])
def test_sigkill_at_each_point_of_a_batch_loses_and_duplicates_nothing(
        backend: str, stream, kafka_bootstrap: str, tmp_path: Path,  # type: ignore[no-untyped-def]
        request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'l1.sqlite3'}" if backend == "sqlite"
           else request.getfixturevalue("cassandra_url") if backend == "cassandra"
           else request.getfixturevalue("fresh_pg_url"))
    groups, encoded = stream
    topic, dead = new_topics(kafka_bootstrap, N_PARTITIONS)
    db = L1db.create(url)
    group = f"crash-{topic}"
    log = tmp_path / "ingest.log"
    # everything is published first, so that which batch a kill strikes is the plan's and
    # not the machine's; end markers out of band, on the control topic (the protocol); one
    # undecodable message per visit-detector, so that most batches have dead letters to send
    # before their transaction
    prod = producer(kafka_bootstrap)
    sent = sum(publish_visit_detectors(prod, topic, N_PARTITIONS, [groups[g]],
                                       encoded=[encoded[g]],
                                       extra={g % N_PARTITIONS: [POISON + bytes([g])]},
                                       control=True)
               for g in range(N_GROUPS))
    flush(prod)
    total_messages = N_ALERTS + N_GROUPS * (N_PARTITIONS + 1)
    assert sent == total_messages

    at_kill: list[int] = []
    for i, (point, nth, moves) in enumerate(KILLS):
        before = _progress(db, group)
        mark = tmp_path / f"fault-{i}.json"
        proc = _start(kafka_bootstrap, topic, dead, url, log, f"{point}:{nth}", mark)
        try:
            code = proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        struck = crash_mark(mark)
        # a kill that did not land is a failed test, never a pass by luck
        assert code == -signal.SIGKILL and struck is not None, \
            f"{point}:{nth} did not strike (exit {code}):\n{log.read_text()[-3000:]}"
        assert (struck["point"], struck["count"], struck["pid"]) == (point, nth, proc.pid)
        at_kill.append(_progress(db, group))
        assert (at_kill[-1] > before) if moves else (at_kill[-1] == before), \
            (point, nth, before, at_kill[-1])
    assert at_kill[-1] < total_messages  # every kill struck mid-stream

    proc = _start(kafka_bootstrap, topic, dead, url, log)
    try:
        # three Cassandra JVMs (RF 3) sharing 2 cores with other work store a few hundred
        # catalog rows/s: the 300,000 rows take minutes, not seconds
        done = db.wait_for_ingested([(v, d) for v, d, _ in groups],
                                    timeout=1800 if backend == "cassandra" else 300)
        proc.send_signal(signal.SIGTERM)  # a clean stop commits and exits 0
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    print(f"{backend}: messages stored when each kill struck {at_kill}")
    assert done, f"not every visit-detector completed; log tail:\n{log.read_text()[-3000:]}"

    want = expected_rows([a for _, _, alerts in groups for a in alerts])
    got = stored_keys(url)
    for table, keys in want.items():
        assert len(got[table]) == len(keys), f"{table}: {len(got[table])} != {len(keys)}"
        assert sorted(got[table]) == sorted(keys), table
    assert len(want["DiaSource"]) == 3 * N_ALERTS
    assert _progress(db, group) == total_messages
    assert db.info().n_ingested_visit_detectors == N_GROUPS
    # every poison message dead-lettered; a kill between the dead-letter send and the
    # database commit may send one twice (a reader de-duplicates by the source offset)
    letters = read_topic(kafka_bootstrap, dead, N_GROUPS, timeout=60)
    values = [m.value() for m in letters]
    assert set(values) == {POISON + bytes([g]) for g in range(N_GROUPS)}
    sources = {(h["dlt.source.partition"], h["dlt.source.offset"]) for h in
               ({k: v for k, v in m.headers()} for m in letters)}
    assert len(sources) == N_GROUPS
