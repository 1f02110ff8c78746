"""The pipeline's clock, injectable so that a replay can drive time.

Only explicitly-marked processing timestamps (``timeProcessedMjdTai``) and latency figures
read it; nothing derived from it enters an alert's identity or science content.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

UNIX_EPOCH_MJD = 40587.0
TAI_MINUS_UTC_S = 37.0  # leap seconds since 2017; good until the next one is announced


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


@dataclass
class FixedClock:
    """A clock that says what it is told (tests, replays)."""

    t: float

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def unix_to_mjd_tai(t: float) -> float:
    return UNIX_EPOCH_MJD + (t + TAI_MINUS_UTC_S) / 86400.0


def mjd_tai_to_unix(mjd: float) -> float:
    return (mjd - UNIX_EPOCH_MJD) * 86400.0 - TAI_MINUS_UTC_S
