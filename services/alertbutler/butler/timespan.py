"""Half-open time intervals ``[begin, end)`` stored as integer nanoseconds (TAI-free UTC).

Integers compare exactly in SQL on both SQLite and PostgreSQL, so validity ranges and visit
time spans are plain BIGINT columns; ``None`` means unbounded and maps to sentinels in SQL.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from astropy.time import Time

#: a time as callers give it: int nanoseconds, datetime, ISO string or astropy Time
TimeLike: TypeAlias = "int | str | _dt.datetime | Time"
#: sentinels standing for "unbounded" in the registry's integer columns
MIN_NS = -(2**62)
MAX_NS = 2**62

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def to_ns(value: TimeLike | None) -> int | None:
    """Nanoseconds since 1970-01-01 UTC from an int, datetime, ISO string or astropy Time."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if hasattr(value, "utc") and hasattr(value, "unix"):  # astropy Time
        return round(float(value.utc.unix) * 1e9)
    raise TypeError(f"not a time: {value!r} (use int ns, datetime, ISO string or astropy Time)")


def ns_to_iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    dt = _EPOCH + _dt.timedelta(microseconds=ns // 1000)
    return dt.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Timespan:
    """``[begin, end)`` in nanoseconds since the Unix epoch (UTC); ``None`` is unbounded."""

    begin: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if self.begin is not None and self.end is not None and self.end < self.begin:
            raise ValueError(f"timespan ends before it begins: {self}")

    @classmethod
    def of(cls, begin: TimeLike | None = None, end: TimeLike | None = None) -> Timespan:
        """Build from anything :func:`to_ns` accepts."""
        return cls(to_ns(begin), to_ns(end))

    @classmethod
    def at(cls, t: TimeLike) -> Timespan:
        """A zero-length span marking an instant (still 'inside' [b, e) when b <= t < e)."""
        ns = to_ns(t)
        return cls(ns, ns)

    @property
    def begin_sql(self) -> int:
        return MIN_NS if self.begin is None else self.begin

    @property
    def end_sql(self) -> int:
        return MAX_NS if self.end is None else self.end

    def overlaps(self, other: Timespan) -> bool:
        """True when the two spans share a moment; an instant inside a span overlaps it."""
        if self.begin_sql == self.end_sql:
            return other.contains(self.begin_sql)
        if other.begin_sql == other.end_sql:
            return self.contains(other.begin_sql)
        return self.begin_sql < other.end_sql and other.begin_sql < self.end_sql

    def contains(self, t: TimeLike) -> bool:
        ns = to_ns(t)
        assert ns is not None
        return self.begin_sql <= ns < self.end_sql

    @staticmethod
    def from_sql(begin: int, end: int) -> Timespan:
        return Timespan(None if begin <= MIN_NS else begin, None if end >= MAX_NS else end)

    def to_json(self) -> list[int | None]:
        return [self.begin, self.end]

    def __str__(self) -> str:
        return f"[{ns_to_iso(self.begin) or '-inf'}, {ns_to_iso(self.end) or '+inf'})"
