"""Certification of calibration datasets into CALIBRATION collections with validity ranges.

Ranges are half-open ``[begin, end)`` BIGINT nanoseconds. Overlap for the same dataset type
and data ID is refused inside the write transaction (SQLite: ``BEGIN IMMEDIATE`` already
serializes writers; PostgreSQL: the collection row is locked ``FOR UPDATE`` first), so two
concurrent certifications cannot both slip in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .._errors import CalibrationOverlapError, CollectionTypeError
from ..collections import CollectionType
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..dimensions import DataCoordinate
from ..timespan import Timespan
from .registry import Registry


@dataclass(frozen=True)
class Certification:
    ref: DatasetRef
    timespan: Timespan


def _calib_collection(registry: Registry, name: str) -> int:
    rec = registry.get_collection(name)
    if rec.type is not CollectionType.CALIBRATION:
        raise CollectionTypeError(f"{name!r} is a {rec.type.name} collection; certification "
                                  "needs a CALIBRATION collection")
    return rec.id


def _lock(registry: Registry, conn: sa.Connection, collection_id: int) -> None:
    if not registry.db.is_sqlite:
        t = registry.tables["collection"]
        conn.execute(sa.select(t.c.id).where(t.c.id == collection_id).with_for_update())


def certify(registry: Registry, collection: str, refs: Sequence[DatasetRef],
            timespan: Timespan) -> None:
    """Make ``refs`` valid in ``collection`` over ``timespan``; overlaps are refused."""
    cid = _calib_collection(registry, collection)
    t = registry.tables["dataset_calib"]
    for ref in refs:
        if not ref.dataset_type.is_calibration:
            raise CollectionTypeError(f"dataset type {ref.dataset_type.name!r} is not a "
                                      "calibration type; only calibrations are certified")
    with registry.transaction() as conn:
        _lock(registry, conn, cid)
        seen: dict[tuple[int, str], list[Timespan]] = {}
        rows = []
        for ref in refs:
            type_id = registry.dataset_type_id(ref.dataset_type.parent_name)[0]
            key = (type_id, ref.data_id.key)
            clash: Sequence[Any] | None
            clash = conn.execute(sa.select(t.c.begin_ns, t.c.end_ns, t.c.dataset_id).where(
                t.c.collection_id == cid, t.c.dataset_type_id == type_id,
                t.c.data_id == ref.data_id.key,
                t.c.begin_ns < timespan.end_sql, t.c.end_ns > timespan.begin_sql)).first()
            if clash is None and any(ts.overlaps(timespan) for ts in seen.get(key, ())):
                clash = (timespan.begin_sql, timespan.end_sql, ref.id)
            if clash is not None:
                raise CalibrationOverlapError(
                    f"cannot certify {ref.dataset_type.name} {ref.data_id!r} in {collection!r} "
                    f"for {timespan}: it overlaps the existing certification "
                    f"{Timespan.from_sql(clash[0], clash[1])} of dataset {clash[2]}")
            seen.setdefault(key, []).append(timespan)
            rows.append({"collection_id": cid, "dataset_id": ref.id, "dataset_type_id": type_id,
                         "data_id": ref.data_id.key, "begin_ns": timespan.begin_sql,
                         "end_ns": timespan.end_sql})
        if rows:
            conn.execute(t.insert(), rows)


def decertify(registry: Registry, collection: str, dataset_type: DatasetType,
              timespan: Timespan, data_ids: Iterable[DataCoordinate] | None = None) -> int:
    """Remove validity over ``timespan`` (splitting ranges that stick out); returns the
    number of certifications touched."""
    cid = _calib_collection(registry, collection)
    type_id = registry.dataset_type_id(dataset_type.parent_name)[0]
    t = registry.tables["dataset_calib"]
    cond = [t.c.collection_id == cid, t.c.dataset_type_id == type_id,
            t.c.begin_ns < timespan.end_sql, t.c.end_ns > timespan.begin_sql]
    if data_ids is not None:
        cond.append(t.c.data_id.in_([d.key for d in data_ids]))
    with registry.transaction() as conn:
        _lock(registry, conn, cid)
        rows = conn.execute(sa.select(t).where(*cond)).mappings().all()
        for row in rows:
            conn.execute(t.delete().where(t.c.id == row["id"]))
            base = {k: row[k] for k in ("collection_id", "dataset_id", "dataset_type_id",
                                        "data_id")}
            if row["begin_ns"] < timespan.begin_sql:
                conn.execute(t.insert().values(**base, begin_ns=row["begin_ns"],
                                               end_ns=timespan.begin_sql))
            if row["end_ns"] > timespan.end_sql:
                conn.execute(t.insert().values(**base, begin_ns=timespan.end_sql,
                                               end_ns=row["end_ns"]))
    return len(rows)


def certifications(registry: Registry, collection: str,
                   dataset_type: str | None = None) -> list[Certification]:
    """Every certification in a CALIBRATION collection (for export, transfer and humans)."""
    cid = _calib_collection(registry, collection)
    t, d = registry.tables["dataset_calib"], registry.tables["dataset"]
    q = (sa.select(d.c.id, d.c.dataset_type_id, d.c.run_id, d.c.data_id, t.c.begin_ns,
                   t.c.end_ns).join(d, d.c.id == t.c.dataset_id)
         .where(t.c.collection_id == cid).order_by(t.c.data_id, t.c.begin_ns))
    if dataset_type is not None:
        q = q.where(t.c.dataset_type_id == registry.dataset_type_id(dataset_type)[0])
    rows = registry.db.read().execute(q).all()
    registry.db.end_read()
    return [Certification(registry.ref_from_row(r), Timespan.from_sql(r.begin_ns, r.end_ns))
            for r in rows]
