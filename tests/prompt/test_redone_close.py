"""The chaos failure's sequence (seed 296341: a visit-detector's alerts on the topic, none in
the L1 database), replayed at named points with real workers, broker and ingester:

1. a worker dies on the item (its first start);
2. the next start is past ``max_attempts``: the worker gives up, closes the visit-detector
   with an empty batch (end markers of 0 alerts), dead-letters the item, publishes its
   status, and is SIGKILLed at ``prompt.before-commit``, before the item's commit;
3. the item is delivered again; the ledger saw it finish, so it is new work: this start
   publishes the alerts, with markers of their own.

The ingester used to take the first marker of each partition: the empty close completed
the visit-detector with 0 alerts, the later markers were ignored, and anyone trusting the L1
database's completeness (a night's progress, association of later visits) went on without
the alerts. Now it completes on the attempt that published them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbutler.alerts import control_topic
from alertbutler.config import Config, dump_toml
from alertbutler.faults import CRASH_ENV, crash_mark
from alertbutler.ingest import Ingester, IngestSettings
from alertbutler.kafka.transactions import transaction_support
from alertbutler.l1db import L1db

from .conftest import read_all
from .poison_worker import PublishingProcessor
from .test_worker import SCRIPT, _dead_letters, _items, _statuses

pytestmark = pytest.mark.slow


def _worker(config_file: Path, journal: Path, detector: int,
            crash_at: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    done = subprocess.run([sys.executable, str(SCRIPT), str(config_file), str(journal),
                           str(detector), "publish"], env=env, timeout=180,
                          capture_output=True, text=True)
    return done.returncode


def _scalar(url: str, sql: str, **params: object) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def test_alerts_of_a_redone_item_complete_its_visit_detector_after_an_empty_close(
        prompt_config: Callable[..., Config], tmp_path: Path) -> None:
    config = prompt_config(prompt={"max_attempts": 1})
    L1db.create(config.l1db_url).close()
    config_file = tmp_path / "config.toml"
    config_file.write_text(dump_toml(config, redact=False))
    (item,) = _items(config, 1)
    journal, mark = tmp_path / "journal", tmp_path / "crash.mark"

    assert _worker(config_file, journal, item.detector) == 137  # 1: died on its first start
    assert _worker(config_file, journal, item.detector,  # 2: gave up, killed before commit
                   crash_at=f"prompt.before-commit@{mark}") == -9
    assert (crash_mark(mark) or {}).get("point") == "prompt.before-commit"
    assert _worker(config_file, journal, item.detector) == 0  # 3: redone, published
    assert journal.read_text().split("\n")[:-1] == ["start 0", "abandon 0", "start 0", "done 0"]
    statuses = _statuses(config)
    n_alerts = PublishingProcessor.N_ALERTS
    n_partitions = config.kafka.partitions
    # Where the broker has transactions (Apache Kafka), the give-up's status, dead letter and
    # empty close were in the item's transaction, which the kill before the commit aborted:
    # read_committed readers never see them. Without (the embedded broker) they stay.
    aborted = transaction_support(config.kafka.bootstrap_servers).available
    closes = 1 if aborted else 2
    assert [s.ok for s in statuses] == ([True] if aborted else [False, True])
    dead = _dead_letters(config)
    if aborted:
        assert dead == []
    else:
        assert "gave up after 1 attempts" in dead[0]["dlt.reason"]
    assert len(statuses[-1].alert_ids) == n_alerts
    markers = read_all(config.kafka.bootstrap_servers, control_topic(config.kafka.alert_topic),
                       partitions=1, expect=closes * n_partitions)
    assert len(markers) == closes * n_partitions  # (the empty close's, then) the alerts'

    ingester = Ingester(IngestSettings(
        topics=(config.kafka.alert_topic,), db_url=config.l1db_url, group="g-redone",
        dead_letter_topic=config.kafka.dead_letter_topic,
        aiokafka={"bootstrap_servers": config.kafka.bootstrap_servers},
        confluent={"bootstrap.servers": config.kafka.bootstrap_servers},
        session_timeout_ms=6000, assign_all=True))
    vd = {"v": item.visit, "d": item.detector}

    def everything_read() -> bool:
        """Every alert stored, and both closes' markers consumed (not a timing guess: the
        ingester's own offsets in the L1 database)."""
        rows = _scalar(config.l1db_url, 'SELECT COUNT(*) FROM "DiaSource" WHERE visit = :v '
                       "AND detector = :d", **vd)
        read = _scalar(config.l1db_url, "SELECT MAX(next_offset) FROM consumer_offset WHERE "
                       "topic = :t", t=control_topic(config.kafka.alert_topic))
        if aborted:  # one close to read: the visit-detector completes on the alerts' markers
            done = _scalar(config.l1db_url, "SELECT n_alerts FROM ingested_visit_detector "
                           "WHERE visit = :v AND detector = :d", **vd)
            return rows == n_alerts and done is not None
        return rows == n_alerts and read == 2 * n_partitions

    async def main() -> None:
        task = asyncio.create_task(ingester.run())
        deadline = time.monotonic() + 120
        while not await asyncio.to_thread(everything_read):
            assert time.monotonic() < deadline, "the ingester never read the night"
            await asyncio.sleep(0.2)
        ingester.stop()
        await task

    asyncio.run(main())
    # complete, and counting the alerts the redone item published: not the empty close
    assert _scalar(config.l1db_url, "SELECT n_alerts FROM ingested_visit_detector WHERE "
                   "visit = :v AND detector = :d", **vd) == n_alerts


def test_a_worker_publishes_alerts_of_a_visit_detector_it_had_closed_empty(
        prompt_config: Callable[..., Config], tmp_path: Path) -> None:
    """The same sequence on one worker (a fixed ``--name``: its local repo survives the
    restart): the empty close is registered there, and the redone item's alerts used to be
    taken for "already published", so they never went out while the status said ok."""
    from alertbutler.alerts.fake import fake_alerts
    from alertbutler.alerts.publish_datastore import PublishDatastore
    from alertbutler.butler import Butler
    from alertbutler.prompt.publishing import ALERT_RUN, AlertPublisher

    config = prompt_config()
    Butler.create(tmp_path / "local").close()
    butler = Butler(tmp_path / "local", run=ALERT_RUN, datastore=PublishDatastore(
        bootstrap=config.kafka.bootstrap_servers, topic_template=config.kafka.alert_topic))
    publisher = AlertPublisher(butler)
    alerts = fake_alerts(5, seed=3, n_history=1, cutout_size=None, visit=7, detector=0)
    where = {"instrument": "SimCam", "visit": 7, "detector": 0}
    try:
        publisher.publish_alerts([], **where)  # gave up: closed empty
        publisher.publish_alerts(alerts, **where)  # the item redone on the same worker
        publisher.publish_alerts(alerts, **where)  # once is enough
    finally:
        butler.close()
    n_partitions = config.kafka.partitions
    on_topic = read_all(config.kafka.bootstrap_servers, config.kafka.alert_topic,
                        partitions=n_partitions)  # to the end: a second copy would show
    assert len(on_topic) == len(alerts)
    markers = read_all(config.kafka.bootstrap_servers, control_topic(config.kafka.alert_topic),
                       partitions=1)
    assert len(markers) == 2 * n_partitions  # the close's, then the alerts'

