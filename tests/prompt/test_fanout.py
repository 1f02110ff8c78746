"""Fan-out: one item per detector, dependencies on earlier overlapping visits, bad events."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from alertbutler.config import Config
from alertbutler.faults import CRASH_ENV, crash_mark
from alertbutler.prompt.errors import BadEventError
from alertbutler.prompt.events import (
    NextVisit,
    decode_work_item,
    encode_next_visit,
    encode_work_item,
)
from alertbutler.prompt.fanout import FanoutService, FootprintHistory, fan_out
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.visit_detector import VisitDetector
from tests.prompt.conftest import read_all


def _vd(visit: int, detector: int) -> VisitDetector:
    """A visit-detector of the test camera."""
    return VisitDetector(instrument="SIMCAM", visit=visit, detector=detector)


def _event(visit: int, *, ra: float = 150.0, start: float = 61000.0,
           detectors: tuple[int, ...] | None = None, group: str | None = None) -> NextVisit:
    return NextVisit(
        instrument="SIMCAM", group_id=str(visit) if group is None else group, visit=visit,
        ra=ra, dec=-30.0, camera_angle=1.5, band="r", start_time=start, duration=30.0,
        nimages=1, survey="test", sent_at=1.0e9, detectors=detectors)


def test_one_item_per_detector_and_unknown_detectors_refused() -> None:
    result = fan_out(_event(1, detectors=(3, 0, 7, 1)), known_detectors=range(4))
    assert [i.detector for i in result.items] == [0, 1, 3]
    assert [e.detector for e in result.errors] == [7]
    assert "detector 7" in str(result.errors[0]) and "0..3" in str(result.errors[0])
    every = fan_out(_event(2), known_detectors=range(4))
    assert [i.detector for i in every.items] == [0, 1, 2, 3] and not every.errors


def test_dependencies_are_earlier_overlapping_visits_only() -> None:
    history = FootprintHistory(fov_radius_deg=0.2)
    fan_out(_event(1, start=61000.0), known_detectors=range(2), history=history)
    fan_out(_event(2, ra=170.0, start=61000.01), known_detectors=range(2), history=history)
    third = fan_out(_event(3, start=61000.02), known_detectors=range(2), history=history)
    assert third.items[0].depends_on == (_vd(1, 0), _vd(1, 1))
    far = fan_out(_event(4, ra=170.0, start=61000.03), known_detectors=range(2),
                  history=history)
    assert far.items[1].depends_on == (_vd(2, 0), _vd(2, 1))


def test_work_item_round_trip_and_bad_bytes() -> None:
    item = fan_out(_event(5), known_detectors=[2]).items[0]
    assert decode_work_item(encode_work_item(item)) == item
    for bad in (b"", b"\x01\x00\x00\x00\x00abc", encode_work_item(item)[:9]):
        with pytest.raises(BadEventError):
            decode_work_item(bad)


def test_an_event_without_a_visit_id_is_refused() -> None:
    """Work is identified, and its attempts counted, by (instrument, visit, detector)."""
    event = dataclasses.replace(_event(6), visit=None)
    with pytest.raises(BadEventError, match="no visit id"):
        fan_out(event, known_detectors=range(2))


def test_work_item_identity_is_one_type() -> None:
    item = fan_out(_event(5, detectors=(1,)), known_detectors=range(2)).items[0]
    assert item.visit_detector == _vd(5, 1)
    assert item.visit_detector.data_id == {"instrument": "SIMCAM", "visit": 5, "detector": 1}
    assert item.label == "SIMCAM visit 5 detector 1"


@pytest.mark.parametrize("group", ["../../etc", "a/b", ""])
def test_unsafe_group_ids_are_refused(group: str) -> None:
    with pytest.raises(BadEventError, match="groupId"):
        fan_out(_event(6, group=group), known_detectors=range(2))


def test_service_fans_out_and_records_errors(prompt_config: Callable[..., Config],
                                             kafka_bootstrap: str) -> None:
    config = prompt_config()
    k = config.kafka
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    producer.produce(k.next_visit_topic, encode_next_visit(_event(11, start=61000.0)))
    producer.produce(k.next_visit_topic, b"not an event")
    producer.produce(k.next_visit_topic, encode_next_visit(
        _event(12, start=61000.01, detectors=(1, 9))))
    assert producer.flush(10) == 0
    service = FanoutService(config, kafka_bootstrap, known_detectors=range(4),
                            history=FootprintHistory(fov_radius_deg=0.3))
    assert service.run(threading.Event(), idle_exit_s=3.0) == 3
    work = read_all(kafka_bootstrap, k.work_topic, partitions=k.partitions, expect=5)
    items = sorted((decode_work_item(v) for _, _, v in work), key=lambda i: (i.visit, i.detector))
    assert [(i.visit, i.detector) for i in items] == [(11, 0), (11, 1), (11, 2), (11, 3), (12, 1)]
    assert all(p == int(key) % k.partitions for p, key, _ in work)
    assert items[-1].depends_on == tuple(_vd(11, d) for d in range(4))
    (status,) = [VisitDetectorStatus.from_json(v) for _, _, v in
                 read_all(kafka_bootstrap, config.prompt.status_topic, partitions=1, expect=1)]
    assert (status.visit, status.detector, status.ok, status.reason) == \
        (12, 9, False, "unknown-detector")
    dead = read_all(kafka_bootstrap, k.dead_letter_topic, partitions=1, expect=1)
    assert [v for _, _, v in dead] == [b"not an event"]
    # A restarted fan-out resumes after the committed events and sends nothing again,
    # but still knows the earlier footprints.
    again = FanoutService(config, kafka_bootstrap, known_detectors=range(4),
                          history=FootprintHistory(fov_radius_deg=0.3))
    assert again.run(threading.Event(), idle_exit_s=3.0) == 0
    assert len(again.history._visits) == 2


def test_fanout_killed_after_produce_before_commit_resends_and_loses_nothing(
        prompt_config: Callable[..., Config], kafka_bootstrap: str, tmp_path: Path) -> None:
    """SIGKILLed at the crash point after the second event's items were acknowledged and
    before that event was committed: the restarted fan-out sends that event's items again
    (at least once), and every event's items are on the work topic."""
    config = prompt_config()
    k = config.kafka
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for i in range(3):
        producer.produce(k.next_visit_topic, encode_next_visit(_event(21 + i,
                                                                      start=61000.0 + i)))
    assert producer.flush(10) == 0
    env = {**os.environ, "ALERTBUTLER_GENERAL__DATA_DIR": config.general.data_dir,
           "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
           "ALERTBUTLER_KAFKA__NEXT_VISIT_TOPIC": k.next_visit_topic,
           "ALERTBUTLER_KAFKA__WORK_TOPIC": k.work_topic,
           "ALERTBUTLER_KAFKA__DEAD_LETTER_TOPIC": k.dead_letter_topic,
           "ALERTBUTLER_KAFKA__PARTITIONS": str(k.partitions),
           "ALERTBUTLER_PROMPT__STATUS_TOPIC": config.prompt.status_topic}
    argv = [sys.executable, "-m", "alertbutler", "fanout", "--detectors", "4",
            "--idle-exit", "3"]
    mark = tmp_path / "crash.json"
    first = subprocess.run(argv, env={**env, CRASH_ENV: f"fanout.after-produce:2@{mark}"},
                           capture_output=True, text=True, timeout=300)
    struck = crash_mark(mark)
    assert first.returncode == -signal.SIGKILL and struck is not None, first.stderr[-2000:]
    assert struck["point"] == "fanout.after-produce" and struck["count"] == 2
    again = subprocess.run(argv, env={**env, CRASH_ENV: f"fanout.after-produce:2@{mark}"},
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "fanout: 2 nextVisit events" in again.stdout  # the uncommitted one and the last
    work = read_all(kafka_bootstrap, k.work_topic, partitions=k.partitions, expect=16)
    sent = [(i.visit, i.detector) for i in (decode_work_item(v) for _, _, v in work)]
    assert sorted(set(sent)) == [(v, d) for v in (21, 22, 23) for d in range(4)]
    assert sorted(sent) == sorted([*set(sent), *[(22, d) for d in range(4)]])
