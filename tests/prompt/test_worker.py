"""The worker's failure policy on a real broker and a real database: bounded retries that
survive crashes and hangs, a dead letter with its reason, and a night that goes on."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from alertbutler.cli import main
from alertbutler.config import Config, dump_toml
from alertbutler.kafka import Outgoing, produce_acknowledged
from alertbutler.l1db import L1db
from alertbutler.l1db.attempts import WorkAttempts
from alertbutler.metrics import ServiceMetrics
from alertbutler.prompt.events import NextVisit, WorkItem, encode_work_item
from alertbutler.prompt.kafka_io import (
    commit_past,
    make_consumer,
    make_producer,
    report_lag,
)
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.prompt.worker import Worker
from alertbutler.visit_detector import VisitDetector

from .conftest import read_all
from .poison_worker import PoisonProcessor

POISON = 1
SCRIPT = Path(__file__).with_name("poison_worker.py")


def _items(config: Config, n: int = 3) -> list[WorkItem]:
    event = NextVisit(instrument="SimCam", group_id="g-7", visit=7, ra=10.0, dec=-5.0,
                      camera_angle=0.0, band="r", start_time=60000.1, duration=30.0,
                      nimages=1, survey="test", sent_at=0.0)
    items = [WorkItem.for_detector(event, d) for d in range(n)]
    producer = make_producer(config, config.kafka.bootstrap_servers)
    produce_acknowledged(producer, [Outgoing(config.kafka.work_topic, encode_work_item(i), i.key,
                                             i.detector % config.kafka.partitions)
                                    for i in items])
    return items


def _statuses(config: Config) -> list[VisitDetectorStatus]:
    return [VisitDetectorStatus.from_json(v) for _, _, v in
            read_all(config.kafka.bootstrap_servers, config.prompt.status_topic, partitions=1)]


def _dead_letters(config: Config) -> list[dict[str, str]]:
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers,
                         "group.id": "dlt-reader", "enable.partition.eof": True})
    consumer.assign([TopicPartition(config.kafka.dead_letter_topic, 0, 0)])
    out = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, "dead-letter topic did not answer"
            if msg.error():
                break
            out.append({k: v.decode() for k, v in msg.headers() or []})
    finally:
        consumer.close()
    return out


@pytest.fixture
def worker_config(prompt_config: Callable[..., Config], tmp_path: Path) -> Config:
    config = prompt_config(prompt={"max_attempts": 2, "item_deadline_s": 2.0})
    L1db.create(config.l1db_url).close()
    return config


def _run_until_clean_exit(config: Config, tmp_path: Path, behaviour: str,
                          max_runs: int = 5) -> list[int]:
    """Restart the worker process after each crash, as a supervisor would; exit codes."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(dump_toml(config, redact=False))
    codes = []
    for _ in range(max_runs):
        done = subprocess.run([sys.executable, str(SCRIPT), str(config_file),
                               str(tmp_path / "journal"), str(POISON), behaviour],
                              timeout=120, capture_output=True, text=True)
        codes.append(done.returncode)
        if done.returncode == 0:
            return codes
    raise AssertionError(f"the worker never got past the poisoned item: exit codes {codes}")


@pytest.mark.parametrize("behaviour, code, reason", [
    ("die", 137, "each ended without a result"),
    ("hang", 70, "passed its deadline of 2 s"),
])
def test_item_that_kills_its_worker_is_dead_lettered_after_bounded_attempts(
        worker_config: Config, tmp_path: Path, behaviour: str, code: int,
        reason: str) -> None:
    items = _items(worker_config)
    codes = _run_until_clean_exit(worker_config, tmp_path, behaviour)
    # two attempts, each ending its process; the third start gives up and goes on
    assert codes == [code, code, 0]
    journal = (tmp_path / "journal").read_text().split("\n")
    assert journal.count(f"start {POISON}") == 2
    assert journal.count(f"abandon {POISON}") == 1
    for other in (0, 2):
        assert journal.count(f"done {other}") == 1
    statuses = {s.detector: s for s in _statuses(worker_config)}
    assert len(_statuses(worker_config)) == len(items)
    assert statuses[0].ok and statuses[2].ok
    assert not statuses[POISON].ok and reason in statuses[POISON].message
    letters = _dead_letters(worker_config)
    assert len(letters) == 1
    assert letters[0]["dlt.reason"].startswith("gave up after 2 attempts")
    assert reason in letters[0]["dlt.reason"]
    row = WorkAttempts(L1db(worker_config.l1db_url)).get(items[POISON].visit_detector)
    assert row is not None and row["finished_at"] is not None and row["attempts"] == 3


