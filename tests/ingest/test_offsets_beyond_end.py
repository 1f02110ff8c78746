"""A stored offset beyond its partition's end (the topic lost its messages) is never skipped
silently: the ingester stops the partition and says so (log, metric, /readyz, ``ingest
status``) until ``alertbutler ingest reset-offsets``, which it picks up by itself.

Before this, the ingester read on from the stored offset: every message of the re-created
topic below it was skipped without a word, and ``ingest status`` showed lag 0.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from alertbutler.alerts.fake import fake_alerts
from alertbutler.cli import main as cli_main
from alertbutler.ingest import Ingester, IngestSettings, ingest_status
from alertbutler.kafka import create_topics, delete_topics, list_topics
from alertbutler.l1db import L1db
from alertbutler.metrics import Health, ServiceMetrics

from ._support import flush, new_topics, producer, publish_visit_detectors


def _settings(bootstrap: str, topic: str, dead: str, url: str) -> IngestSettings:
    return IngestSettings(topics=(topic,), db_url=url, group=f"g-{topic}",
                          dead_letter_topic=dead, aiokafka={"bootstrap_servers": bootstrap},
                          confluent={"bootstrap.servers": bootstrap}, assign_all=True)


def _recreate(bootstrap: str, topic: str) -> None:
    """Delete the topic, wait until the broker no longer lists it, create it again empty."""
    delete_topics(bootstrap, [topic])
    deadline = time.monotonic() + 60
    while topic in list_topics(bootstrap):
        assert time.monotonic() < deadline, f"{topic} still listed after its deletion"
        time.sleep(0.2)
    create_topics(bootstrap, {topic: 1})


async def _until(check, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


def test_offset_beyond_a_recreated_topics_end_stops_it_loudly_until_reset(
        kafka_bootstrap: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    topic, dead = new_topics(kafka_bootstrap, 1)
    group = f"g-{topic}"
    first = fake_alerts(40, seed=31, n_history=1, cutout_size=None, visit=7001, detector=1)
    later = fake_alerts(10, seed=32, n_history=1, cutout_size=None, visit=7002, detector=2)
    prod = producer(kafka_bootstrap)
    publish_visit_detectors(prod, topic, 1, [(7001, 1, first)])
    flush(prod)
    db = L1db.create(sqlite_url)
    settings = _settings(kafka_bootstrap, topic, dead, sqlite_url)

    async def first_run() -> None:
        ingester = Ingester(settings)
        task = asyncio.create_task(ingester.run())
        ok = await asyncio.to_thread(db.wait_for_ingested, [(7001, 1)], 120)
        ingester.stop()
        await task
        assert ok

    asyncio.run(first_run())
    assert db.consumer_offsets(group)[(topic, 0)].next_offset == 41

    # the topic loses its messages (re-created; a memory-only broker's restart does the
    # same) and gets 11 new ones: all of them below the stored offset 41
    _recreate(kafka_bootstrap, topic)
    publish_visit_detectors(prod, topic, 1, [(7002, 2, later)])
    flush(prod)

    metrics, health = ServiceMetrics("ingest"), Health()
    ingester = Ingester(settings, metrics=metrics, health=health)
    labels = {"service": "ingest", "topic": topic, "partition": "0"}

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("alertbutler_offset_beyond_end", labels)

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def cli(*argv: str) -> int:
        try:  # the CLI sets up logging on this test's captured stderr: put it back after
            return cli_main(list(argv))
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)

    monkeypatch.setenv("ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)

    async def second_run() -> None:
        task = asyncio.create_task(ingester.run())
        try:
            await _until(lambda: ingester.beyond_end or task.done(),
                         "the ingester noticed the offset beyond the end")
            assert ingester.beyond_end == {(topic, 0): 41}
            assert not health.ready
            assert "reset-offsets" in health.detail
            assert gauge() == 1
            assert not db.is_ingested(7002, 2)  # nothing skipped, nothing read
            status = await asyncio.to_thread(
                ingest_status, db_url=sqlite_url, group=group, topics=(topic,),
                confluent={"bootstrap.servers": kafka_bootstrap}, interval=0.1)
            (part,) = status.partitions
            assert (part.position, part.high_watermark, part.beyond_end, part.lag) == \
                (41, 11, True, None)
            assert status.total_lag is None
            assert await asyncio.to_thread(
                cli, "ingest", "status", "--topic", topic, "--group", group, "--db",
                sqlite_url, "--interval", "0.1") == 1
            # the operator's recovery: read the partition again from its start
            assert await asyncio.to_thread(
                cli, "ingest", "reset-offsets", "--topic", topic, "--group", group, "--db",
                sqlite_url, "--to", "earliest") == 0
            assert await asyncio.to_thread(db.wait_for_ingested, [(7002, 2)], 120)
            await _until(lambda: health.ready, "ready again after the reset")
            assert gauge() is None
        finally:
            ingester.stop()
            await task

    with caplog.at_level(logging.INFO, logger="alertbutler"):
        asyncio.run(second_run())
    said = [r for r in caplog.records if "nothing is read from this partition" in
            r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.ERROR  # loud, and once
    got = set(db.sources_of_visit_detector(7002, 2).column("diaSourceId").to_pylist())
    assert got == {a["diaSource"]["diaSourceId"] for a in later}
    assert db.consumer_offsets(group)[(topic, 0)].next_offset == 11
    assert ingester.totals.skipped == 0


def test_reset_offsets_refuses_bad_input(sqlite_url: str, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    L1db.create(sqlite_url).close()
    base = ["ingest", "reset-offsets", "--db", sqlite_url]
    assert cli_main([*base, "--topic", "alerts"]) == 2  # where to? no default
    assert "--to earliest" in capsys.readouterr().err
    assert cli_main([*base, "--topic", "alerts", "--to", "-3"]) == 2
    assert "--to '-3'" in capsys.readouterr().err
    assert cli_main([*base, "--to", "earliest"]) == 2  # which topic?
    assert cli_main([*base, "--topic", "alerts", "--to", "earliest"]) == 0
    assert "nothing to reset" in capsys.readouterr().out


def test_a_recreated_topic_with_more_messages_is_told_by_its_topic_id(
        kafka_bootstrap: str, sqlite_url: str) -> None:
    """The new topic holds more messages than the stored offset: no end tells, its Kafka
    topic id does (before, its first 41 messages were skipped and the visit-detector never
    completed)."""
    topic, dead = new_topics(kafka_bootstrap, 1)
    group = f"g-{topic}"
    first = fake_alerts(40, seed=41, n_history=1, cutout_size=None, visit=7101, detector=1)
    later = fake_alerts(60, seed=42, n_history=1, cutout_size=None, visit=7102, detector=2)
    prod = producer(kafka_bootstrap)
    publish_visit_detectors(prod, topic, 1, [(7101, 1, first)])
    flush(prod)
    db = L1db.create(sqlite_url)
    settings = _settings(kafka_bootstrap, topic, dead, sqlite_url)

    async def run(ingester: Ingester, until: tuple[int, int], *, reset: bool) -> None:
        task = asyncio.create_task(ingester.run())
        try:
            if reset:
                await _until(lambda: ingester.beyond_end or task.done(),
                             "the ingester noticed the re-created topic")
                assert ingester.beyond_end == {(topic, 0): 41}
                assert "re-created" in ingester.health.detail  # type: ignore[union-attr]
                assert not db.is_ingested(*until)
                db.reset_consumer_offsets(group, topic, to=None)
            assert await asyncio.to_thread(db.wait_for_ingested, [until], 120)
        finally:
            ingester.stop()
            await task

    asyncio.run(run(Ingester(settings), (7101, 1), reset=False))
    recorded = db.topic_id(group, topic)
    assert recorded
    _recreate(kafka_bootstrap, topic)
    publish_visit_detectors(prod, topic, 1, [(7102, 2, later)])  # 61 messages: beyond 41
    flush(prod)
    asyncio.run(run(Ingester(settings, health=Health()), (7102, 2), reset=True))
    got = set(db.sources_of_visit_detector(7102, 2).column("diaSourceId").to_pylist())
    assert got == {a["diaSource"]["diaSourceId"] for a in later}
    assert db.topic_id(group, topic) not in (None, recorded)  # the new topic's, from now on
