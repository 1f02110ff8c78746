"""Copy an L1 database to another (PostgreSQL or SQLite to Cassandra, or any pair): every
catalog row, completeness record, end marker and consumer offset.

Rows go in batches of one visit (the unit the pipeline writes), through the destination's
ordinary idempotent store, so an interrupted copy is simply run again. Object versions go
first, all of them, so that the newest version ends up in ``DiaObjectLast`` whatever order
they are read in. Stop the ingesters of the source first: a copy is a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import sqlalchemy as sa

from alertbutler.l1db._types import ConsumedOffsets, VisitDetectorEnd
from alertbutler.l1db.db import L1db
from alertbutler.l1db.rows import RowBatch
from alertbutler.l1db.schema import CATALOG, arrow_schema

_BATCH = 20_000


def copy_l1db(source: L1db, dest: L1db, *,
              progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy everything of ``source`` (an SQL L1 database) into ``dest``; rows per table."""
    if source.backend == "cassandra":
        raise ValueError("copying out of Cassandra is not supported: the source must be an "
                         "SQLite or PostgreSQL L1 database")
    engine = source._engine  # same package
    copied: dict[str, int] = {}
    for table, arg in (("DiaObject", "objects"), ("DiaSource", "sources"),
                       ("DiaForcedSource", "forced_sources"), ("SSSource", "ss_sources")):
        copied[table] = 0
        for rows in _batches(engine, table):
            dest.store(RowBatch.build(**{arg: rows}))
            copied[table] += rows.num_rows
            if progress:
                progress(table, copied[table])
    with engine.connect() as conn:
        done = conn.exec_driver_sql(
            "SELECT visit, detector, n_alerts FROM ingested_visit_detector").all()
        ends = conn.exec_driver_sql(
            "SELECT visit, detector, partition, n_partitions, n_alerts, n_alerts_total "
            "FROM visit_detector_end").all()
        offsets = conn.exec_driver_sql(
            "SELECT consumer, topic, partition, next_offset FROM consumer_offset").all()
    markers = [VisitDetectorEnd(visit=int(v), detector=int(d), partition=int(p),
                                n_partitions=int(n), n_alerts=int(a), n_alerts_total=t)
               for v, d, p, n, a, t in ends]
    empty = RowBatch.build()
    if markers:
        dest.store(empty, markers=markers)
    # completeness recorded without markers (whole visit-detectors stored at once)
    dest.store(empty, complete=[(int(v), int(d)) for v, d, _ in done])
    consumers: dict[str, dict[tuple[str, int], int]] = {}
    for consumer, topic, partition, offset in offsets:
        consumers.setdefault(consumer, {})[(topic, int(partition))] = int(offset)
    for consumer, next_offsets in consumers.items():
        dest.store(empty, consumed=ConsumedOffsets(consumer=consumer, member="l1db-copy",
                                                   next_offsets=next_offsets, n_messages=0))
    copied["ingested_visit_detector"] = len(done)
    copied["consumer_offset"] = len(offsets)
    return copied


def _batches(engine: sa.Engine, table: str) -> list[pa.Table]:
    columns, key = CATALOG[table]
    names = ", ".join(f'"{c.name}"' for c in columns)
    order = ", ".join(f'"{k}"' for k in key)
    schema = arrow_schema(table)
    out = []
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f'SELECT {names} FROM "{table}" ORDER BY {order}')
        while True:
            rows = result.fetchmany(_BATCH)
            if not rows:
                break
            data = list(zip(*rows, strict=True))
            out.append(pa.Table.from_arrays(
                [pa.array(list(values), type=field.type)
                 for values, field in zip(data, schema, strict=True)], schema=schema))
    return out
