"""Value types of the L1 database API: immutable, keyword-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pyarrow as pa

from alertbutler.visit_detector import VisitDetector

#: A visit-detector as the L1 API takes it: the one type, or a (visit, detector) pair (the
#: database holds one instrument's visits, so the pair names it too).
VisitDetectorLike = VisitDetector | tuple[int, int]


def of_l1(visit: int, detector: int) -> VisitDetector:
    """A visit-detector built from the L1 database's own rows: they carry no instrument."""
    return VisitDetector(instrument="", visit=int(visit), detector=int(detector))


def as_visit_detector(vd: VisitDetectorLike) -> VisitDetector:
    if isinstance(vd, VisitDetector):
        return vd
    visit, detector = vd
    return of_l1(visit, detector)


@dataclass(frozen=True, kw_only=True)
class VisitDetectorEnd:
    """An end-of-visit-detector marker: the visit-detector's alerts on one partition.

    Out of band (read from the control topic), ``topic`` names the alert topic and
    ``last_offset`` its last alert there (None: none there): the visit-detector is complete
    once the markers of all ``n_partitions`` partitions are committed and the stored offset of
    each partition is past its ``last_offset``. Inline (old protocol, read from the alert
    partition itself after its alerts) ``topic`` is None: its partition's order is enough.
    ``n_alerts_total`` (the attempt's alerts on all partitions) tells apart attempts that
    closed the same visit-detector differently (:mod:`alertbutler.l1db._markers`).
    """

    visit: int
    detector: int
    partition: int
    n_partitions: int
    n_alerts: int
    topic: str | None = None
    last_offset: int | None = None
    n_alerts_total: int | None = None


@dataclass(frozen=True, kw_only=True)
class ConsumedOffsets:
    """What one batch consumed: next offset per (topic, partition) and how many messages."""

    consumer: str
    member: str
    next_offsets: dict[tuple[str, int], int]
    n_messages: int


class History(NamedTuple):
    """The DiaSources and DiaForcedSources of a set of objects (see ``L1db.history``)."""

    sources: pa.Table
    forced_sources: pa.Table


@dataclass(frozen=True, kw_only=True)
class StoreResult:
    """Rows a store actually inserted per table (0 for rows that were already there), and
    the visit-detectors it completed."""

    inserted: dict[str, int] = field(default_factory=dict)
    completed: tuple[VisitDetector, ...] = ()

    @property
    def n_rows(self) -> int:
        return sum(self.inserted.values())


@dataclass(frozen=True, kw_only=True)
class PartitionOffset:
    """An ingester's own record of one partition, kept in the L1 database."""

    consumer: str
    topic: str
    partition: int
    next_offset: int
    updated_at: float


@dataclass(frozen=True, kw_only=True)
class ConsumerProgress:
    """Totals one consumer (all its members) has committed, for rates in ``ingest status``."""

    consumer: str
    n_messages: int
    n_rows: int
    updated_at: float | None


@dataclass(frozen=True, kw_only=True)
class L1dbInfo:
    """What ``alertbutler l1db info`` prints."""

    url: str
    backend: str
    schema_version: str
    row_counts: dict[str, int]
    n_ingested_visit_detectors: int
    last_ingested: VisitDetector | None
    last_ingested_at: float | None
    last_visit: int | None
