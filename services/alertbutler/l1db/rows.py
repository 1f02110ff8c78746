"""Rows in, Arrow tables out: one normal form for every way a caller hands rows over.

A caller may pass a sequence of dicts (alert records, hand-made rows), an Arrow table or
record batch, or a mapping of column name -> array (numpy). All become an Arrow table with
the catalog table's columns, in order: unknown keys are ignored (alert records carry many
more fields than the L1 database keeps), missing nullable columns become null, a missing
required column or an impossible value (dec outside [-90, 90], a non-finite time) is a
:class:`RowError` naming the column. ``pixelId`` is computed when absent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from alertbutler.l1db._errors import RowError
from alertbutler.l1db.schema import CATALOG, arrow_schema
from alertbutler.l1db.spatial import pixel_ids

#: What callers may pass as rows of one table.
Rows: TypeAlias = pa.Table | pa.RecordBatch | Mapping[str, Any] | Sequence[Mapping[str, Any]]

#: Columns checked for values no real row can have: name -> (low, high), inclusive.
#: A source time bounds the time partition it makes on PostgreSQL (a wild one would make a
#: partition named by a number longer than PostgreSQL's identifiers): MJD 0 is 1858, 10^6 4596.
_RANGES = {"ra": (0.0, 360.0), "dec": (-90.0, 90.0), "midpointMjdTai": (0.0, 1e6)}
_FINITE = ("midpointMjdTai", "validityStartMjdTai")


def to_table(table: str, rows: Rows | None) -> pa.Table:
    """Rows of catalog ``table`` as an Arrow table in the table's column order."""
    schema = arrow_schema(table)
    if rows is None:
        return schema.empty_table()
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        columns = {name: rows.column(name) for name in rows.column_names}
        n = rows.num_rows
    elif isinstance(rows, Mapping):
        columns = dict(rows)
        n = len(next(iter(columns.values()))) if columns else 0
    else:
        rows = list(rows)
        n = len(rows)
        columns = _columns_of_dicts(rows, [f.name for f in schema if f.name != "pixelId"])
    arrays: list[pa.Array] = []
    for field in schema:
        values = columns.get(field.name)
        if values is None and field.name == "pixelId" and "ra" in columns and "dec" in columns:
            _check_values(table, pa.Table.from_arrays(arrays, schema=pa.schema(
                [schema.field(i) for i in range(len(arrays))])))
            arr = pa.array(pixel_ids(_numpy(arrays, schema, "ra"), _numpy(arrays, schema, "dec")))
        elif values is None:
            if not field.nullable and n:
                raise RowError(f"{table}: required column '{field.name}' is missing",
                               column=field.name)
            arr = pa.nulls(n, type=field.type)
        else:
            arr = _as_array(values, field, table)
        if len(arr) != n:
            raise RowError(f"{table}: column '{field.name}' has {len(arr)} values, "
                           f"expected {n}", column=field.name)
        if not field.nullable and arr.null_count:
            raise RowError(f"{table}: required column '{field.name}' has "
                           f"{arr.null_count} null value(s)", column=field.name)
        arrays.append(arr)
    result = pa.Table.from_arrays(arrays, schema=schema)
    _check_values(table, result)
    return result


def _columns_of_dicts(rows: list[Mapping[str, Any]],
                      names: list[str]) -> dict[str, Sequence[Any]]:
    """Column lists from dicts. The fast path (rows with the keys of the first row, as
    decoded Avro records have) pulls each row in one C call."""
    if not rows:
        return {}
    present = [name for name in names if name in rows[0]]
    absent = [name for name in names if name not in rows[0]]
    if present and not any(name in r for r in rows for name in absent):
        getter = itemgetter(*present)
        try:
            pulled = [getter(r) for r in rows]
        except KeyError:
            pass
        else:
            if len(present) == 1:
                return {present[0]: pulled}
            return dict(zip(present, zip(*pulled, strict=True), strict=True))
    return {name: [r.get(name) for r in rows] for name in names
            if any(name in r for r in rows)}


