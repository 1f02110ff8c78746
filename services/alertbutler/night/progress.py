"""How far a night got: the workers' status records and the L1 database's bookkeeping.

Workers publish one status record per attempt at a visit-detector on ``prompt.status_topic``
(the latest one wins); the ingester marks a visit-detector complete in the L1 database once
its end markers arrived and its alerts are stored. A night is done when every expected
visit-detector has both, and the L1 database counts (at least) the alerts its latest
successful status reports: an earlier attempt may have closed it empty (a worker that gave
up, then died before committing the item) before the attempt that published its alerts.
The status topic is read by manual assignment from its start (no group join, and never a
ListOffsets lookup, which the embedded broker gets wrong). One monitor for every verb that
runs a night (``run``, ``night replay`` with or without ``--into``, ``up --night``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from alertbutler.config import Config
from alertbutler.kafka.message import value_of
from alertbutler.prompt.status import VisitDetectorStatus


class NightProgress:
    """Status records and L1 completion of the ``expected`` (visit, detector) pairs.

    ``visits`` (groupId -> visit) places a status record that carries no visit number;
    records of visit-detectors not expected are kept in :attr:`refused` (an event naming a
    detector the camera does not have, another night's on a shared topic).
    """

    def __init__(self, config: Config, expected: set[tuple[int, int]], *,
                 visits: Mapping[str, int] | None = None, l1_every_s: float = 0.2) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from alertbutler.kafka import confluent_settings, group_id
        from alertbutler.l1db import L1db

        self.expected = set(expected)
        self.visits = dict(visits or {})
        self.statuses: dict[tuple[int, int], VisitDetectorStatus] = {}
        self.refused: list[VisitDetectorStatus] = []
        self.attempts: dict[tuple[int, int], int] = {}
        self.ingested_at: dict[tuple[int, int], float] = {}
        #: alerts the L1 database counts per completed visit-detector
        self.ingested_alerts: dict[tuple[int, int], int] = {}
        self.l1db = L1db(config.l1db_url)
        settings = confluent_settings(config)
        settings.update({
            "group.id": group_id(config, f"alertbutler-night-progress-{os.getpid()}"),
            "enable.auto.commit": False, "log_level": 3})
        self.consumer = Consumer(settings)
        self.consumer.assign([TopicPartition(config.prompt.status_topic, 0, OFFSET_BEGINNING)])
        self._lock = threading.Lock()
        self._l1_every_s = l1_every_s
        self._last_l1 = 0.0

    def _key(self, status: VisitDetectorStatus) -> tuple[int, int]:
        visit = status.visit if status.visit is not None else self.visits.get(status.group_id)
        return int(visit or 0), status.detector

    def poll(self) -> None:
        """Read the status records that came, and (every ``l1_every_s``) the L1 database."""
        with self._lock:
            for msg in self.consumer.consume(500, timeout=0.1):
                if msg.error():
                    continue
                status = VisitDetectorStatus.from_json(value_of(msg))
                key = self._key(status)
                if key in self.expected:
                    self.statuses[key] = status
                    self.attempts[key] = self.attempts.get(key, 0) + 1
                else:
                    self.refused.append(status)
            if time.monotonic() - self._last_l1 > self._l1_every_s:
                self._last_l1 = time.monotonic()
                pending = [k for k in self.expected if not self._settled(k)]
                if pending:
                    now = time.time()
                    for vd, n in self.l1db.ingested_alerts(pending).items():
                        self.ingested_at.setdefault((vd.visit, vd.detector), now)
                        self.ingested_alerts[(vd.visit, vd.detector)] = n

    @property
    def n_done(self) -> int:
        return len(self.statuses)

    @property
    def n_failed(self) -> int:
        return sum(1 for s in self.statuses.values() if not s.ok)

    @property
    def n_errors(self) -> int:
        """Failed visit-detectors and refused records."""
        return self.n_failed + len(self.refused)

    @property
    def n_alerts(self) -> int:
        return sum(s.n_alerts for s in self.statuses.values() if s.ok)

    def _settled(self, vd: tuple[int, int]) -> bool:
        """Ingested, with the alerts of its latest successful status (if it has one)."""
        status = self.statuses.get(vd)
        return vd in self.ingested_at and (status is None or not status.ok or
                                           self.ingested_alerts.get(vd, -1) >= status.n_alerts)

    def visit_done(self, visit: int) -> bool:
        """Every expected detector of ``visit`` has a status."""
        with self._lock:
            return all(k in self.statuses for k in self.expected if k[0] == visit)

    def done(self) -> bool:
        with self._lock:
            return set(self.statuses) >= self.expected and all(
                self._settled(vd) for vd in self.expected)

    def latencies(self) -> list[float]:
        """Raw arrival to alerts acknowledged by Kafka, seconds, per successful visit-detector."""
        return [s.alerts_acked_at - s.raw_arrived_at for s in self.statuses.values()
                if s.ok and s.alerts_acked_at and s.raw_arrived_at]

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies())
        finished = [s.finished_at for s in self.statuses.values() if s.finished_at]
        return {
            "visit_detectors": len(self.expected),
            "visit_detectors_ok": sum(1 for s in self.statuses.values() if s.ok),
            "visit_detectors_failed": self.n_failed,
            "visit_detectors_ingested": len(self.ingested_at),
            "alerts_published": self.n_alerts,
            "retried": sum(1 for n in self.attempts.values() if n > 1),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
            "latency_p98_s": round(float(np.percentile(lat, 98)), 3) if lat.size else None,
            "last_finished_at": max(finished) if finished else None,
            "errors": [s.message for s in self.statuses.values() if not s.ok][:20],
        }

    def close(self) -> None:
        self.consumer.close()
        self.l1db.close()
