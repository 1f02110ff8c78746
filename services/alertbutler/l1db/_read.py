"""Queries that return Arrow tables.

PostgreSQL results come through the ADBC driver (:mod:`._adbc`) as Arrow, without a Python
loop over rows; SQLite's through its cursor. Statements carry no bound parameters, so the only
values placed in them are numbers that went through ``int()``/``float()`` here (object ids,
pixel ranges, times): no caller text ever reaches the SQL. A literal time bound also lets
PostgreSQL prune time partitions when it plans the query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from alertbutler.l1db.schema import arrow_schema


def _q(name: str) -> str:
    return f'"{name}"'


def int_list(values: Iterable[int]) -> list[int]:
    """Ids as plain ints (numpy, Arrow or Python), refusing anything that is not one."""
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"ids must be integers, got {array.dtype}")
    return [int(v) for v in np.unique(array.astype(np.int64))]


def in_ids(dialect: str, column: str, ids: Sequence[int]) -> str:
    """SQL for ``column IN ids`` (ids already checked by :func:`int_list`)."""
    if not ids:
        return "FALSE" if dialect == "postgresql" else "0"
    text = ",".join(str(int(i)) for i in ids)
    if dialect == "postgresql":
        return f"{_q(column)} = ANY('{{{text}}}'::bigint[])"
    return f"{_q(column)} IN ({text})"


def in_ranges(column: str, ranges: Sequence[tuple[int, int]]) -> str:
    """SQL for ``column`` within any of the inclusive integer ranges."""
    if not ranges:
        return "1 = 0"
    return "(" + " OR ".join(f"{_q(column)} BETWEEN {int(lo)} AND {int(hi)}"
                             for lo, hi in ranges) + ")"


def at_least(column: str, value: float | None) -> str:
    if value is None:
        return "1 = 1"
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{column} bound must be a finite number, got {value}")
    return f"{_q(column)} >= {value!r}"


def statement(table: str, where: str,
              columns: Sequence[str] | None = None) -> tuple[str, pa.Schema]:
    """``SELECT columns FROM table WHERE where`` and the Arrow schema of its result."""
    schema = arrow_schema(table)
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(unknown)}")
        schema = pa.schema([schema.field(c) for c in columns])
    sql = (f"SELECT {', '.join(_q(n) for n in schema.names)} FROM {_q(table)} "
           f"WHERE {where}")
    return sql, schema


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A driver's Arrow result with the catalog's names, types and nullability."""
    if table.num_rows == 0:
        return schema.empty_table()
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(table.columns, schema,
                                                                strict=True)], schema=schema)


def sqlite_select(conn: sa.Connection, sql: str, schema: pa.Schema) -> pa.Table:
    rows = conn.exec_driver_sql(sql).fetchall()
    if not rows:
        return schema.empty_table()
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        if pa.types.is_boolean(field.type):
            values = [None if v is None else bool(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
