"""The player of a recording: its nextVisit messages and raws, on its schedule.

:class:`RecordingFeed` is the observatory of :class:`alertbutler.deploy.feed.Feed` (an
acknowledged publish on the next-visit topic, each raw written aside and renamed into the
landing area, a log of when each happened) driven by the replay's
:class:`~alertbutler.replay.scheduler.Scheduler`: each event goes out at ``(t - t0) / speed``
after the start, after an optional gate (``--speed 0``). The nextVisit messages are the
recorded ones, byte for byte, so the pipeline cannot tell a replay from the night. A plain
replay plays it into its own services; ``--into`` into a running deployment's.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertbutler.deploy.feed import Feed
from alertbutler.replay.clock import ReplayClock
from alertbutler.replay.errors import RecordingError
from alertbutler.replay.recording import ScheduledEvent
from alertbutler.replay.scheduler import Emission, Scheduler, ScheduleReport

if TYPE_CHECKING:
    from alertbutler.replay.night_run import NightSpec


class RecordingFeed(Feed):
    """Plays a recording's nextVisit events and raws (``spec``) on its recorded schedule."""

    def __init__(self, spec: NightSpec, *, speed: float, producer: Any, topic: str,
                 landing: Path, gate: Callable[[ScheduledEvent], None] | None = None,
                 clock: ReplayClock | None = None, stop: threading.Event | None = None) -> None:
        super().__init__(producer=producer, topic=topic, landing=landing, stop=stop,
                         name="recording-feed")
        self.spec = spec
        self.scheduler = Scheduler(spec.schedule, speed=speed, emit=self.emit, gate=gate,
                                   clock=clock, on_emit=self.emitted_append)
        self.emitted: list[Emission] = []  # as they happen (progress)
        self.report = ScheduleReport(speed)  # the scheduler's, once it returned

    @property
    def expected(self) -> set[tuple[int, int]]:
        return {(self.spec.visits[g], d) for g, d in self.spec.expected}

    def play(self) -> None:
        self.log.started_at = time.time()
        self.report = self.scheduler.run(self.stop)

    def emitted_append(self, emission: Emission) -> None:
        self.emitted.append(emission)

    def emit(self, event: ScheduledEvent) -> None:
        """One scheduled event, now: publish its nextVisit message or land its raw."""
        spec = self.spec
        visit = spec.visits.get(event.group_id)
        if visit is None:
            raise RecordingError(spec.root, f"group {event.group_id} has no recorded nextVisit")
        if event.kind == "next_visit":
            if event.index is None or not 0 <= event.index < len(spec.events):
                raise RecordingError(spec.root, f"schedule entry for group {event.group_id} "
                                     f"points at message {event.index}, which is not recorded")
            key, value = spec.events[event.index]
            self.publish(key, value, visit=visit, group_id=event.group_id)
            return
        if event.file is None or event.detector is None:
            raise RecordingError(spec.root, f"raw entry for group {event.group_id} names no "
                                 "file or detector")
        source = spec.root / event.file
        if source.is_symlink() or not source.is_file():
            # a link could reach any file readable here and land it in a live deployment
            raise RecordingError(source, "raw missing from the recording (or a link)")
        self.land(spec.instrument, event.group_id, visit, event.detector,
                  lambda tmp: shutil.copyfile(source, tmp))