def _as_array(values: Any, field: pa.Field, table: str) -> pa.Array:
    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            return values.cast(field.type) if values.type != field.type else values
        if isinstance(values, np.ndarray):
            return pa.array(values, type=field.type, from_pandas=True)
        return pa.array(list(values) if not isinstance(values, list) else values,
                        type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise RowError(f"{table}: column '{field.name}' cannot be read as {field.type}: {exc}",
                       column=field.name) from None


def _numpy(arrays: list[pa.Array], schema: pa.Schema, name: str) -> np.ndarray:
    return arrays[schema.get_field_index(name)].to_numpy(zero_copy_only=False)


def _check_values(table: str, result: pa.Table) -> None:
    for name, (low, high) in _RANGES.items():
        if name in result.column_names and result.num_rows:
            values = result.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            bad = ~((values >= low) & (values <= high))
            if bad.any():
                raise RowError(f"{table}: {int(bad.sum())} row(s) with '{name}' outside "
                               f"[{low}, {high}], e.g. {values[bad][0]!r}", column=name)
    for name in _FINITE:
        if name in result.column_names and result.num_rows:
            values = result.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            if not np.isfinite(values).all():
                raise RowError(f"{table}: '{name}' is not a finite number", column=name)


def unique_rows(table: str, rows: pa.Table) -> pa.Table:
    """Rows with duplicate keys dropped, keeping the first (writes are idempotent on keys)."""
    _, key = CATALOG[table]
    if rows.num_rows < 2:
        return rows
    if len(key) == 1:
        ids = rows.column(key[0]).to_numpy()
        _, first = np.unique(ids, return_index=True)
    else:
        keys = np.rec.fromarrays([rows.column(k).to_numpy() for k in key])
        _, first = np.unique(keys, return_index=True)
    if len(first) == rows.num_rows:
        return rows
    return rows.take(np.sort(first))


@dataclass(frozen=True)
class RowBatch:
    """Rows for every catalog table, written together in one transaction.

    ``encoded``: per table, the rows (sorted by key) and their binary ``COPY`` data, made
    ahead of the store by ``L1db.prepare``; used only while that table is those very rows
    (a batch changed since is encoded again); empty otherwise."""

    objects: pa.Table
    sources: pa.Table
    forced_sources: pa.Table
    ss_sources: pa.Table
    encoded: Mapping[str, tuple[pa.Table, bytes]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, *, objects: Rows | None = None, sources: Rows | None = None,
              forced_sources: Rows | None = None, ss_sources: Rows | None = None) -> RowBatch:
        """Normalize, check and de-duplicate rows of each table."""
        return cls(
            objects=unique_rows("DiaObject", to_table("DiaObject", objects)),
            sources=unique_rows("DiaSource", to_table("DiaSource", sources)),
            forced_sources=unique_rows("DiaForcedSource",
                                       to_table("DiaForcedSource", forced_sources)),
            ss_sources=unique_rows("SSSource", to_table("SSSource", ss_sources)),
        )

    @property
    def n_rows(self) -> int:
        return (self.objects.num_rows + self.sources.num_rows + self.forced_sources.num_rows
                + self.ss_sources.num_rows)


def rows_from_alerts(records: Iterable[Mapping[str, Any]]) -> RowBatch:
    """Every row an alert packet carries: its diaSource and history, forced-source history,
    diaObject version and ssSource. Rows already stored by an earlier alert are the same rows
    (same keys), so storing them again changes nothing."""
    sources: list[Mapping[str, Any]] = []
    forced: list[Mapping[str, Any]] = []
    objects: list[Mapping[str, Any]] = []
    ss: list[Mapping[str, Any]] = []
    for record in records:
        sources.append(record["diaSource"])
        if record.get("prvDiaSources"):
            sources.extend(record["prvDiaSources"])
        if record.get("prvDiaForcedSources"):
            forced.extend(record["prvDiaForcedSources"])
        if record.get("diaObject"):
            objects.append(record["diaObject"])
        if record.get("ssSource"):
            ss.append(record["ssSource"])
    return RowBatch.build(objects=objects, sources=sources, forced_sources=forced,
                          ss_sources=ss)


def alert_problem(record: Mapping[str, Any]) -> str | None:
    """Why an alert record cannot go into the L1 database (impossible values), or None.

    Checked per alert so that one bad alert is set aside (dead-lettered) and not its batch.
    """
    try:
        rows_from_alerts([record])
    except RowError as exc:
        return str(exc)
    except (KeyError, TypeError, AttributeError) as exc:
        return f"alert record is not shaped like an alert packet: {type(exc).__name__}: {exc}"
    return None
