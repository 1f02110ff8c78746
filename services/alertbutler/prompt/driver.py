"""The observatory side of the main job: announce each visit, then let its raws arrive.

For each visit of the simulated night, in time order and on a compressed schedule (one visit
every ``cadence_s`` instead of every few minutes): publish the nextVisit event, render the
visit's raws (the simulator's work stands in for the exposure), and ``lead_s`` after the
event deliver them into the landing area. Raws arrive on the schedule whatever the workers
are doing, as they do at a telescope: a gate on the workers' progress could deadlock a worker
that waits for a raw while the item holding the gate queues behind it. Faults can be
injected for the bad-input tests: a corrupt raw (a FITS file cut after its header), a raw
that never arrives, an event naming a detector the camera does not have.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from alertbutler.kafka import Outgoing, produce_acknowledged
from alertbutler.prompt.events import NextVisit, encode_next_visit
from alertbutler.prompt.raws import raw_path

log = logging.getLogger(__name__)

UNKNOWN_DETECTOR = 99


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Bad input to inject, by visit index (0-based) and detector."""

    corrupt_raw: tuple[int, int] | None = None
    missing_raw: tuple[int, int] | None = None
    unknown_detector_visit: int | None = None


@dataclass
class DriverLog:
    """What the driver did, for the report: events sent, raws delivered, ground truth."""

    event_sent_at: dict[int, float] = field(default_factory=dict)
    arrived_at: dict[tuple[int, int], float] = field(default_factory=dict)
    truth: list[Any] = field(default_factory=list)  # astropy Tables, one per raw
    announced: list[int] = field(default_factory=list)


class NightDriver(threading.Thread):
    """Plays the simulated night into Kafka and the landing area (see the module doc)."""

    def __init__(self, *, sim: Any, producer: Producer, topic: str, landing: Path,
                 cadence_s: float, lead_s: float, faults: Faults | None = None,
                 stop: threading.Event | None = None) -> None:
        super().__init__(name="night-driver", daemon=True)
        self.sim = sim
        self.producer = producer
        self.topic = topic
        self.landing = landing
        self.cadence_s = cadence_s
        self.lead_s = lead_s
        self.faults = faults or Faults()
        self.stop = stop or threading.Event()
        self.log = DriverLog()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._play()
        except BaseException as exc:  # reported by the main job, not lost in a thread
            self.error = exc
            log.exception("night driver failed")

    def _event(self, index: int, record: dict[str, Any]) -> NextVisit:
        event = NextVisit.from_record(record, sent_at=time.time())
        if self.faults.unknown_detector_visit == index:
            event = replace(event, detectors=(*(event.detectors or ()), UNKNOWN_DETECTOR))
        return event

    def _play(self) -> None:
        from alertbutler.sim.files import write_raw

        events = self.sim.next_visit_events()
        start = time.monotonic()
        for index, (visit, record) in enumerate(zip(self.sim.visits, events, strict=True)):
            if self.stop.wait(max(0.0, start + index * self.cadence_s - time.monotonic())):
                return
            announced = time.monotonic()
            event = self._event(index, record)
            produce_acknowledged(self.producer, [Outgoing(self.topic, encode_next_visit(event),
                                                          event.group_id.encode())])
            self.log.event_sent_at[visit.visit] = event.sent_at
            self.log.announced.append(visit.visit)
            raws = []
            for detector in self.sim.camera.detectors:
                raw = self.sim.raw(visit, detector)
                self.log.truth.append(raw.truth)
                raws.append(raw)
            if self.stop.wait(max(0.0, announced + self.lead_s - time.monotonic())):
                return
            for raw in raws:
                where = (index, raw.detector)
                if where == self.faults.missing_raw:
                    continue
                target = raw_path(self.landing, event.instrument, event.group_id, raw.detector)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.part")
                write_raw(tmp, raw.data, raw.header)
                if where == self.faults.corrupt_raw:
                    with open(tmp, "r+b") as fh:  # keep the header, lose the pixels
                        fh.truncate(2880 * 12)
                os.replace(tmp, target)
                self.log.arrived_at[(visit.visit, raw.detector)] = os.stat(target).st_mtime
