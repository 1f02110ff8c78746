"""The scheduler keeps the recorded spacing, scaled: its arithmetic on a simulated clock, and
never early on the real one (how closely it keeps time on a machine: bench/replay.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alertbutler.alerts import decode_message, encode_next_visit, next_visit_record
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.prompt.kafka_io import make_producer
from alertbutler.replay.clock import Pacer, ReplayClock
from alertbutler.replay.feed import RecordingFeed
from alertbutler.replay.night_run import NightSpec
from alertbutler.replay.recording import ScheduledEvent
from alertbutler.replay.scheduler import Scheduler
from alertbutler.replay.testing import consume_all

T0 = 1_795_000_000.0  # a recorded night, Unix seconds
SPACING_S = 5.0


def _timeline(tmp_path: Path, n_visits: int) -> tuple[list[ScheduledEvent], list]:
    """nextVisit at t, its raw at t + 2 s, the next visit at t + 4 s, ..."""
    events, messages = [], []
    raw = tmp_path / "recording" / "raws" / "raw.fits"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    for i in range(n_visits):
        group = f"2026112500{i:03d}"
        record = next_visit_record(instrument="simcam", group_id=group, ra=150.0, dec=-30.0,
                                   camera_angle=0.0, filters="r", start_time=61000.0 + i,
                                   sent=T0 + 2 * i * SPACING_S, detectors=[0])
        messages.append((group.encode(), encode_next_visit(record)))
        events.append(ScheduledEvent(T0 + 2 * i * SPACING_S, "next_visit", group, index=i))
        events.append(ScheduledEvent(T0 + (2 * i + 1) * SPACING_S, "raw", group, detector=0,
                                     file="raws/raw.fits"))
    return events, messages


class _SimulatedTime:
    """A monotonic clock that moves only when the pacer sleeps: the schedule's arithmetic,
    free of the machine's load (how closely a real replay keeps time is in bench/replay.py)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_speed_10_keeps_the_scaled_spacing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Through the player every replay uses (a plain one and ``--into``): RecordingFeed."""
    events, messages = _timeline(tmp_path, 5)
    topic = f"replay-nv-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 1})
    landing = tmp_path / "landing"
    spec = NightSpec(root=tmp_path / "recording", instrument="simcam", camera="simcam",
                     n_detectors=1, detector_size=None, events=messages, schedule=events,
                     visits={e.group_id: 1 + i for i, e in enumerate(events)
                             if e.kind == "next_visit"})
    clock = ReplayClock(T0)
    seen_clock: list[float] = []

    class Recorded(RecordingFeed):
        def emit(self, event: ScheduledEvent) -> None:
            seen_clock.append(clock.now())
            super().emit(event)

    producer = make_producer(load_config(env={}), kafka_bootstrap)
    feed = Recorded(spec, speed=10, producer=producer, topic=topic, landing=landing,
                    clock=clock)
    time_ = _SimulatedTime()
    feed.scheduler.pacer = Pacer(10, monotonic=time_.monotonic, sleep=time_.sleep)
    feed.emit(events[0])  # connect first (the warm-up message)
    seen_clock.clear()
    feed.play()
    producer.flush(5)
    report = feed.report
    assert [e.event for e in report.emissions] == events
    assert seen_clock == [e.t for e in events]  # the pipeline's clock is the recorded one
    assert set(feed.log.arrived_at) == {(v, 0) for v in spec.visits.values()}
    # Each event went out at (t - t0) / 10 after the start, within the pacer's slack.
    for emission in report.emissions:
        assert emission.due_s == pytest.approx((emission.event.t - T0) / 10)
        assert emission.actual_s == pytest.approx(emission.due_s, abs=0.002)
    assert all(abs(err) < 0.01 for err in report.spacing_errors())
    assert report.replay_span_s == pytest.approx(report.recorded_span_s / 10, rel=0.01)
    assert max(time_.sleeps) <= 0.5  # a stop is seen within half a second

    # What really went out, in the recorded order: the messages, then every raw landed.
    got = consume_all(kafka_bootstrap, topic, 6)[1:]  # skip the warm-up message
    assert [decode_message(m.value()).record["groupId"] for m in got] == \
        [e.group_id for e in events if e.kind == "next_visit"]
    for e in events:
        if e.kind == "raw":
            assert (landing / "simcam" / e.group_id / "0.fits").is_file()


def test_on_the_real_clock_nothing_goes_out_early(tmp_path: Path) -> None:
    """A busy machine makes emissions late, never early: the pacer waits for each due time."""
    events, _ = _timeline(tmp_path, 5)
    emitted: list[tuple[ScheduledEvent, float]] = []
    scheduler = Scheduler(events, speed=50, emit=lambda e: None)
    pacer = scheduler.pacer
    scheduler.emit = lambda e: emitted.append((e, pacer.elapsed()))
    report = scheduler.run()
    assert [e for e, _ in emitted] == events
    for (event, elapsed), emission in zip(emitted, report.emissions, strict=True):
        assert elapsed >= (event.t - T0) / 50 - 0.002
        assert emission.late_s >= -0.002


def test_speed_0_emits_in_order_without_waiting(tmp_path: Path) -> None:
    events, _ = _timeline(tmp_path, 50)
    order: list[ScheduledEvent] = []
    report = Scheduler(list(reversed(events)), speed=0, emit=order.append).run()
    assert order == events
    assert report.replay_span_s < report.recorded_span_s / 100


def test_gate_holds_events_back(tmp_path: Path) -> None:
    events, _ = _timeline(tmp_path, 3)
    gated: list[str] = []
    Scheduler(events, speed=0, emit=lambda e: None,
              gate=lambda e: gated.append(e.kind)).run()
    assert gated == ["next_visit", "raw"] * 3


def test_negative_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        Scheduler([], speed=-1, emit=lambda e: None)
