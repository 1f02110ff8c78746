"""The part of an L1 database that prompt processing uses, as a structural type.

``L1db`` (SQLite, PostgreSQL) and ``CassandraL1db`` are separate classes with the same
methods; a pipeline names this Protocol so either one (or any future backend) is accepted and
checked, without the pipeline knowing about ingestion, consumer offsets or administration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from alertbutler.l1db._types import StoreResult, VisitDetector, VisitDetectorLike
from alertbutler.l1db.rows import Rows
from alertbutler.l1db.spatial import Region


class PipelineL1db(Protocol):
    """Association reads and one visit-detector's writes."""

    def close(self) -> None: ...

    def ingested(self, visit_detectors: Iterable[VisitDetectorLike]) -> set[VisitDetector]: ...

    def wait_for_ingested(self, visit_detectors: Iterable[VisitDetectorLike], timeout: float,
                          *, poll_interval: float = 0.1) -> bool: ...

    def store_visit_detector(self, visit: int, detector: int, *, objects: Rows | None = None,
                             sources: Rows | None = None, forced_sources: Rows | None = None,
                             ss_sources: Rows | None = None,
                             mark_ingested: bool = True) -> StoreResult: ...

    def objects_in_region(self, region: Region, *,
                          columns: Iterable[str] | None = None) -> pa.Table: ...

    def source_history(self, object_ids: Iterable[int], *, since_mjd: float | None = None,
                       columns: Iterable[str] | None = None) -> pa.Table: ...

    def forced_source_history(self, object_ids: Iterable[int], *,
                              since_mjd: float | None = None,
                              columns: Iterable[str] | None = None) -> pa.Table: ...


if TYPE_CHECKING:  # both backends keep the Protocol: mypy checks these two conversions
    from alertbutler.l1db.cassandra.db import CassandraL1db
    from alertbutler.l1db.db import L1db

    def _conforms(sql: L1db, cassandra: CassandraL1db) -> tuple[PipelineL1db, PipelineL1db]:
        return sql, cassandra
