"""The observatory for a running deployment: a simulated night's nextVisit events and raws.

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
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NightPlan:
    """Which simulated night to play, and on what schedule."""

    seed: int = 1
    n_visits: int = 8
    n_detectors: int = 4
    detector_size: int = 2048
    #: multiplies the density of static stars (as the prompt main job's option)
    star_density_scale: float = 1.0
    #: seconds between visits and between a nextVisit event and its raws (the main job's)
    cadence_s: float = 20.0
    lead_s: float = 4.0
    prestage: bool = False

    @classmethod
    def default(cls, **changes: Any) -> NightPlan:
        """The prompt main job's default night (``alertbutler run``), with ``changes``."""
        from alertbutler.prompt.main_job import MainJobOptions

        o = MainJobOptions()
        base = dict(seed=o.seed, n_visits=o.n_visits, n_detectors=o.n_detectors,
                    detector_size=o.detector_size, star_density_scale=o.star_density_scale,
                    cadence_s=o.cadence_s, lead_s=o.lead_s)
        return cls(**{**base, **changes})

    def simulator(self) -> Any:
        from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator, SkyDensity

        camera = Camera(n_detectors=self.n_detectors, nx=self.detector_size,
                        ny=self.detector_size)
        density = SkyDensity(stars=SkyDensity().stars * self.star_density_scale)
        return Simulator(SimConfig(seed=self.seed, camera=camera, density=density,
                                   night=NightConfig(n_visits=self.n_visits)))

    @property
    def camera_args(self) -> tuple[str, ...]:
        """Worker and fan-out options naming this night's camera geometry."""
        return ("--detectors", str(self.n_detectors), "--detector-size", str(self.detector_size))


@dataclass
class FeedLog:
    """What the feed did: when each event went out and each raw landed (unix seconds)."""

    event_sent_at: dict[int, float] = field(default_factory=dict)
    arrived_at: dict[tuple[int, int], float] = field(default_factory=dict)
    started_at: float = 0.0


class NightFeed(threading.Thread):
    """Plays a :class:`NightPlan` into Kafka and the landing area (see the module doc)."""

    def __init__(self, plan: NightPlan, sim: Any, *, producer: Any, topic: str,
                 landing: Path, stop: threading.Event | None = None) -> None:
        super().__init__(name="night-feed", daemon=True)
        self.plan = plan
        self.sim = sim
        self.producer = producer
        self.topic = topic
        self.landing = landing
        self.stop = stop or threading.Event()
        self.log = FeedLog()
        self.error: BaseException | None = None
        self.finished = threading.Event()

    @property
    def expected(self) -> set[tuple[int, int]]:
        return {(v.visit, d) for v in self.sim.visits for d in self.sim.camera.detectors}

    def run(self) -> None:
        try:
            if self.plan.prestage:
                self._prestaged()
            else:
                self._real_time()
        except BaseException as exc:  # reported by the caller, not lost in a thread
            self.error = exc
            log.exception("night feed failed")
        finally:
            self.finished.set()

    def _event(self, record: dict[str, Any]) -> Any:
        from alertbutler.prompt import NextVisit

        return NextVisit(
            instrument=record["instrument"], group_id=record["groupId"], visit=record["visit"],
            ra=record["position"][0], dec=record["position"][1],
            camera_angle=record["cameraAngle"], band=record["filters"],
            start_time=record["startTime"], duration=record["duration"],
            nimages=record["nimages"], survey=record["survey"], sent_at=time.time(),
            detectors=tuple(record["detectors"]))

    def _send(self, record: dict[str, Any]) -> Any:
        from alertbutler.prompt import encode_next_visit
        from alertbutler.prompt.kafka_io import produce_all

        event = self._event(record)
        produce_all(self.producer, [(self.topic, event.group_id.encode(),
                                     encode_next_visit(event), None)])
        self.log.event_sent_at[event.visit] = event.sent_at
        log.info("nextVisit sent", extra={"visit": event.visit, "group": event.group_id})
        return event

    def _land(self, visit: Any, group_id: str, detector: int) -> None:
        from alertbutler.prompt.raws import raw_path
        from alertbutler.sim.files import write_raw

        raw = self.sim.raw(visit, detector)
        target = raw_path(self.landing, self.sim.camera.name, group_id, detector)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        write_raw(tmp, raw.data, raw.header)
        os.replace(tmp, target)  # a worker never sees half a file
        self.log.arrived_at[(visit.visit, detector)] = os.stat(target).st_mtime

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
