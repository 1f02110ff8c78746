"""The outcome of one visit-detector, as workers and the fan-out report it.

Every processed (or refused) work item ends in exactly one status record per attempt on the
status topic (JSON, keyed by ``visit-detector``): the main job's progress bars, its latency
figures and its error list read them, and an operator can read them with any Kafka tool.
Timestamps here are wall-clock processing times, never alert contents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class VisitDetectorStatus:
    """What happened to one visit-detector in one attempt."""

    instrument: str
    group_id: str
    visit: int | None
    detector: int
    ok: bool
    reason: str = "ok"  # "ok" or a VisitDetectorError.reason
    message: str = ""
    n_sources: int = 0
    n_alerts: int = 0
    n_forced: int = 0
    n_new_objects: int = 0
    raw_arrived_at: float | None = None  # wall clock, seconds since the Unix epoch
    alerts_acked_at: float | None = None
    finished_at: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    alert_ids: tuple[int, ...] = ()
    #: the PSF model or matching kernel was a fallback (too few stars): alerts are flagged
    psf_degraded: bool = False

    @property
    def key(self) -> bytes:
        return f"{self.instrument}:{self.visit}:{self.detector}".encode()

    def to_json(self) -> bytes:
        data = asdict(self)
        data["alert_ids"] = list(self.alert_ids)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> VisitDetectorStatus:
        record: dict[str, Any] = json.loads(data)
        record["alert_ids"] = tuple(record.get("alert_ids", ()))
        return cls(**record)
