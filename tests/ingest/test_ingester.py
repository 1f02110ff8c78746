"""The ingester in-process: poison messages are dead-lettered with their reason and never stop
it, good ones are all stored, visit-detectors complete, SIGTERM-style stop commits."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import time

import fastavro
import pytest

from alertbutler.alerts import encode_alert, encode_alerts, encode_next_visit, next_visit_record
from alertbutler.alerts.fake import fake_alerts
from alertbutler.cli import main as cli_main
from alertbutler.ingest import Ingester, IngestSettings, ingest_status
from alertbutler.l1db import L1db, VisitDetector
from alertbutler.metrics import ServiceMetrics

from ._support import (
    expected_rows,
    flush,
    ingest_until,
    new_topics,
    partition_of,
    producer,
    publish_visit_detectors,
    read_topic,
    stored_keys,
)


def _l1(visit: int, detector: int) -> VisitDetector:
    """An L1 database's visit-detector: its rows carry no instrument."""
    return VisitDetector(instrument="", visit=visit, detector=detector)


N_PARTITIONS = 3


def _settings(bootstrap: str, topic: str, dead: str, url: str, **extra) -> IngestSettings:  # type: ignore[no-untyped-def]
    return IngestSettings(topics=(topic,), db_url=url, group=f"g-{topic}",
                          dead_letter_topic=dead,
                          aiokafka={"bootstrap_servers": bootstrap},
                          confluent={"bootstrap.servers": bootstrap},
                          session_timeout_ms=6000, **extra)


def _poison() -> dict[str, bytes]:
    good = encode_alert(fake_alerts(1, seed=99, n_history=1, cutout_size=None)[0])
    impossible = fake_alerts(1, seed=98, n_history=1, cutout_size=None)[0]
    impossible["diaSource"]["dec"] = 95.0
    far = fake_alerts(1, seed=97, n_history=1, cutout_size=None)[0]
    far["prvDiaSources"][0]["ra"] = float("nan")
    # valid Avro body behind an id nobody knows
    unknown = b"\x00" + struct.pack(">I", 123456) + good[5:]
    next_visit = encode_next_visit(next_visit_record(
        instrument="X", group_id="g", ra=1.0, dec=2.0, camera_angle=0.0, filters="r",
        start_time=0.0))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "record", "name": "x", "fields": [
        {"name": "a", "type": "long"}]}, {"a": 1})
    return {
        "garbage": b"\xde\xad\xbe\xef not an alert at all",
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "unknown schema id": unknown,
        "dec = 95": encode_alert(impossible),
        "NaN ra in history": encode_alert(far),
        "next visit on the alert topic": next_visit,
        "trailing bytes": good + buf.getvalue(),
    }


def test_poison_messages_go_to_the_dead_letter_topic(kafka_bootstrap: str,
                                                     sqlite_url: str) -> None:
    topic, dead = new_topics(kafka_bootstrap, N_PARTITIONS)
    groups = [(3001, 7, fake_alerts(300, seed=1, n_history=2, cutout_size=None,
                                    visit=3001, detector=7)),
              (3002, 8, fake_alerts(300, seed=2, n_history=2, cutout_size=None,
                                    visit=3002, detector=8))]
    poison = _poison()
    prod = producer(kafka_bootstrap)
    # poison in the middle of the first visit-detector, spread over the partitions
    extra = {p: [] for p in range(N_PARTITIONS)}
    for i, data in enumerate(poison.values()):
        extra[i % N_PARTITIONS].append(data)
    publish_visit_detectors(prod, topic, N_PARTITIONS, groups[:1], extra=extra, control=True)
    publish_visit_detectors(prod, topic, N_PARTITIONS, groups[1:], control=True)
    flush(prod)

    db = L1db.create(sqlite_url)
    metrics = ServiceMetrics("ingest")
    ingester = Ingester(_settings(kafka_bootstrap, topic, dead, sqlite_url, assign_all=True),
                        metrics=metrics)
    ingest_until(ingester, db, [(3001, 7), (3002, 8)])
    want = expected_rows([a for _, _, alerts in groups for a in alerts])
    got = stored_keys(sqlite_url)
    for table, keys in want.items():
        assert sorted(got[table]) == sorted(keys), table
    assert ingester.totals.dead_letters == len(poison)
    sample = metrics.registry.get_sample_value
    assert sample("alertbutler_alerts_ingested_total", {"service": "ingest"}) == 600
    assert sum(sample("alertbutler_dead_lettered_total", {"service": "ingest", "reason": r})
               or 0 for r in {"BadMagicByteError", "TruncatedMessageError",
                              "UnknownSchemaError", "RowError", "UnexpectedKindError",
                              "AlertFormatError"}) == len(poison)
    assert sample("alertbutler_consumer_lag", {"service": "ingest", "topic": topic,
                                               "partition": "0"}) == 0
    letters = read_topic(kafka_bootstrap, dead, len(poison))
    assert len(letters) == len(poison)
    by_value = {bytes(m.value() or b""): dict(m.headers()) for m in letters}
    assert set(by_value) == set(poison.values())
    reasons = {name: by_value[data]["dlt.reason"].decode() for name, data in poison.items()}
    assert "magic byte" in reasons["garbage"]
    assert "empty message" in reasons["empty"]
    assert "truncated" in reasons["truncated"]
    assert "unknown schema id 123456" in reasons["unknown schema id"]
    assert "'dec' outside [-90.0, 90.0]" in reasons["dec = 95"]
    assert "'ra'" in reasons["NaN ra in history"]
    assert "does not belong on an alert topic" in reasons["next visit on the alert topic"]
    assert "bytes left" in reasons["trailing bytes"]
    for headers in by_value.values():
        assert int(dict(headers)["dlt.source.offset"]) >= 0
        assert dict(headers)["dlt.source.topic"].decode() == topic
    info = db.info()
    assert info.n_ingested_visit_detectors == 2
    assert db.ingested([(3001, 7), (3002, 8)]) == {_l1(3001, 7),
                                                   _l1(3002, 8)}