def test_item_that_raises_is_retried_then_dead_lettered_with_its_error(
        worker_config: Config, tmp_path: Path) -> None:
    items = _items(worker_config)
    journal = tmp_path / "journal"
    worker = Worker(worker_config, worker_config.kafka.bootstrap_servers,
                    PoisonProcessor(journal, POISON, "raise"))
    worker.run(threading.Event(), idle_exit_s=4.0)
    lines = journal.read_text().split("\n")
    assert lines.count(f"start {POISON}") == 2 and lines.count(f"abandon {POISON}") == 1
    assert worker.items_done == len(items)
    letters = _dead_letters(worker_config)
    assert len(letters) == 1
    assert "RuntimeError: poisoned detector 1" in letters[0]["dlt.reason"]
    assert "Traceback" in letters[0]["dlt.traceback"]


def test_attempts_are_shared_and_finished_items_start_again(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = WorkAttempts(L1db.create(db_url))
    item = VisitDetector(instrument="SimCam", visit=7, detector=3)
    first = ledger.begin(item, "w1")
    assert (first.number, first.previous_worker, first.last_error) == (1, None, None)
    ledger.failed(first, "RuntimeError: boom")
    again = WorkAttempts(L1db(db_url)).begin(item, "w2")  # another worker, same db
    assert (again.number, again.previous_worker, again.last_error) == (
        2, "w1", "RuntimeError: boom")
    assert "last error: RuntimeError: boom" in again.give_up_reason()
    ledger.finished(first)  # w1 lost the item to w2 (a rebalance): w2's attempt stands
    ledger.failed(first, "late news from w1")
    assert ledger.get(item)["finished_at"] is None  # type: ignore[index]
    assert ledger.get(item)["last_error"] == "RuntimeError: boom"  # type: ignore[index]
    ledger.finished(again)
    redelivered = ledger.begin(item, "w3")  # e.g. a fan-out that re-sent its event
    assert (redelivered.number, redelivered.previous_worker, redelivered.last_error) == (
        1, None, None)
    other_item = VisitDetector(instrument="SimCam", visit=7, detector=4)
    other = ledger.begin(other_item, "w3")
    ledger.release(other)  # handed back unprocessed: the start does not count
    other = ledger.begin(other_item, "w4")
    assert other.number == 1
    ledger.failed(other, "RuntimeError: still failing")
    assert main(["l1db", "attempts", "--url", db_url, "--unfinished", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["instrument"], r["visit"], r["detector"], r["attempts"], r["last_error"])
            for r in listed] == [("SimCam", 7, 4, 1, "RuntimeError: still failing"),
                                 ("SimCam", 7, 3, 1, None)]
    ledger.finished(other)
    assert main(["l1db", "attempts", "--url", db_url, "--unfinished"]) == 0
    assert "SimCam visit 7 detector 3  attempts 1" in capsys.readouterr().out


def test_an_outage_is_retried_without_counting_attempts(worker_config: Config,
                                                        tmp_path: Path) -> None:
    """Two database failures on one item (max_attempts is 2): an outage, not the item's
    fault, so it is processed once the database is back, and nothing is dead-lettered."""
    items = _items(worker_config)
    journal = tmp_path / "journal"
    worker = Worker(worker_config, worker_config.kafka.bootstrap_servers,
                    PoisonProcessor(journal, POISON, "outage"))
    worker.run(threading.Event(), idle_exit_s=4.0)
    lines = journal.read_text().split("\n")
    assert lines.count(f"start {POISON}") == 3 and lines.count(f"done {POISON}") == 1
    assert worker.items_done == len(items)
    assert all(s.ok for s in _statuses(worker_config))
    assert _dead_letters(worker_config) == []
    row = worker.ledger.get(items[POISON].visit_detector)
    assert row is not None and row["attempts"] == 1 and row["finished_at"] is not None


def test_a_worker_stopped_mid_item_hands_it_back_uncounted(worker_config: Config,
                                                            tmp_path: Path) -> None:
    """SIGTERM while an item hangs, then SIGKILL when the grace runs out (as ``up`` does):
    the stop takes the attempt back, so restarts of a deployment never dead-letter work."""
    items = _items(worker_config)
    config = dataclasses.replace(worker_config, prompt=dataclasses.replace(
        worker_config.prompt, item_deadline_s=600.0))
    config_file = tmp_path / "config.toml"
    config_file.write_text(dump_toml(config, redact=False))
    journal = tmp_path / "journal"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(config_file), str(journal),
                             str(POISON), "hang"])
    ledger = WorkAttempts(L1db(config.l1db_url))
    key = items[POISON].visit_detector
    try:
        deadline = time.monotonic() + 90
        while not (journal.exists() and f"start {POISON}" in journal.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, "item never started"
            time.sleep(0.2)
        assert ledger.get(key)["attempts"] == 1  # type: ignore[index]
        proc.send_signal(signal.SIGTERM)
        while ledger.get(key)["attempts"] != 0:  # type: ignore[index]
            assert time.monotonic() < deadline, "the stop did not take the attempt back"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(30)


def test_commit_refused_after_losing_the_partition_is_not_fatal(
        worker_config: Config) -> None:
    """A member that lost its partitions (here: past max.poll.interval.ms, as in a long
    rebalance) gets its commit refused; the worker logs it and goes on."""
    _items(worker_config, n=1)
    consumer = make_consumer(worker_config, worker_config.kafka.bootstrap_servers, "lost",
                             **{"max.poll.interval.ms": 6000})
    consumer.subscribe([worker_config.kafka.work_topic])
    try:
        msg = None
        while msg is None or msg.error():
            msg = consumer.poll(1.0)
        time.sleep(8.0)  # past max.poll.interval.ms: the member leaves the group
        assert commit_past(consumer, msg) is False
        assert consumer.committed([TopicPartition(msg.topic(), msg.partition())],
                                  timeout=10)[0].offset < 0  # nothing was committed
    finally:
        consumer.close()


def _lag_samples(metrics: ServiceMetrics) -> dict[int, float]:
    return {int(s.labels["partition"]): s.value for m in metrics.registry.collect()
            if m.name == "alertbutler_consumer_lag" for s in m.samples}


def test_lag_gauges_follow_the_assignment(worker_config: Config) -> None:
    """Lag from fetch-response watermarks, per assigned partition; a partition taken away
    (a rebalance) loses its gauge instead of reporting its last lag for ever."""
    config, topic = worker_config, worker_config.kafka.work_topic
    _items(config, n=4)  # one item on each of the four partitions
    metrics, reported = ServiceMetrics("worker"), set()
    consumer = make_consumer(config, config.kafka.bootstrap_servers, "lag-test")
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
        deadline = time.monotonic() + 30
        got = 0
        while got < 4:
            assert time.monotonic() < deadline, "the four items never came"
            msg = consumer.poll(0.5)
            got += msg is not None and not msg.error()
        report_lag(consumer, metrics, reported)
        assert _lag_samples(metrics) == {0: 0, 1: 0, 2: 0, 3: 0}
        consumer.assign([TopicPartition(topic, 0, 0)])  # three taken away; rewound to 0
        consumer.poll(1.0)
        report_lag(consumer, metrics, reported)
        assert set(_lag_samples(metrics)) == {0}
    finally:
        consumer.close()


class _Dependent:
    """Processes instantly; an item with dependencies is ready once they were processed."""

    def __init__(self) -> None:
        self.order: list[tuple[int | None, int]] = []
        self.asked = threading.Event()

    def ready(self, item: WorkItem) -> bool:
        if item.depends_on:
            self.asked.set()
        return all((vd.visit, vd.detector) in self.order for vd in item.depends_on)

    def process(self, item: WorkItem) -> VisitDetectorStatus:
        self.order.append((item.visit, item.detector))
        return VisitDetectorStatus(instrument=item.instrument, group_id=item.group_id,
                                   visit=item.visit, detector=item.detector, ok=True)

    def abandon(self, item: WorkItem) -> None:
        pass


def test_an_item_whose_dependency_is_queued_behind_it_waits_its_turn(
        worker_config: Config) -> None:
    """A later visit's item that reaches the worker before the earlier overlapping one it
    depends on (a backlog) is put back, the earlier one is taken first, then the later one:
    no 30 s association timeout, and association does not depend on delivery order."""
    config = worker_config
    event = NextVisit(instrument="SimCam", group_id="g-8", visit=8, ra=10.0, dec=-5.0,
                      camera_angle=0.0, band="r", start_time=60000.2, duration=30.0,
                      nimages=1, survey="test", sent_at=0.0)
    later = WorkItem.for_detector(
        event, 0, (VisitDetector(instrument="SimCam", visit=7, detector=1),))
    earlier = WorkItem.for_detector(dataclasses.replace(event, group_id="g-7", visit=7,
                                                        start_time=60000.1), 1)
    producer = make_producer(config, config.kafka.bootstrap_servers)
    processor = _Dependent()
    worker = Worker(config, config.kafka.bootstrap_servers, processor)
    thread = threading.Thread(target=worker.run, args=(threading.Event(),),
                              kwargs={"idle_exit_s": 6.0}, daemon=True)
    produce_acknowledged(producer, [Outgoing(config.kafka.work_topic, encode_work_item(later),
                                             later.key, 0)])
    thread.start()
    deadline = time.monotonic() + 60
    while not (processor.asked.is_set() or processor.order):
        assert time.monotonic() < deadline, "the later item never reached the worker"
        time.sleep(0.1)
    produce_acknowledged(producer, [Outgoing(config.kafka.work_topic, encode_work_item(earlier),
                                             earlier.key, 1)])
    thread.join(120)
    assert not thread.is_alive()
    assert processor.order == [(7, 1), (8, 0)]
    assert [s.visit for s in _statuses(config)] == [7, 8]
