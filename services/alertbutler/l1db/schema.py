"""The L1 database tables, declared once for SQLAlchemy and for Arrow.

Catalog tables follow Rubin's APDB (and so the alert packet, which is derived from it):
``DiaObject`` keeps every version of an object (key: diaObjectId + validityStartMjdTai),
``DiaObjectLast`` only the latest version (the one association reads), ``DiaSource`` keyed by
diaSourceId, ``DiaForcedSource`` keyed by diaObjectId + visit + detector, ``SSSource`` keyed by
diaSourceId. Column names are Rubin's; only the columns alertbutler fills are kept (the
alert packet's required fields and the measurements association and light curves use).
``pixelId`` is ours: the HEALPix spatial index (see :mod:`.spatial`).

On PostgreSQL ``DiaSource`` and ``DiaForcedSource`` are partitioned by ``midpointMjdTai`` in
30-day ranges (as Rubin's Cassandra APDB partitions by time), so a 12-month history query
reads 12-13 partitions however old the survey is; PostgreSQL requires the partition column in
every unique key, so their primary keys there end with ``midpointMjdTai`` (a row's time never
changes, so the key still makes writes idempotent). Partitions are made on demand by
:mod:`._partitions`. SQLite keeps one unpartitioned table each.

Bookkeeping tables (snake_case, not Rubin's): ``metadata`` (schema version),
``consumer_offset`` (what an ingester has consumed, written in the same transaction as the
rows), ``ingest_progress`` (message and row totals per ingester process, for rates),
``visit_detector_end`` (end markers seen, one per partition), ``visit_detector_wait`` (the
alert offsets an out-of-band marker still waits for the ingester to store),
``ingested_visit_detector`` (visit-detectors whose every marker has been committed) and
``visit_detector_attempt`` (how often each visit-detector's work item was started, so that
retries stay bounded across worker crashes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

#: Version of the table layout. A different major version cannot be read or written;
#: a higher minor version of the same major only adds nullable columns, tables or storage
#: settings.
SCHEMA_VERSION = "2.4"  # 1.1 added work_attempt; 2.0 partitions sources by time (PostgreSQL);
#                          2.1 added visit_detector_wait (out-of-band end markers);
#                          2.2 added visit_detector_end.n_alerts_total (attempts told apart);
#                          2.3 keys the attempt ledger by (instrument, visit, detector):
#                          visit_detector_attempt replaces work_attempt;
#                          2.4 leaves room on DiaObjectLast's pages (fillfactor)

#: Catalog tables partitioned by ``midpointMjdTai`` on PostgreSQL.
PARTITIONED = ("DiaSource", "DiaForcedSource")

#: Percent of each ``DiaObjectLast`` page filled by inserts (PostgreSQL). Every visit
#: rewrites the row of each object it detects; the room left lets PostgreSQL put the new
#: version on the same page without touching the indexes (a HOT update): the upsert of a
#: 10,000-object visit into a table of 10^6 objects went from 86-105 ms to 55-71 ms.
LAST_FILLFACTOR = 70

_SQL = {"long": sa.BigInteger, "int": sa.Integer, "double": sa.Double, "float": sa.REAL,
        "boolean": sa.Boolean, "string": sa.Text}
_ARROW = {"long": pa.int64(), "int": pa.int32(), "double": pa.float64(), "float": pa.float32(),
          "boolean": pa.bool_(), "string": pa.string()}


@dataclass(frozen=True)
class Column:
    """One catalog column: Rubin name, Avro-style type, whether it may be null."""

    name: str
    kind: str
    nullable: bool = True


def _spec(text: str) -> tuple[Column, ...]:
    """Columns from ``name:kind`` words; a trailing ``!`` means NOT NULL."""
    columns = []
    for word in text.split():
        name, kind = word.rstrip("!").split(":")
        columns.append(Column(name, kind, nullable=not word.endswith("!")))
    return tuple(columns)


_BAND_COLUMNS = " ".join(
    f"{b}_psfFluxMean:float {b}_psfFluxMeanErr:float {b}_psfFluxSigma:float "
    f"{b}_psfFluxNdata:int" for b in "ugrizy")

DIA_OBJECT_COLUMNS = _spec(
    "diaObjectId:long! validityStartMjdTai:double! ra:double! dec:double! "
    "raErr:float decErr:float ra_dec_Cov:float "
    f"{_BAND_COLUMNS} "
    "firstDiaSourceMjdTai:double lastDiaSourceMjdTai:double nDiaSources:int! pixelId:long!")

DIA_SOURCE_COLUMNS = _spec(
    "diaSourceId:long! visit:long! detector:int! "
    "diaObjectId:long ssObjectId:long parentDiaSourceId:long "
    "midpointMjdTai:double! ra:double! dec:double! "
    "raErr:float decErr:float ra_dec_Cov:float x:float! y:float! xErr:float yErr:float "
    "apFlux:float apFluxErr:float snr:float psfFlux:float psfFluxErr:float psfChi2:float "
    "scienceFlux:float scienceFluxErr:float templateFlux:float templateFluxErr:float "
    "extendedness:float reliability:float "
    "psfNdata:int trailNdata:int dipoleNdata:int bboxSize:int "
    "centroid_flag:boolean isNegative:boolean isDipole:boolean psfFlux_flag:boolean "
    "pixelFlags:boolean band:string timeProcessedMjdTai:double timeWithdrawnMjdTai:double "
    "pixelId:long!")

DIA_FORCED_SOURCE_COLUMNS = _spec(
    "diaForcedSourceId:long! diaObjectId:long! ra:double! dec:double! visit:long! "
    "detector:int! psfFlux:float psfFluxErr:float midpointMjdTai:double! "
    "scienceFlux:float scienceFluxErr:float band:string "
    "timeProcessedMjdTai:double timeWithdrawnMjdTai:double pixelId:long!")

SS_SOURCE_COLUMNS = _spec(
    "diaSourceId:long! ssObjectId:long! designation:string "
    "eclLambda:double! eclBeta:double! galLon:double! galLat:double! "
    "elongation:float phaseAngle:float topoRange:float helioRange:float "
    "ephRa:double ephDec:double ephVmag:float ephRate:float ephOffset:float")

#: Catalog table -> (columns, key columns). The key makes every write idempotent.
CATALOG: dict[str, tuple[tuple[Column, ...], tuple[str, ...]]] = {
    "DiaObject": (DIA_OBJECT_COLUMNS, ("diaObjectId", "validityStartMjdTai")),
    "DiaObjectLast": (DIA_OBJECT_COLUMNS, ("diaObjectId",)),
    "DiaSource": (DIA_SOURCE_COLUMNS, ("diaSourceId",)),
    "DiaForcedSource": (DIA_FORCED_SOURCE_COLUMNS, ("diaObjectId", "visit", "detector")),
    "SSSource": (SS_SOURCE_COLUMNS, ("diaSourceId",)),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a catalog table's rows, in table column order."""
    columns, _ = CATALOG[table]
    return pa.schema([pa.field(c.name, _ARROW[c.kind], nullable=c.nullable) for c in columns])