@pytest.mark.postgres
def test_group_member_resumes_from_database_offsets(kafka_bootstrap: str,
                                                   fresh_pg_url: str) -> None:
    """A consumer-group member stops after some batches; a new member (same group) resumes
    from the offsets stored with the rows: nothing lost, nothing twice. The topic is one an
    earlier version wrote: no control topic, the end markers inline."""
    topic, dead = new_topics(kafka_bootstrap, N_PARTITIONS, control=False)
    L1db.create(fresh_pg_url).close()
    first = fake_alerts(600, seed=5, n_history=2, cutout_size=None, visit=4001, detector=1)
    second = fake_alerts(600, seed=6, n_history=2, cutout_size=None, visit=4002, detector=2)
    prod = producer(kafka_bootstrap)
    publish_visit_detectors(prod, topic, N_PARTITIONS, [(4001, 1, first)])
    flush(prod)
    db = L1db(fresh_pg_url)

    async def run_until(visit_detectors, then_publish=None) -> Ingester:  # type: ignore[no-untyped-def]
        ingester = Ingester(_settings(kafka_bootstrap, topic, dead, fresh_pg_url,
                                      max_batch_messages=100))
        task = asyncio.create_task(ingester.run())
        if then_publish:
            await asyncio.to_thread(then_publish)
        ok = await asyncio.to_thread(db.wait_for_ingested, visit_detectors, 120)
        ingester.stop()
        await task
        assert ok
        return ingester

    one = asyncio.run(run_until([(4001, 1)]))
    def publish_second() -> None:
        publish_visit_detectors(prod, topic, N_PARTITIONS, [(4002, 2, second)])
        flush(prod)
    two = asyncio.run(run_until([(4002, 2)], publish_second))
    assert one.totals.messages + two.totals.messages == 1200 + 2 * N_PARTITIONS
    want = expected_rows(first + second)
    got = stored_keys(fresh_pg_url)
    for table, keys in want.items():
        assert sorted(got[table]) == sorted(keys), table
    offsets = db.consumer_offsets(f"g-{topic}")
    assert sum(o.next_offset for o in offsets.values()) == 1200 + 2 * N_PARTITIONS


