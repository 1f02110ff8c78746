"""Where a stream starts and ends, as values; resolved to offsets by :mod:`.seek`.

A start is one of ``earliest``, ``latest``, ``committed`` (the group's offsets), the last
N alerts of each partition, or a time. An end is a time or the end of each partition as it
was when the stream opened. Times are Kafka message timestamps (Unix milliseconds, UTC); an
MJD is read as a UTC day number, which is what Kafka timestamps can be compared with.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Literal

from alertbutler.subscribe.errors import StartPositionError

#: MJD of the Unix epoch.
_MJD_UNIX_EPOCH = 40587.0
_LAST = re.compile(r"^(?:last[:=]|-)(\d+)$", re.IGNORECASE)
_MJD = re.compile(r"^(?:mjd[:=])?(\d{5}(?:\.\d*)?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Earliest:
    """The first offset still kept by the broker."""


@dataclass(frozen=True)
class Latest:
    """The end of each partition when the stream opens: only new alerts."""


@dataclass(frozen=True)
class Committed:
    """The group's committed offsets; ``fallback`` for partitions it never committed."""

    fallback: Literal["earliest", "latest"] = "earliest"


@dataclass(frozen=True)
class LastN:
    """The last ``n`` alerts of each partition (fewer when a partition holds fewer)."""

    n: int


@dataclass(frozen=True)
class AtTime:
    """The first message whose timestamp is at or after ``ms`` (Unix milliseconds)."""

    ms: int

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.ms / 1000, tz=dt.UTC)


@dataclass(frozen=True)
class AtOffsets:
    """Exact offsets, per (topic, partition): where a backfill's history read stopped (its
    seam). A partition not named starts at its beginning (it was created after the seam)."""

    offsets: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, offsets: dict[tuple[str, int], int]) -> AtOffsets:
        return cls(tuple(sorted((t, p, o) for (t, p), o in offsets.items())))

    def as_dict(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.offsets}


@dataclass(frozen=True)
class EndOfPartitions:
    """Stop at each partition's high watermark as read when the stream opened."""


StartPosition = Earliest | Latest | Committed | LastN | AtTime | AtOffsets
EndPosition = AtTime | EndOfPartitions


def parse_start(value: object) -> StartPosition:
    """A start position from a value object, a string, a datetime or an MJD float.

    Strings: ``earliest``, ``latest``, ``committed``, ``last:N`` (or ``-N``), an ISO 8601
    time (UTC unless it says otherwise) or an MJD (``mjd:61000.25`` or ``61000.25``).
    """
    if isinstance(value, Earliest | Latest | Committed | LastN | AtTime | AtOffsets):
        return value
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered in {"earliest", "beginning", "first"}:
            return Earliest()
        if lowered in {"latest", "end", "now"}:
            return Latest()
        if lowered in {"committed", "group"}:
            return Committed()
        match = _LAST.match(text)
        if match:
            n = int(match.group(1))
            if n <= 0:
                raise StartPositionError(f"{value!r}: the number of alerts must be positive")
            return LastN(n)
    return parse_time(value)


def parse_end(value: object) -> EndPosition:
    """An end position: ``end`` (the high watermark at open) or a time as in :func:`parse_time`."""
    if isinstance(value, EndOfPartitions | AtTime):
        return value
    if isinstance(value, str) and value.strip().lower() in {"end", "now", "latest", "hwm"}:
        return EndOfPartitions()
    return parse_time(value)


def parse_time(value: object) -> AtTime:
    """A time from a datetime, an MJD number, ``mjd:...``, or an ISO 8601 string."""
    if isinstance(value, AtTime):
        return value
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return AtTime(round(moment.timestamp() * 1000))
    if isinstance(value, bool):
        raise StartPositionError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return _from_mjd(float(value), repr(value))
    if isinstance(value, str):
        text = value.strip()
        match = _MJD.match(text)
        if match:
            return _from_mjd(float(match.group(1)), value)
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise StartPositionError(
                f"{value!r}: expected earliest, latest, committed, last:N, an ISO 8601 time "
                "(2026-11-25T03:00:00Z) or an MJD (mjd:61000.125)") from None
        return parse_time(moment)
    raise StartPositionError(f"{value!r} ({type(value).__name__}) is not a start position")


def _from_mjd(mjd: float, shown: str) -> AtTime:
    if not math.isfinite(mjd) or not 40587.0 <= mjd < 100000.0:
        raise StartPositionError(f"{shown}: an MJD must lie between 40587 (1970) and 100000")
    return AtTime(round((mjd - _MJD_UNIX_EPOCH) * 86_400_000))
