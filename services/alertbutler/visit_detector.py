"""The identity of one unit of prompt processing: one detector of one visit of one instrument.

Everything that names a visit-detector (a work item and what it depends on, the attempt
ledger, the L1 database's ingest bookkeeping, log lines) uses this one type, so a key is never
spelled as a bare tuple or a display label. It is also a butler data ID
(``{instrument, visit, detector}``).

The L1 database holds one instrument's visits and does not store the instrument's name: a
visit-detector it builds from its own rows has ``instrument=""`` (see :mod:`alertbutler.l1db`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, order=True)
class VisitDetector:
    """One detector of one visit; ordered by (instrument, visit, detector)."""

    instrument: str
    visit: int
    detector: int

    @property
    def data_id(self) -> dict[str, str | int]:
        """The butler data ID."""
        return {"instrument": self.instrument, "visit": self.visit, "detector": self.detector}

    @property
    def label(self) -> str:
        """For people (logs, errors): ``"simcam visit 12 detector 3"``; never a key."""
        return f"{self.instrument} visit {self.visit} detector {self.detector}".lstrip()
