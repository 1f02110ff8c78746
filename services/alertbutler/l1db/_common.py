"""What the SQL and the Cassandra L1 databases do alike on top of their own ``store``,
``ingested`` and history reads: one visit-detector's store, waiting for completeness, both
histories of a set of objects, the keys they share.

A mixin rather than a base class with a constructor: the two backends share no state, only
these few rules, and each must keep them identical (a pipeline switches backend by URL)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from alertbutler.l1db._errors import RowError
from alertbutler.l1db._read import int_list
from alertbutler.l1db._types import (
    ConsumedOffsets,
    History,
    StoreResult,
    VisitDetector,
    VisitDetectorEnd,
    VisitDetectorLike,
    as_visit_detector,
    of_l1,
)
from alertbutler.l1db.rows import RowBatch, Rows


class VisitDetectorStore:
    """``store_visit_detector``, ``is_ingested``, ``wait_for_ingested`` and ``history`` for a
    backend."""

    def store(self, batch: RowBatch, *, markers: Iterable[VisitDetectorEnd] = (),
              consumed: ConsumedOffsets | None = None,
              complete: Iterable[VisitDetectorLike] = ()) -> StoreResult:
        raise NotImplementedError

    def ingested(self, visit_detectors: Iterable[VisitDetectorLike]) -> set[VisitDetector]:
        raise NotImplementedError

    def source_history(self, object_ids: Iterable[int], *, since_mjd: float | None = None,
                       columns: Iterable[str] | None = None) -> pa.Table:
        raise NotImplementedError

    def forced_source_history(self, object_ids: Iterable[int], *,
                              since_mjd: float | None = None,
                              columns: Iterable[str] | None = None) -> pa.Table:
        raise NotImplementedError

    def history(self, object_ids: Iterable[int], *, since_mjd: float | None = None,
                source_columns: Iterable[str] | None = None,
                forced_columns: Iterable[str] | None = None) -> History:
        """:meth:`source_history` and :meth:`forced_source_history` of the same objects, one
        after the other (Cassandra's each run their reads concurrently already)."""
        ids = int_list(object_ids)
        return History(self.source_history(ids, since_mjd=since_mjd, columns=source_columns),
                       self.forced_source_history(ids, since_mjd=since_mjd,
                                                  columns=forced_columns))

    def store_visit_detector(self, visit: int, detector: int, *, objects: Rows | None = None,
                             sources: Rows | None = None, forced_sources: Rows | None = None,
                             ss_sources: Rows | None = None,
                             mark_ingested: bool = True) -> StoreResult:
        """Store one visit-detector's new object versions, sources and forced sources and
        (by default) mark it completely ingested; rows of another visit-detector are refused
        before anything is written."""
        batch = RowBatch.build(objects=objects, sources=sources,
                               forced_sources=forced_sources, ss_sources=ss_sources)
        for name, rows in (("DiaSource", batch.sources),
                           ("DiaForcedSource", batch.forced_sources)):
            if rows.num_rows:
                visits = set(rows.column("visit").unique().to_pylist())
                detectors = set(rows.column("detector").unique().to_pylist())
                if visits != {visit} or detectors != {detector}:
                    raise RowError(f"{name} rows belong to visits {sorted(visits)} and "
                                   f"detectors {sorted(detectors)}, not to visit {visit} "
                                   f"detector {detector}", column="visit")
        complete = [of_l1(visit, detector)] if mark_ingested else []
        return self.store(batch, complete=complete)

    def is_ingested(self, visit: int, detector: int) -> bool:
        return bool(self.ingested([(visit, detector)]))

    def wait_for_ingested(self, visit_detectors: Iterable[VisitDetectorLike], timeout: float,
                          *, poll_interval: float = 0.1) -> bool:
        """Wait until every visit-detector is completely ingested; False on timeout."""
        wanted = {as_visit_detector(vd) for vd in visit_detectors}
        deadline = time.monotonic() + timeout
        while True:
            wanted -= self.ingested(wanted)
            if not wanted:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(poll_interval, left))


def topic_key(consumer: str, topic: str) -> str:
    """The metadata row of a consumer's topic id (hashed: names are up to 64 characters)."""
    return "topic-id:" + hashlib.sha256(f"{consumer}\0{topic}".encode()).hexdigest()[:48]


def count_of(batch: RowBatch, vd: VisitDetector) -> int:
    """The batch's DiaSources of one visit-detector (its alert count)."""
    sources = batch.sources
    if not sources.num_rows:
        return 0
    mask = pc.and_(pc.equal(sources.column("visit"), vd.visit),
                   pc.equal(sources.column("detector"), vd.detector))
    return int(pc.sum(mask.cast("int64")).as_py() or 0)
