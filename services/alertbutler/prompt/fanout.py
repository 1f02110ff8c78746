"""Fan-out: one nextVisit event becomes one work item per detector.

Each work item also lists the earlier visit-detectors whose footprints may overlap its own
(``depends_on``); association waits until the L1 database holds them, so the DiaObjects a
worker associates with do not depend on which worker ran first. The overlap test is
deliberately generous (boresight separation within the field of view's diameter, or, given
detector centres, centre separation within two detector radii): a spurious dependency only
costs a short wait, a missed one costs determinism.

The service reads nextVisit events from their topic, produces the items to the work topic
keyed by detector, waits for every acknowledgement, and only then commits the event's offset:
a fan-out killed at any point re-sends at most one event's items, which workers absorb because
re-processing is idempotent. On start it re-reads the already committed events of the topic to
rebuild its footprint history (the embedded broker forgets nothing while it runs, and Kafka
keeps the topic for its retention period).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)

from alertbutler.config import Config
from alertbutler.faults import crash_point
from alertbutler.kafka import Outgoing, dead_letter_of, produce_acknowledged
from alertbutler.kafka.message import placed
from alertbutler.metrics import Health, ServiceMetrics
from alertbutler.prompt.errors import BadEventError, UnknownDetectorError
from alertbutler.prompt.events import (
    NextVisit,
    WorkItem,
    decode_next_visit,
    encode_work_item,
    safe_name,
)
from alertbutler.prompt.kafka_io import (
    broker_watch,
    commit_past,
    make_consumer,
    make_producer,
    serve,
)
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.visit_detector import VisitDetector

log = logging.getLogger(__name__)

#: (boresight ra, dec, camera angle, detector) -> detector centre (ra, dec), degrees
DetectorCentre = Callable[[float, float, float, int], tuple[float, float]]


def angular_separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine: stable at small angles)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (math.sin((d2 - d1) / 2) ** 2
         + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


@dataclass
class FootprintHistory:
    """Recent visits' detector footprints, to find which earlier ones a new one overlaps."""

    fov_radius_deg: float
    detector_radius_deg: float | None = None
    detector_centre: DetectorCentre | None = None
    window_days: float = 1.0
    _visits: deque[tuple[float, int, list[tuple[int, float, float]]]] = field(
        default_factory=deque)

    def _centres(self, event: NextVisit, detectors: Collection[int]
                 ) -> list[tuple[int, float, float]]:
        if self.detector_centre is None:
            return [(d, event.ra, event.dec) for d in sorted(detectors)]
        return [(d, *self.detector_centre(event.ra, event.dec, event.camera_angle, d))
                for d in sorted(detectors)]

    def _limit(self) -> float:
        if self.detector_centre is not None and self.detector_radius_deg:
            return 2.0 * self.detector_radius_deg
        return 2.0 * self.fov_radius_deg

    def dependencies(self, event: NextVisit, detector: int) -> tuple[VisitDetector, ...]:
        """Earlier visit-detectors (oldest first) whose footprint may overlap this one's."""
        (_, ra, dec), = self._centres(event, [detector])
        limit = self._limit()
        found = []
        for start, visit, centres in self._visits:
            if start >= event.start_time or visit == event.visit:
                continue
            for det, dra, ddec in centres:
                if angular_separation(ra, dec, dra, ddec) <= limit:
                    found.append(VisitDetector(instrument=event.instrument, visit=visit,
                                               detector=det))
        return tuple(found)

    def add(self, event: NextVisit, detectors: Collection[int]) -> None:
        """Remember a visit (events without a visit id cannot be depended on)."""
        if event.visit is None:
            return
        self._visits.append((event.start_time, event.visit, self._centres(event, detectors)))
        while self._visits and self._visits[0][0] < event.start_time - self.window_days:
            self._visits.popleft()


@dataclass(frozen=True)
class FanoutResult:
    """The work items of one event, and the detectors refused with their error."""

    items: tuple[WorkItem, ...]
    errors: tuple[UnknownDetectorError, ...]


def fan_out(event: NextVisit, *, known_detectors: Collection[int],
            history: FootprintHistory | None = None) -> FanoutResult:
    """Work items for every detector of ``event`` the instrument has; unknown ones refused."""
    safe_name(event.group_id, "groupId")
    safe_name(event.instrument, "instrument")
    if event.visit is None:
        raise BadEventError(f"nextVisit {event.group_id} has no visit id: work is identified "
                            "(and its attempts counted) by instrument, visit and detector")
    wanted = sorted(set(event.detectors) if event.detectors is not None else known_detectors)
    known = set(known_detectors)
    good = [d for d in wanted if d in known]
    errors = tuple(
        UnknownDetectorError(
            f"nextVisit {event.group_id} (visit {event.visit}) names detector {d}, which "
            f"{event.instrument} does not have (known: {min(known)}..{max(known)})"
            if known else f"nextVisit {event.group_id} names detector {d}, but "
            f"{event.instrument} has no known detectors",
            visit=event.visit, detector=d)
        for d in wanted if d not in known)
    items = tuple(
        WorkItem.for_detector(event, d, history.dependencies(event, d) if history else ())
        for d in good)
    if history is not None:
        history.add(event, good)
    return FanoutResult(items=items, errors=errors)


