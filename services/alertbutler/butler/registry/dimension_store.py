"""Dimension records: insert/sync, lookup (cached) and expansion of data IDs.

Records are written rarely (an instrument's detectors once, a visit once) and read on every
query by time or region, so lookups are cached per process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from .._errors import ConflictingDefinitionError, DataIdError
from ..dimensions import DataCoordinate, DimensionRecord, DimensionUniverse, check_value
from ..regions import Circle
from ..timespan import Timespan
from .database import Database


class DimensionRecordStore:
    def __init__(self, db: Database, tables: dict[str, sa.Table],
                 universe: DimensionUniverse) -> None:
        self.db, self.tables, self.universe = db, tables, universe
        self._cache: dict[tuple[str, tuple[Any, ...]], DimensionRecord | None] = {}

    # -- writing -------------------------------------------------------------------------
    def _normalize(self, element: str, record: DimensionRecord | Mapping[str, Any]
                   ) -> DimensionRecord:
        dim = self.universe[element]
        if not dim.has_table:
            raise DataIdError(f"dimension {element!r} has no records")
        if isinstance(record, DimensionRecord):
            values, ts, region = dict(record.values), record.timespan, record.region
        else:
            values = dict(record)
            ts, region = values.pop("timespan", None), values.pop("region", None)
        allowed = {*dim.requires, dim.name, *dim.implies, *(n for n, _ in dim.metadata)}
        extra = set(values) - allowed
        missing = [n for n in (*dim.requires, dim.name) if n not in values]
        if extra or missing:
            raise DataIdError(f"{element} record {values!r}: missing {missing}, "
                              f"unexpected {sorted(extra)}")
        for n in (*dim.requires, dim.name, *dim.implies):
            if n in values:
                values[n] = check_value(n, values[n], self.universe[n].key_type)
        if ts is not None and not isinstance(ts, Timespan):
            ts = Timespan.of(*ts)
        if region is not None and not isinstance(region, Circle):
            region = Circle(*region)
        if ts is not None and not dim.has_timespan:
            raise DataIdError(f"{element} records have no timespan")
        if region is not None and not dim.has_region:
            raise DataIdError(f"{element} records have no region")
        return DimensionRecord(element, values, ts, region)

    def _row(self, rec: DimensionRecord) -> dict[str, Any]:
        dim = self.universe[rec.element]
        row = {n: rec.values.get(n) for n in (*dim.requires, dim.name, *dim.implies,
                                               *(m for m, _ in dim.metadata))}
        if dim.has_timespan:
            row["timespan_begin"] = rec.timespan.begin if rec.timespan else None
            row["timespan_end"] = rec.timespan.end if rec.timespan else None
        if dim.has_region:
            r = rec.region
            row.update(ra=r.ra if r else None, dec=r.dec if r else None,
                       radius=r.radius if r else None)
        return row

    def sync(self, element: str, records: Iterable[DimensionRecord | Mapping[str, Any]],
             *, update: bool = False) -> int:
        """Insert records that are absent; identical ones are no-ops, different ones an error
        (or replaced with ``update=True``). Returns the number inserted or updated."""
        records = list(records)
        for attempt in range(3):
            try:
                return self._sync_once(element, records, update)
            except sa.exc.IntegrityError:
                # another process inserted the same record between our check and insert:
                # run again, now it is there (identical: no-op; different: a clear error).
                # Inside a caller's transaction the retry is the caller's (the transaction
                # is spoilt on PostgreSQL): see Database.retry_race.
                if attempt == 2 or self.db.in_transaction:
                    raise
        raise AssertionError("unreachable")

    def _sync_once(self, element: str, records: list[DimensionRecord | Mapping[str, Any]],
                   update: bool) -> int:
        dim = self.universe[element]
        table = self.tables[element]
        keys = (*dim.requires, dim.name)
        changed = 0
        with self.db.transaction() as conn:
            for raw in records:
                rec = self._normalize(element, raw)
                row = self._row(rec)
                cond = sa.and_(*(table.c[k] == row[k] for k in keys))
                existing = conn.execute(sa.select(table).where(cond)).mappings().first()
                if existing is not None:
                    if self._same(dict(existing), row):
                        continue
                    if not update:
                        diff = {k: (existing[k], row[k]) for k in row if existing[k] != row[k]}
                        raise ConflictingDefinitionError(
                            f"{element} record {rec.data_id} exists with different values "
                            f"(existing, new): {diff}")
                    conn.execute(table.update().where(cond).values(row))
                    if dim.has_region:
                        sp = self.tables[f"{element}_skypix"]
                        conn.execute(sp.delete().where(sa.and_(*(sp.c[k] == row[k]
                                                                  for k in keys))))
                else:
                    conn.execute(table.insert().values(row))
                if dim.has_region and rec.region is not None:
                    ids = {k: row[k] for k in keys}
                    conn.execute(self.tables[f"{element}_skypix"].insert(),
                                 [{**ids, "pix_begin": a, "pix_end": b}
                                  for a, b in rec.region.pixel_ranges()])
                self._cache.pop((element, tuple(row[k] for k in keys)), None)
                changed += 1
        return changed

    def ensure(self, records: Iterable[DimensionRecord]) -> int:
        """Make sure records exist, for writers running side by side (189 workers exporting
        the same visit into one central repo). Records this process already saw are skipped
        without a round trip; the rest go in ONE short transaction of ``INSERT ... ON
        CONFLICT DO NOTHING`` in a fixed order (universe order, then keys), so two writers
        never wait on each other's rows in opposite orders (no deadlock), a record another
        writer inserted meanwhile is no error, and no transaction holds a row lock that
        others need for longer than that one statement list. A record found existing with
        other values is a :class:`ConflictingDefinitionError`, as in :meth:`sync`. Returns
        the number inserted."""
        order = {n: i for i, n in enumerate(self.universe.names)}
        todo: list[tuple[int, tuple[Any, ...], str, DimensionRecord, dict[str, Any]]] = []
        seen: set[tuple[str, tuple[Any, ...]]] = set()
        for raw in records:
            rec = self._normalize(raw.element, raw)
            dim = self.universe[rec.element]
            row = self._row(rec)
            key = tuple(row[k] for k in (*dim.requires, dim.name))
            if (rec.element, key) in seen:
                continue
            seen.add((rec.element, key))
            # a read first (cached from then on): most records a writer needs (its detector,
            # a visit another worker already brought) exist, and a read takes no lock
            known = self.get(rec.element, dict(zip((*dim.requires, dim.name), key,
                                                   strict=True)))
            if known is not None:
                self._check_same(rec, known, row)
                continue
            todo.append((order[rec.element], key, rec.element, rec, row))
        if not todo:
            return 0
        todo.sort(key=lambda t: (t[0], t[1]))
        is_sqlite = self.db.is_sqlite

        def insert_ignoring(table: sa.Table, keys: list[str]) -> sa.Insert:
            if is_sqlite:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=keys)

        inserted: list[DimensionRecord] = []

        def once() -> None:
            inserted.clear()
            with self.db.transaction() as conn:
                for _, key, element, rec, row in todo:
                    dim = self.universe[element]
                    keys = [*dim.requires, dim.name]
                    stmt = insert_ignoring(self.tables[element], keys)  # compiled once
                    done = conn.execute(stmt, row).rowcount
                    if not done:
                        continue
                    inserted.append(rec)
                    if dim.has_region and rec.region is not None:
                        conn.execute(self.tables[f"{element}_skypix"].insert(),
                                     [{**dict(zip(keys, key, strict=True)), "pix_begin": a,
                                       "pix_end": b} for a, b in rec.region.pixel_ranges()])

        self.db.retry(once)
        mine = {id(r) for r in inserted}
        for _, key, element, rec, row in todo:
            if id(rec) in mine:
                if not self.db.in_transaction:
                    self._cache[(element, key)] = rec
                continue
            self._cache.pop((element, key), None)
            existing = self.get(element, dict(zip((*self.universe[element].requires, element),
                                                  key, strict=True)))
            if existing is None:  # cannot be: a conflict means the row is there
                raise ConflictingDefinitionError(f"{element} record {rec.data_id} vanished")
            self._check_same(rec, existing, row)
        return len(inserted)

    def _check_same(self, rec: DimensionRecord, existing: DimensionRecord,
                    row: dict[str, Any]) -> None:
        old = self._row(existing)
        if not self._same(old, row):
            diff = {k: (old.get(k), v) for k, v in row.items() if old.get(k) != v}
            raise ConflictingDefinitionError(
                f"{rec.element} record {rec.data_id} exists with different values "
                f"(existing, new): {diff}")

    @staticmethod
    def _same(existing: dict[str, Any], row: dict[str, Any]) -> bool:
        for k, v in row.items():
            e = existing.get(k)
            if isinstance(v, float) and isinstance(e, float):
                if abs(v - e) > 1e-12 * max(1.0, abs(v)):
                    return False
            elif e != v:
                return False
        return True

    # -- reading -------------------------------------------------------------------------
    def from_row(self, element: str, row: Mapping[str, Any] | sa.RowMapping) -> DimensionRecord:
        dim = self.universe[element]
        values = {n: row[n] for n in (*dim.requires, dim.name, *dim.implies,
                                      *(m for m, _ in dim.metadata))}
        ts = region = None
        if dim.has_timespan and (row["timespan_begin"] is not None
                                 or row["timespan_end"] is not None):
            ts = Timespan(row["timespan_begin"], row["timespan_end"])
        if dim.has_region and row["ra"] is not None:
            region = Circle(row["ra"], row["dec"], row["radius"])
        return DimensionRecord(element, values, ts, region)

    def get(self, element: str, data_id: Mapping[str, Any]) -> DimensionRecord | None:
        dim = self.universe[element]
        keys = (*dim.requires, dim.name)
        try:
            key = tuple(data_id[k] for k in keys)
        except KeyError as exc:
            raise DataIdError(f"looking up a {element} record needs {list(keys)}; "
                              f"missing {exc.args[0]!r}") from None
        cache_key = (element, key)
        if cache_key in self._cache:
            return self._cache[cache_key]
        table = self.tables[element]
        row = self.db.read().execute(
            sa.select(table).where(sa.and_(*(table.c[k] == v for k, v in
                                             zip(keys, key, strict=True))))
        ).mappings().first()
        self.db.end_read()
        rec = None if row is None else self.from_row(element, row)
        if rec is not None and not self.db.in_transaction:  # it may still roll back
            self._cache[cache_key] = rec
        return rec

    def expand(self, data_id: DataCoordinate) -> DataCoordinate:
        """Fill implied values (band, physical_filter, day_obs) from records."""
        if data_id.has_implied:
            return data_id
        implied: dict[str, Any] = {}
        known = dict(data_id.items())
        for name in data_id.dimensions.required:
            dim = self.universe[name]
            if not dim.implies or not dim.has_table:
                continue
            rec = self.get(name, known)
            if rec is None:
                continue
            for imp in dim.implies:
                if rec.values.get(imp) is not None:
                    implied[imp] = known[imp] = rec.values[imp]
        # second level: physical_filter -> band
        for name in data_id.dimensions.implied:
            dim = self.universe[name]
            if name in known and dim.implies and dim.has_table:
                rec = self.get(name, known)
                if rec is not None:
                    for imp in dim.implies:
                        implied.setdefault(imp, rec.values.get(imp))
        return data_id.with_implied({k: v for k, v in implied.items() if v is not None})

    def all(self, element: str) -> list[DimensionRecord]:
        rows = self.db.read().execute(sa.select(self.tables[element])).mappings().all()
        self.db.end_read()
        return [self.from_row(element, r) for r in rows]