def build_metadata(*, partitioned: bool = False) -> sa.MetaData:
    """Every table of the L1 database, with the indexes its queries need (and no more:
    each index costs on every ingested row). ``partitioned``: the PostgreSQL layout, with
    :data:`PARTITIONED` tables range-partitioned by ``midpointMjdTai``."""
    md = sa.MetaData()
    for name, (columns, key) in CATALOG.items():
        split = partitioned and name in PARTITIONED
        if split:
            key = (*key, "midpointMjdTai")
        options: dict[str, Any] = (
            {"postgresql_partition_by": 'RANGE ("midpointMjdTai")'} if split else {})
        if name == "DiaObjectLast":
            options["postgresql_with"] = {"fillfactor": LAST_FILLFACTOR}
        sa.Table(name, md, *[sa.Column(c.name, _SQL[c.kind], nullable=c.nullable,
                                       primary_key=c.name in key) for c in columns],
                 **options)
    sa.Index("DiaObjectLast_pixelId", md.tables["DiaObjectLast"].c.pixelId)
    sa.Index("DiaSource_diaObjectId", md.tables["DiaSource"].c.diaObjectId)
    sa.Index("DiaSource_visit_detector", md.tables["DiaSource"].c.visit,
             md.tables["DiaSource"].c.detector)

    sa.Table("metadata", md,
             sa.Column("name", sa.String(64), primary_key=True),
             sa.Column("value", sa.Text, nullable=False))
    sa.Table("consumer_offset", md,
             sa.Column("consumer", sa.String(255), primary_key=True),
             sa.Column("topic", sa.String(255), primary_key=True),
             sa.Column("partition", sa.Integer, primary_key=True),
             sa.Column("next_offset", sa.BigInteger, nullable=False),
             sa.Column("updated_at", sa.Double, nullable=False))
    sa.Table("ingest_progress", md,
             sa.Column("consumer", sa.String(255), primary_key=True),
             sa.Column("member", sa.String(255), primary_key=True),
             sa.Column("n_messages", sa.BigInteger, nullable=False),
             sa.Column("n_rows", sa.BigInteger, nullable=False),
             sa.Column("updated_at", sa.Double, nullable=False))
    sa.Table("visit_detector_end", md,
             sa.Column("visit", sa.BigInteger, primary_key=True),
             sa.Column("detector", sa.Integer, primary_key=True),
             sa.Column("partition", sa.Integer, primary_key=True),
             sa.Column("n_partitions", sa.Integer, nullable=False),
             sa.Column("n_alerts", sa.Integer, nullable=False),
             sa.Column("recorded_at", sa.Double, nullable=False),
             # the alerts of the attempt that sent the marker, on all partitions (2.2)
             sa.Column("n_alerts_total", sa.Integer, nullable=True))
    sa.Table("visit_detector_wait", md,
             sa.Column("visit", sa.BigInteger, primary_key=True),
             sa.Column("detector", sa.Integer, primary_key=True),
             sa.Column("topic", sa.String(255), primary_key=True),
             sa.Column("partition", sa.Integer, primary_key=True),
             sa.Column("last_offset", sa.BigInteger, nullable=False))
    sa.Table("ingested_visit_detector", md,
             sa.Column("visit", sa.BigInteger, primary_key=True),
             sa.Column("detector", sa.Integer, primary_key=True),
             sa.Column("n_alerts", sa.Integer, nullable=False),
             sa.Column("completed_at", sa.Double, nullable=False, index=True))
    sa.Table("visit_detector_attempt", md,
             sa.Column("instrument", sa.String(64), primary_key=True),
             sa.Column("visit", sa.BigInteger, primary_key=True),
             sa.Column("detector", sa.Integer, primary_key=True),
             sa.Column("attempts", sa.Integer, nullable=False),
             sa.Column("worker", sa.String(255), nullable=False),
             sa.Column("previous_worker", sa.String(255), nullable=True),
             sa.Column("started_at", sa.Double, nullable=False),
             sa.Column("last_error", sa.Text, nullable=True),
             sa.Column("finished_at", sa.Double, nullable=True))
    return md
