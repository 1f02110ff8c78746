"""The L1 (alert production) database: Rubin-APDB-like tables, a HEALPix spatial index,
idempotent bulk writes and the queries association needs.

    db = L1db.create("sqlite:///l1.sqlite3")          # or L1db(url) for an existing one
    db.store_visit_detector(visit, detector, objects=..., sources=..., forced_sources=...)
    objects = db.objects_in_region(Polygon(vertices=corners))     # pyarrow.Table
    history = db.source_history(objects["diaObjectId"], since_mjd=mjd - 365)
    sources, forced = db.history(objects["diaObjectId"], since_mjd=mjd - 365)  # both at once
    db.wait_for_ingested([(visit, detector)], timeout=30)
"""

from alertbutler.l1db._errors import (
    L1dbError,
    L1dbNotFoundError,
    RowError,
    SchemaVersionError,
)
from alertbutler.l1db._types import (
    ConsumedOffsets,
    ConsumerProgress,
    History,
    L1dbInfo,
    PartitionOffset,
    StoreResult,
    VisitDetector,
    VisitDetectorEnd,
)
from alertbutler.l1db.db import L1db
from alertbutler.l1db.interface import PipelineL1db
from alertbutler.l1db.rows import RowBatch, Rows, alert_problem, rows_from_alerts
from alertbutler.l1db.schema import SCHEMA_VERSION, arrow_schema
from alertbutler.l1db.spatial import PIXEL_ORDER, Cone, Polygon, Region, pixel_ids

__all__ = [
    "PIXEL_ORDER",
    "SCHEMA_VERSION",
    "Cone",
    "ConsumedOffsets",
    "ConsumerProgress",
    "History",
    "L1db",
    "L1dbError",
    "L1dbInfo",
    "L1dbNotFoundError",
    "PartitionOffset",
    "PipelineL1db",
    "Polygon",
    "Region",
    "RowBatch",
    "RowError",
    "Rows",
    "SchemaVersionError",
    "StoreResult",
    "VisitDetector",
    "VisitDetectorEnd",
    "alert_problem",
    "arrow_schema",
    "pixel_ids",
    "rows_from_alerts",
]