class FanoutService:
    """nextVisit topic -> work topic, committing each event only after its items are acked.

    ``on_status`` receives one status per refused detector (the CLI publishes them to the
    status topic); undecodable events go to the dead-letter topic with their reason.
    """

    def __init__(self, config: Config, bootstrap: str, *, known_detectors: Collection[int],
                 history: FootprintHistory, group: str | None = None,
                 metrics: ServiceMetrics | None = None, health: Health | None = None) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.known_detectors = frozenset(known_detectors)
        self.history = history
        self.group = group or f"alertbutler-fanout-{config.kafka.next_visit_topic}"
        self.events_done = 0
        self.items_sent = 0
        self._resume_at: dict[int, int] = {}
        self.assigned = threading.Event()
        self.metrics = metrics
        self.health = health

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Offsets before the committed one were fanned out already: read them again only to
        # rebuild the footprint history, then carry on from there.
        committed = consumer.committed(partitions, timeout=30)
        self._resume_at = {tp.partition: max(tp.offset, 0) for tp in committed}
        for tp in partitions:
            tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        self.assigned.set()
        if self.health is not None:
            self.health.set_ready(True, "nextVisit partitions assigned")

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> int:
        """Serve until ``stop`` is set (or nothing came for ``idle_exit_s``); events done."""
        kafka = self.config.kafka
        consumer = make_consumer(self.config, self.bootstrap, self.group)
        producer = make_producer(self.config, self.bootstrap)
        n_work_partitions = max(1, self._partitions(kafka.work_topic))
        watch = broker_watch(self.config, self.bootstrap, "fanout", self.metrics,
                             self.health).start()
        consumer.subscribe([kafka.next_visit_topic], on_assign=self._on_assign)
        try:
            for msg in serve(consumer, stop, assigned=self.assigned, idle_exit_s=idle_exit_s,
                             health=self.health, metrics=self.metrics):
                _, partition, offset = placed(msg)
                replay = offset < self._resume_at.get(partition, 0)
                self._handle(msg, producer, n_work_partitions, replay=replay)
                if not replay:
                    crash_point("fanout.after-produce")
                    commit_past(consumer, msg)
                    self.events_done += 1
        finally:
            consumer.close()
            producer.flush(10 if watch.up else 0)
            watch.stop()
        return self.events_done

    def _partitions(self, topic: str) -> int:
        from alertbutler.kafka import list_topics

        return list_topics(self.bootstrap, settings=self.config.kafka.client).get(topic, 1)

    def _handle(self, msg: Message, producer: Producer, n_partitions: int, *,
                replay: bool) -> None:
        kafka, prompt = self.config.kafka, self.config.prompt
        try:
            event = decode_next_visit(msg.value())
            result = fan_out(event, known_detectors=self.known_detectors, history=self.history)
        except BadEventError as exc:
            if not replay:
                if self.metrics is not None:
                    self.metrics.dead_lettered.labels(self.metrics.service, "bad-event").inc()
                log.error("bad nextVisit event", extra={"offset": msg.offset(), "error": str(exc)})
                produce_acknowledged(producer, [dead_letter_of(
                    msg, kafka.dead_letter_topic, reason=str(exc), error=type(exc).__name__,
                    service="alertbutler-fanout")])
            return
        if replay:
            return
        out: list[Outgoing] = [
            Outgoing(kafka.work_topic, encode_work_item(item), item.key,
                     item.detector % n_partitions)
            for item in result.items]
        for error in result.errors:
            log.error("refused detector of a nextVisit",
                      extra={"visit": error.visit, "detector": error.detector,
                             "error": str(error)})
            status = VisitDetectorStatus(
                instrument=event.instrument, group_id=event.group_id, visit=event.visit,
                detector=int(error.detector or 0), ok=False, reason=error.reason,
                message=str(error), worker="fanout", finished_at=time.time())
            out.append(Outgoing(prompt.status_topic, status.to_json(), status.key))
        produce_acknowledged(producer, out)
        self.items_sent += len(result.items)
        if self.metrics is not None:
            self.metrics.messages_consumed.labels(self.metrics.service).inc()
            self.metrics.work_items.labels(self.metrics.service, "sent").inc(len(result.items))
            self.metrics.errors.labels(self.metrics.service, "unknown-detector").inc(
                len(result.errors))
        log.info("fanned out nextVisit", extra={
            "group_id": event.group_id, "visit": event.visit, "items": len(result.items),
            "refused": len(result.errors)})
