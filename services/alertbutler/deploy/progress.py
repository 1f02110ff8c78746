"""How far a night got: the workers' status records and the L1 database's bookkeeping.

Workers publish one status record per attempt at a visit-detector on ``prompt.status_topic``
(the latest one wins); the ingester marks a visit-detector complete in the L1 database once
its end markers arrived and its alerts are stored. A night is done when every expected
visit-detector has both, and the L1 database counts the alerts its latest successful status
reports: an earlier attempt may have closed it empty (a worker that gave up, then died
before committing the item) before the attempt that published its alerts.
The status topic is read by manual assignment from its start (no group join, and never a
ListOffsets lookup, which the embedded broker gets wrong).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from alertbutler.config import Config
from alertbutler.kafka.message import value_of


class NightProgress:
    """Status records and L1 completion of a set of visit-detectors."""

    def __init__(self, config: Config, expected: set[tuple[int, int]]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from alertbutler.kafka import confluent_settings
        from alertbutler.l1db import L1db

        self.expected = set(expected)
        self.statuses: dict[tuple[int, int], Any] = {}
        self.attempts: dict[tuple[int, int], int] = {}
        self.ingested_at: dict[tuple[int, int], float] = {}
        #: alerts the L1 database counts per completed visit-detector
        self.ingested_alerts: dict[tuple[int, int], int] = {}
        self.l1db = L1db(config.l1db_url)
        self.consumer = Consumer(confluent_settings(config, config.kafka.bootstrap_servers, **{
            "group.id": "alertbutler-up-progress", "enable.auto.commit": False,
            "log_level": 3}))
        self.consumer.assign([TopicPartition(config.prompt.status_topic, 0, OFFSET_BEGINNING)])
        self._lock = threading.Lock()
        self._last_l1 = 0.0

    def poll(self) -> None:
        from alertbutler.prompt import VisitDetectorStatus

        with self._lock:
            for msg in self.consumer.consume(500, timeout=0.1):
                if msg.error():
                    continue
                status = VisitDetectorStatus.from_json(value_of(msg))
                key = (int(status.visit or 0), status.detector)
                if key in self.expected:
                    self.statuses[key] = status
                    self.attempts[key] = self.attempts.get(key, 0) + 1
            if time.monotonic() - self._last_l1 > 0.5:
                self._last_l1 = time.monotonic()
                pending = [k for k in self.expected if not self._settled(k)]
                if pending:
                    now = time.time()
                    for vd, n in self.l1db.ingested_alerts(pending).items():
                        self.ingested_at.setdefault((vd.visit, vd.detector), now)
                        self.ingested_alerts[(vd.visit, vd.detector)] = n

    @property
    def n_done(self) -> int:
        return len(set(self.statuses) & self.expected)

    @property
    def n_failed(self) -> int:
        return sum(1 for s in self.statuses.values() if not s.ok)

    @property
    def n_alerts(self) -> int:
        return sum(s.n_alerts for s in self.statuses.values() if s.ok)

    def _settled(self, vd: tuple[int, int]) -> bool:
        """Ingested, with the alerts of its latest successful status (if it has one)."""
        status = self.statuses.get(vd)
        return vd in self.ingested_at and (status is None or not status.ok or
                                           self.ingested_alerts.get(vd) == status.n_alerts)

    def done(self) -> bool:
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
