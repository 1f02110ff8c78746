"""Finding one dataset and querying many: by type, collections, data ID constraints,
time range and sky region; and querying dimension records.

Sky regions are narrowed in SQL with HEALPix pixel-range overlaps (``dim_visit_skypix``) and
refined in Python with exact great-circle distances; templates keyed by the ``healpix``
dimension are matched by pixel number.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .._errors import ButlerError, DataIdError
from ..collections import CollectionRecord, CollectionType
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..dimensions import DataCoordinate, DimensionRecord, check_value
from ..regions import HEALPIX_NSIDE, Circle
from ..timespan import Timespan
from .registry import Registry


class AmbiguousCalibrationError(ButlerError, LookupError):
    """Several certifications match; a calibration lookup needs a narrower time."""


def _stmts(registry: Registry) -> dict[str, sa.Select]:
    """Prepared lookups, built once per registry (SQLAlchemy then reuses the compiled SQL)."""
    s: dict[str, sa.Select] | None = getattr(registry, "_prepared", None)
    if s is None:
        d, tag, cal = (registry.tables[n] for n in ("dataset", "dataset_tag", "dataset_calib"))
        bp = sa.bindparam
        s = {
            "run": sa.select(d.c.id).where(d.c.dataset_type_id == bp("t"),
                                           d.c.run_id == bp("c"), d.c.data_id == bp("k")),
            "tag": sa.select(d.c.id, d.c.run_id).join(tag, tag.c.dataset_id == d.c.id).where(
                tag.c.collection_id == bp("c"), tag.c.dataset_type_id == bp("t"),
                tag.c.data_id == bp("k")),
            "calib": sa.select(d.c.id, d.c.run_id, cal.c.begin_ns, cal.c.end_ns)
            .join(cal, cal.c.dataset_id == d.c.id).where(
                cal.c.collection_id == bp("c"), cal.c.dataset_type_id == bp("t"),
                cal.c.data_id == bp("k"), cal.c.begin_ns <= bp("e"), cal.c.end_ns > bp("b")),
        }
        registry._prepared = s  # type: ignore[attr-defined]
    return s


def find_dataset(registry: Registry, dataset_type: DatasetType, data_id: DataCoordinate,
                 collections: Sequence[CollectionRecord],
                 timespan: Timespan | None = None) -> DatasetRef | None:
    """The first match along the search path; CALIBRATION collections match by validity
    at ``timespan`` (an instant or a range that must fall inside one validity range)."""
    type_id, parent = registry.dataset_type_id(dataset_type.parent_name)
    if registry.fast and len(collections) == 1 and collections[0].type is CollectionType.RUN:
        row = registry.db.raw_cursor().execute(
            "SELECT id FROM dataset WHERE dataset_type_id = ? AND run_id = ? AND data_id = ?",
            (type_id, collections[0].id, data_id.key)).fetchone()
        return None if row is None else DatasetRef(parent, data_id, collections[0].name,
                                                   uuid.UUID(row[0]))
    stmts = _stmts(registry)
    conn = registry.db.read()
    try:
        for coll in collections:
            params = {"t": type_id, "c": coll.id, "k": data_id.key}
            if coll.type is CollectionType.RUN:
                found = conn.execute(stmts["run"], params).scalar()
                if found is not None:
                    return DatasetRef(parent, data_id, coll.name, found)
            elif coll.type is CollectionType.TAGGED:
                row = conn.execute(stmts["tag"], params).first()
                if row is not None:
                    return DatasetRef(parent, data_id, registry.collection_by_id(row.run_id).name,
                                      row.id)
            elif coll.type is CollectionType.CALIBRATION:
                ts = timespan or Timespan()
                rows = conn.execute(stmts["calib"], {**params, "b": ts.begin_sql,
                                                     "e": ts.end_sql}).all()
                if timespan is not None and timespan.begin != timespan.end:
                    # a range must lie inside one validity range
                    rows = [r for r in rows
                            if r.begin_ns <= ts.begin_sql and r.end_ns >= ts.end_sql]
                if len(rows) > 1:
                    raise AmbiguousCalibrationError(
                        f"{len(rows)} certifications of {dataset_type.name} {data_id!r} in "
                        f"{coll.name!r} match {timespan or 'any time'}: give a time")
                if rows:
                    return DatasetRef(parent, data_id,
                                      registry.collection_by_id(rows[0].run_id).name, rows[0].id)
        return None
    finally:
        registry.db.end_read()


def _where_clauses(registry: Registry, table: sa.Table, dims: Sequence[str],
                   where: Mapping[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """SQL conditions for constraints on ``dims``; the rest (implied keys) for Python."""
    clauses, later = [], {}
    for key, value in (where or {}).items():
        if key not in registry.universe:
            raise DataIdError(f"unknown dimension {key!r} in query constraint")
        kt = registry.universe[key].key_type
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        values = [check_value(key, v, kt) for v in values]
        if key in dims:
            clauses.append(table.c[key].in_(values) if len(values) > 1
                           else table.c[key] == values[0])
        else:
            later[key] = set(values)
    return clauses, later


def _overlaps(begin: Any, end: Any, ts: Timespan) -> list[Any]:
    """SQL for ``[begin, end)`` overlapping ``ts``; a zero-length ``ts`` is an instant that
    must fall inside (``begin <= t < end``)."""
    if ts.begin_sql == ts.end_sql:
        return [begin <= ts.begin_sql, end > ts.begin_sql]
    return [begin < ts.end_sql, end > ts.begin_sql]


def _region_clause(registry: Registry, element: str, region: Circle,
                   key_cols: Sequence[sa.Column]) -> Any:
    """EXISTS a pixel range of ``element``'s footprint overlapping the region's ranges."""
    sp = registry.tables[f"{element}_skypix"]
    dim = registry.universe[element]
    keys = (*dim.requires, element)
    ranges = region.pixel_ranges()
    if not ranges:
        return sa.false()
    overlap = sa.or_(*(sa.and_(sp.c.pix_begin < b, sp.c.pix_end > a) for a, b in ranges))
    return sa.exists().where(*(sp.c[k] == col for k, col in zip(keys, key_cols, strict=True)),
                             overlap)


def query_datasets(registry: Registry, dataset_type: DatasetType,
                   collections: Sequence[CollectionRecord], *,
                   where: Mapping[str, Any] | None = None, timespan: Timespan | None = None,
                   region: Circle | None = None, find_first: bool = True) -> list[DatasetRef]:
    """Datasets of one type in the collections, constrained by data ID values, time
    (visit/exposure/day_obs time span, or calibration validity) and sky region."""
    type_id, parent = registry.dataset_type_id(dataset_type.parent_name)
    d = registry.tables["dataset"]
    dims = parent.dimensions.required
    clauses, later = _where_clauses(registry, d, dims, where)
    temporal = next((e for e in ("visit", "exposure", "day_obs") if e in dims), None)
    spatial = next((e for e in ("visit", "exposure") if e in dims), None)
    joins: list[tuple[sa.Table, Any]] = []
    if region is not None:
        if spatial is not None:
            keys = (*registry.universe[spatial].requires, spatial)
            clauses.append(_region_clause(registry, spatial, region, [d.c[k] for k in keys]))
        elif "healpix" in dims:
            clauses.append(d.c.healpix.in_([int(p) for p in region.healpix_pixels(HEALPIX_NSIDE)]))
        else:
            raise DataIdError(f"dataset type {dataset_type.name} has no spatial dimension "
                              "(visit, exposure or healpix) to query by region")
    if timespan is not None and temporal is not None:
        rec_t = registry.tables[temporal]
        keys = (*registry.universe[temporal].requires, temporal)
        joins.append((rec_t, sa.and_(*(rec_t.c[k] == d.c[k] for k in keys))))
        clauses += _overlaps(sa.func.coalesce(rec_t.c.timespan_begin, -(2**62)),
                             sa.func.coalesce(rec_t.c.timespan_end, 2**62), timespan)
    refs: list[DatasetRef] = []
    seen: set[str] = set()
    conn = registry.db.read()
    try:
        for coll in collections:
            q = sa.select(d.c.id, d.c.run_id, d.c.data_id,
                          *(d.c[n] for n in dims)).select_from(d)
            for table, on in joins:
                q = q.join(table, on)
            if coll.type is CollectionType.RUN:
                q = q.where(d.c.run_id == coll.id)
            elif coll.type is CollectionType.TAGGED:
                tag = registry.tables["dataset_tag"]
                q = q.join(tag, tag.c.dataset_id == d.c.id).where(tag.c.collection_id == coll.id)
            elif coll.type is CollectionType.CALIBRATION:
                cal = registry.tables["dataset_calib"]
                q = q.join(cal, cal.c.dataset_id == d.c.id).where(cal.c.collection_id == coll.id)
                if timespan is not None and temporal is None:
                    q = q.where(*_overlaps(cal.c.begin_ns, cal.c.end_ns, timespan))
            q = q.where(d.c.dataset_type_id == type_id, *clauses).distinct()
            # Within one CALIBRATION collection several datasets may share a data ID (each
            # valid at other times): all are returned; find-first applies across collections.
            found_here: set[str] = set()
            run_names: dict[int, str] = {}
            n_dims = len(dims)
            for row in conn.execute(q):
                key = row[2]
                if find_first and key in seen:
                    continue
                if coll.type is not CollectionType.CALIBRATION:
                    seen.add(key)
                found_here.add(key)
                run = run_names.get(row[1])
                if run is None:
                    run = run_names[row[1]] = registry.collection_by_id(row[1]).name
                # values come from typed columns written from validated data IDs
                data_id = DataCoordinate(parent.dimensions, tuple(row[3:3 + n_dims]))
                refs.append(DatasetRef(parent, data_id, run, row[0]))
            seen |= found_here
    finally:
        registry.db.end_read()
    if region is not None and spatial is not None:
        refs = [r for r in refs if _record_overlaps(registry, spatial, r.data_id, region)]
    if later:
        refs = [r for r in refs if _implied_match(registry, r.data_id, later)]
    return refs


def _record_overlaps(registry: Registry, element: str, data_id: DataCoordinate,
                     region: Circle) -> bool:
    rec = registry.dimensions.get(element, data_id)
    return rec is not None and rec.region is not None and rec.region.overlaps(region)


def _implied_match(registry: Registry, data_id: DataCoordinate,
                   wanted: Mapping[str, set[Any]]) -> bool:
    expanded = registry.dimensions.expand(data_id)
    return all(expanded.get(k) in vals for k, vals in wanted.items())


def query_dimension_records(registry: Registry, element: str, *,
                            where: Mapping[str, Any] | None = None,
                            timespan: Timespan | None = None,
                            region: Circle | None = None) -> list[DimensionRecord]:
    """Records of one dimension, constrained by values, time overlap and sky region."""
    dim = registry.universe[element]
    if not dim.has_table:
        raise DataIdError(f"dimension {element!r} has no records")
    t = registry.tables[element]
    cols = (*dim.requires, element, *dim.implies)
    clauses, later = _where_clauses(registry, t, cols, where)
    if later:
        raise DataIdError(f"{element} records cannot be constrained by {sorted(later)}")
    if timespan is not None:
        if not dim.has_timespan:
            raise DataIdError(f"{element} records have no time span")
        clauses += _overlaps(sa.func.coalesce(t.c.timespan_begin, -(2**62)),
                             sa.func.coalesce(t.c.timespan_end, 2**62), timespan)
    if region is not None:
        if not dim.has_region:
            raise DataIdError(f"{element} records have no sky region")
        keys = (*dim.requires, element)
        clauses.append(_region_clause(registry, element, region, [t.c[k] for k in keys]))
    rows = registry.db.read().execute(
        sa.select(t).where(*clauses).order_by(*(t.c[k] for k in (*dim.requires, element)))
    ).mappings().all()
    registry.db.end_read()
    recs = [registry.dimensions.from_row(element, r) for r in rows]
    if region is not None:
        recs = [r for r in recs if r.region is not None and r.region.overlaps(region)]
    return recs
