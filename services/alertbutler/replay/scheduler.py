"""Re-issue a recorded timeline: nextVisit events and raw arrivals, on schedule.

The scheduler walks the recorded events in time order. For each it waits (the
:class:`~alertbutler.replay.clock.Pacer`) until ``(t - t0) / speed`` seconds after the start,
optionally passes a *gate* (at ``--speed 0`` the gate holds an event back until the pipeline
has room for it, "as fast as the workers take them"), moves the replayed clock to the event's
recorded time and hands the event to the emitter. It measures when each emission actually
happened, so a replay reports how closely it kept the schedule.

The emitter is a callable; every replay uses
:meth:`alertbutler.replay.feed.RecordingFeed.emit`, which publishes the recorded nextVisit
message (acks=all, idempotent) or lands a raw the way the camera side does (temporary name,
then an atomic rename).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alertbutler.replay.clock import Pacer, ReplayClock
from alertbutler.replay.recording import ScheduledEvent


@dataclass(frozen=True)
class Emission:
    """When one event was due and when it went out, in seconds after the replay started."""

    event: ScheduledEvent
    due_s: float
    actual_s: float

    @property
    def late_s(self) -> float:
        return self.actual_s - self.due_s


@dataclass
class ScheduleReport:
    """What a scheduler run did, and how well it kept time."""

    speed: float
    emissions: list[Emission] = field(default_factory=list)
    stopped: bool = False

    @property
    def recorded_span_s(self) -> float:
        if len(self.emissions) < 2:
            return 0.0
        return self.emissions[-1].event.t - self.emissions[0].event.t

    @property
    def replay_span_s(self) -> float:
        if len(self.emissions) < 2:
            return 0.0
        return self.emissions[-1].actual_s - self.emissions[0].actual_s

    @property
    def max_late_s(self) -> float:
        return max((e.late_s for e in self.emissions), default=0.0)

    def spacing_errors(self) -> list[float]:
        """Relative error of each replayed interval against the recorded one / speed."""
        out = []
        for a, b in itertools.pairwise(self.emissions):
            want = (b.event.t - a.event.t) / self.speed if self.speed else 0.0
            if want > 0:
                out.append((b.actual_s - a.actual_s) / want - 1.0)
        return out


class Scheduler:
    """Emit ``events`` on their recorded schedule scaled by ``speed`` (see the module doc)."""

    def __init__(self, events: Sequence[ScheduledEvent], *, speed: float,
                 emit: Callable[[ScheduledEvent], None],
                 clock: ReplayClock | None = None,
                 gate: Callable[[ScheduledEvent], None] | None = None,
                 on_emit: Callable[[Emission], None] | None = None,
                 pacer: Pacer | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.events = sorted(events, key=lambda e: (e.t, e.kind != "next_visit"))
        self.speed = speed
        self.emit = emit
        self.clock = clock
        self.gate = gate
        self.on_emit = on_emit
        self.pacer = pacer or Pacer(speed)

    def run(self, stop: threading.Event | None = None) -> ScheduleReport:
        report = ScheduleReport(self.speed)
        if not self.events:
            return report
        t0 = self.events[0].t
        self.pacer.start()
        for event in self.events:
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            offset = event.t - t0
            self.pacer.wait_until(offset)
            if self.gate is not None:
                self.gate(event)
            if self.clock is not None:
                self.clock.set(event.t)
            actual = self.pacer.elapsed()
            self.emit(event)
            emission = Emission(event, self.pacer.due(offset), actual)
            report.emissions.append(emission)
            if self.on_emit is not None:
                self.on_emit(emission)
        return report