def test_status_lag_comes_from_fetch_high_watermarks(
        kafka_bootstrap: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Also: a topic an earlier version wrote (no control topic, end markers inline) is
    ingested completely by an ingester assigned every partition."""
    topic, dead = new_topics(kafka_bootstrap, 2, control=False)
    first = fake_alerts(200, seed=11, n_history=1, cutout_size=None, visit=5001, detector=3)
    later = fake_alerts(70, seed=12, n_history=1, cutout_size=None, visit=5002, detector=3)
    prod = producer(kafka_bootstrap)
    publish_visit_detectors(prod, topic, 2, [(5001, 3, first)])
    flush(prod)
    db = L1db.create(sqlite_url)
    ingester = Ingester(_settings(kafka_bootstrap, topic, dead, sqlite_url, assign_all=True))
    ingest_until(ingester, db, [(5001, 3)])
    publish_visit_detectors(prod, topic, 2, [(5002, 3, later)])  # not ingested
    flush(prod)
    status = ingest_status(db_url=sqlite_url, group=f"g-{topic}", topics=(topic,),
                           confluent={"bootstrap.servers": kafka_bootstrap}, interval=0.1)
    by_partition = {p.partition: p for p in status.partitions}
    ends = {p: sum(1 for a in first + later if partition_of(a, 2) == p) + 2 for p in (0, 1)}
    assert all(n > 20 for n in ends.values())
    for p in (0, 1):
        assert by_partition[p].high_watermark == ends[p]
        assert by_partition[p].position == ends[p] - sum(
            1 for a in later if partition_of(a, 2) == p) - 1
    assert status.total_lag == 70 + 2
    assert status.n_messages == 200 + 2
    assert status.last_ingested["visit"] == 5001

    monkeypatch.setenv("ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the CLI sets up logging on this test's captured stderr: put it back after
        assert cli_main(["ingest", "status", "--topic", topic, "--group", f"g-{topic}",
                         "--db", sqlite_url, "--interval", "0.1", "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert cli_main(["l1db", "info", "--url", sqlite_url, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert printed["total_lag"] == 72
    assert info["row_counts"]["DiaSource"] == 400
    assert info["last_ingested_visit_detector"]["visit"] == 5001


@pytest.mark.postgres
def test_two_group_members_share_the_partitions(kafka_bootstrap: str,
                                                fresh_pg_url: str) -> None:
    """Two ingesters in one consumer group (how ingestion scales out): each takes part of
    the partitions, rebalancing hands partitions over without loss or duplicates, and the
    visit-detectors complete from markers (on the control topic) and alert offsets committed
    by different members."""
    topic, dead = new_topics(kafka_bootstrap, 4)
    db = L1db.create(fresh_pg_url)
    groups = [(6000 + g, g, fake_alerts(400, seed=20 + g, n_history=2, cutout_size=None,
                                        visit=6000 + g, detector=g)) for g in range(3)]
    prod = producer(kafka_bootstrap)
    one = Ingester(_settings(kafka_bootstrap, topic, dead, fresh_pg_url,
                             max_batch_messages=100))
    two = Ingester(_settings(kafka_bootstrap, topic, dead, fresh_pg_url,
                             max_batch_messages=100))

    def publish() -> None:
        for group in groups:
            publish_visit_detectors(prod, topic, 4, [group], control=True)
            flush(prod)

    async def both_members_hold_partitions() -> None:
        """Publish only once the group has both members (a second member that joins after
        the first read everything shares nothing: on a busy machine it did)."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            mine = [{p for t, p in m.assignment if t == topic} for m in (one, two)]
            if all(mine) and mine[0] | mine[1] == set(range(4)) and not mine[0] & mine[1]:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the group never split the partitions: {mine}")

    async def main() -> None:
        tasks = [asyncio.create_task(one.run()), asyncio.create_task(two.run())]
        await both_members_hold_partitions()
        await asyncio.to_thread(publish)
        ok = await asyncio.to_thread(db.wait_for_ingested,
                                     [(v, d) for v, d, _ in groups], 150)
        one.stop()
        two.stop()
        await asyncio.gather(*tasks)
        assert ok

    asyncio.run(main())
    assert one.totals.alerts > 0 and two.totals.alerts > 0
    # a rebalance may hand over a partition before all of it is read: at least once
    assert one.totals.messages + two.totals.messages >= 1200 + 3 * 4
    offsets = db.consumer_offsets(f"g-{topic}")
    assert sum(o.next_offset for o in offsets.values()) == 1200 + 3 * 4
    want = expected_rows([a for _, _, alerts in groups for a in alerts])
    got = stored_keys(fresh_pg_url)
    for table, keys in want.items():
        assert sorted(got[table]) == sorted(keys), table


def test_a_batch_ends_at_its_byte_limit(kafka_bootstrap: str, sqlite_url: str) -> None:
    """Alerts with cutouts, a byte limit of about ten of them and no message limit to speak
    of: however much one fetch returns, no batch holds more than the limit plus one message
    (the rest is carried into the next batch, in order), and every alert is still stored
    once."""
    topic, dead = new_topics(kafka_bootstrap, N_PARTITIONS)
    alerts = fake_alerts(90, seed=21, n_history=3, cutout_size=64, visit=6001, detector=4)
    encoded = encode_alerts(alerts)
    prod = producer(kafka_bootstrap)
    publish_visit_detectors(prod, topic, N_PARTITIONS, [(6001, 4, alerts)],
                            encoded=[encoded], control=True)
    flush(prod)
    largest, total = max(map(len, encoded)), sum(map(len, encoded))
    limit = 10 * largest
    db = L1db.create(sqlite_url)
    ingester = Ingester(_settings(kafka_bootstrap, topic, dead, sqlite_url, assign_all=True,
                                  max_batch_messages=100_000, max_batch_bytes=limit))
    ingest_until(ingester, db, [(6001, 4)])
    # each batch is below limit + largest: at least total / (limit + largest) of them
    assert ingester.totals.batches >= total // (limit + largest) + 1 >= 8
    assert ingester.totals.alerts == 90
    got = stored_keys(sqlite_url)
    for table, keys in expected_rows(alerts).items():
        assert sorted(got[table]) == sorted(keys), table
