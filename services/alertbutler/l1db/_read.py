"""Queries that return Arrow tables.

PostgreSQL results come through ``COPY (SELECT ...) TO STDOUT`` as CSV and are parsed by
Arrow's C++ reader: for the ~10^5 history rows of a visit that is several times faster than
fetching Python tuples. COPY takes no bound parameters, so the only values placed in these
statements are numbers that went through ``int()``/``float()`` here (object ids, pixel
ranges, times): no caller text ever reaches the SQL.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
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


def select(conn: sa.Connection, table: str, where: str,
           columns: Sequence[str] | None = None) -> pa.Table:
    """``SELECT columns FROM table WHERE where`` as an Arrow table of the table's types."""
    schema = arrow_schema(table)
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(unknown)}")
        schema = pa.schema([schema.field(c) for c in columns])
    sql = (f"SELECT {', '.join(_q(n) for n in schema.names)} FROM {_q(table)} "
           f"WHERE {where}")
    if conn.dialect.name == "postgresql":
        return _pg_select(conn, sql, schema)
    rows = conn.exec_driver_sql(sql).fetchall()
    if not rows:
        return schema.empty_table()
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        if pa.types.is_boolean(field.type):
            values = [None if v is None else bool(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _pg_select(conn: sa.Connection, sql: str, schema: pa.Schema) -> pa.Table:
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    if buffer.tell() == 0:
        return schema.empty_table()
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"]))
    return table.cast(schema)
