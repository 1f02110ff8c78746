"""The observatory for a running deployment: nextVisit events and raws, as the summit sends.

:class:`Feed` is the observatory itself (an acknowledged publish on the next-visit topic, an
atomic landing of each raw, a log of when each happened); what it plays is a subclass's:
:class:`NightFeed` a simulated night (below), ``alertbutler.replay.into.RecordingFeed`` a
recorded one (``alertbutler night replay --into``).

``alertbutler up --night`` plays the simulator's night into the deployment's own topics and
landing area, as the summit would: each visit's nextVisit event on the next-visit topic, then,
``lead_s`` later, its raws landing atomically (written aside, then renamed) under
``<landing>/<instrument>/<groupId>/<detector>.fits``. Visits follow each other every
``cadence_s`` seconds whatever the workers are doing (the telescope does not wait).

With ``prestage=True`` (``--speed 0`` in the benchmark) every raw is written *before* any event
is sent, and all events go at once: the workers then run flat out and the night measures their
throughput, not the simulator's rendering speed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbutler.kafka import Outgoing, produce_acknowledged
from alertbutler.night.plan import SimulatedNight

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NightPlan(SimulatedNight):
    """Which simulated night to play, and on what schedule (the main job's default night)."""

    #: every raw lands before any event is sent, and the events go at once (see the module doc)
    prestage: bool = False

    @classmethod
    def default(cls, **changes: Any) -> NightPlan:
        """The prompt main job's default night (``alertbutler run``), with ``changes``."""
        return cls(**changes)


@dataclass
class FeedLog:
    """What the feed did: when each event went out and each raw landed (unix seconds)."""

    event_sent_at: dict[int, float] = field(default_factory=dict)
    arrived_at: dict[tuple[int, int], float] = field(default_factory=dict)
    started_at: float = 0.0


class Feed(threading.Thread):
    """The observatory side of a deployment, whatever plays it: publishes nextVisit events
    (acknowledged, acks=all) and lands raws atomically, logging when each happened.

    Subclasses say what to play in :meth:`play` (a simulated night: :class:`NightFeed`; a
    recorded night: ``alertbutler.replay.into.RecordingFeed``); an exception there is kept
    in :attr:`error` for the caller, and :attr:`finished` is set either way.
    """

    def __init__(self, *, producer: Any, topic: str, landing: Path,
                 stop: threading.Event | None = None, name: str = "feed") -> None:
        super().__init__(name=name, daemon=True)
        self.producer = producer
        self.topic = topic
        self.landing = landing
        self.stop = stop or threading.Event()
        self.log = FeedLog()
        self.error: BaseException | None = None
        self.finished = threading.Event()

    @property
    def expected(self) -> set[tuple[int, int]]:
        """(visit, detector) of every raw this feed will land."""
        raise NotImplementedError

    def play(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.play()
        except BaseException as exc:  # reported by the caller, not lost in a thread
            self.error = exc
            log.exception("%s failed", self.name)
        finally:
            self.finished.set()

    def publish(self, key: bytes | None, value: bytes, *, visit: int, group_id: str) -> float:
        """One nextVisit message on the deployment's topic; returns when it was acknowledged."""

        produce_acknowledged(self.producer, [Outgoing(self.topic, value, key)])
        sent = time.time()
        self.log.event_sent_at[visit] = sent
        log.info("nextVisit sent", extra={"visit": visit, "group": group_id})
        return sent

    def land(self, instrument: str, group_id: str, visit: int, detector: int,
             write: Callable[[Path], object]) -> float:
        """One raw in the landing area (written aside, then renamed); returns its arrival."""
        from alertbutler.prompt.raws import land_raw

        _, arrived = land_raw(self.landing, instrument, group_id, detector, write)
        self.log.arrived_at[(visit, detector)] = arrived
        return arrived


class NightFeed(Feed):
    """Plays a :class:`NightPlan` into Kafka and the landing area (see the module doc)."""

    def __init__(self, plan: NightPlan, sim: Any, *, producer: Any, topic: str,
                 landing: Path, stop: threading.Event | None = None) -> None:
        super().__init__(producer=producer, topic=topic, landing=landing, stop=stop,
                         name="night-feed")
        self.plan = plan
        self.sim = sim

    @property
    def expected(self) -> set[tuple[int, int]]:
        return {(v.visit, d) for v in self.sim.visits for d in self.sim.camera.detectors}

    def play(self) -> None:
        if self.plan.prestage:
            self._prestaged()
        else:
            self._real_time()

    def _event(self, record: dict[str, Any]) -> Any:
        from alertbutler.prompt import NextVisit

        return NextVisit.from_record(record, sent_at=time.time())

    def _send(self, record: dict[str, Any]) -> Any:
        from alertbutler.prompt import encode_next_visit

        event = self._event(record)
        self.publish(event.group_id.encode(), encode_next_visit(event), visit=event.visit,
                     group_id=event.group_id)
        return event

    def _land(self, visit: Any, group_id: str, detector: int) -> None:
        from alertbutler.sim.files import write_raw

        raw = self.sim.raw(visit, detector)
        self.land(self.sim.camera.name, group_id, visit.visit, detector,
                  lambda tmp: write_raw(tmp, raw.data, raw.header))

    def _real_time(self) -> None:
        plan, sim = self.plan, self.sim
        self.log.started_at = time.time()
        start = time.monotonic()
        records = sim.next_visit_events()
        for index, (visit, record) in enumerate(zip(sim.visits, records, strict=True)):
            if self.stop.wait(max(0.0, start + index * plan.cadence_s - time.monotonic())):
                return
            announced = time.monotonic()
            event = self._send(record)
            if self.stop.wait(max(0.0, announced + plan.lead_s - time.monotonic())):
                return
            for detector in sim.camera.detectors:
                if self.stop.is_set():
                    return
                self._land(visit, event.group_id, detector)

    def _prestaged(self) -> None:
        sim = self.sim
        records = sim.next_visit_events()
        for visit, record in zip(sim.visits, records, strict=True):
            for detector in sim.camera.detectors:
                if self.stop.is_set():
                    return
                self._land(visit, record["groupId"], detector)
        self.log.started_at = time.time()
        for record in records:
            if self.stop.is_set():
                return
            self._send(record)
