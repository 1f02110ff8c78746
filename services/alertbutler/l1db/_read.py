"""Queries that return Arrow tables.

PostgreSQL results come through connectorx, which reads ``COPY ... TO STDOUT`` in the
binary format and decodes it into Arrow in Rust, with no Python per row: psycopg's ``COPY``
iterator hands Python one chunk per row (110,000 steps of its generator for one field's
12-month DiaSource history, most of the client's CPU; the ADBC PostgreSQL driver used twice
the client CPU of that). SQLite's come through its cursor.

Statements carry no bound parameters, so the only values placed in them are numbers that
went through ``int()``/``float()`` here (object ids, pixel ranges, times): no caller text
ever reaches the SQL. A literal time bound also lets
PostgreSQL prune time partitions when it plans the query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import connectorx
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


def result_schema(table: str, columns: Sequence[str] | None) -> pa.Schema:
    schema = arrow_schema(table)
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ValueError(f"{table} has no column(s) {', '.join(unknown)}")
        schema = pa.schema([schema.field(c) for c in columns])
    return schema


def statement(table: str, where: str,
              columns: Sequence[str] | None = None) -> tuple[str, pa.Schema]:
    """``SELECT columns FROM table WHERE where`` and the Arrow schema of its result."""
    schema = result_schema(table, columns)
    sql = (f"SELECT {', '.join(_q(n) for n in schema.names)} FROM {_q(table)} "
           f"WHERE {where}")
    return sql, schema


def history_statement(dialect: str, table: str, ids: Sequence[int], since_mjd: float | None,
                      columns: Sequence[str] | None = None) -> tuple[str, pa.Schema]:
    """The rows of these objects with ``midpointMjdTai >= since_mjd``.

    On PostgreSQL the ids are joined as one ``unnest`` of an array rather than tested with
    ``= ANY(array)``: the planner then plans the array once, not once per time partition
    (134 ms for 10^4 ids over 13 partitions, measured), and probes each partition's
    ``diaObjectId`` index per id.
    """
    if dialect != "postgresql" or not ids:
        return statement(table, f"{in_ids(dialect, 'diaObjectId', ids)} AND "
                         f"{at_least('midpointMjdTai', since_mjd)}", columns)
    schema = result_schema(table, columns)
    text = ",".join(str(int(i)) for i in ids)
    window = "" if since_mjd is None else f" WHERE s.{at_least('midpointMjdTai', since_mjd)}"
    sql = (f"SELECT {', '.join('s.' + _q(n) for n in schema.names)} "
           f"FROM unnest('{{{text}}}'::bigint[]) AS o(id) JOIN {_q(table)} s "
           f"ON s.{_q('diaObjectId')} = o.id{window}")
    return sql, schema


def pg_select(url: str, sql: str, schema: pa.Schema, *, by_index: bool = False) -> pa.Table:
    """A query's rows as Arrow, read by connectorx (binary COPY decoded in Rust).

    ``url``: a libpq URL (``postgresql://``) of the database; connectorx opens its own
    session for the query. ``by_index``: join by nested loop only (for the history join).
    With every partition inside the window, PostgreSQL otherwise may hash every row of those
    partitions (seen: 1 M rows hashed, spilled to disk, for the 90,000 wanted), a plan whose
    cost grows with the survey's density instead of with the rows asked for.
    """
    # JIT compiling costs ~1 s per query under load (measured on the history join) and never
    # pays back on queries of 10^5 rows.
    settings = ["SET jit = off"]
    if by_index:
        settings += ["SET enable_hashjoin = off", "SET enable_mergejoin = off"]
    table = connectorx.read_sql(url, sql, return_type="arrow", pre_execution_query=settings)
    if not isinstance(table, pa.Table):  # pragma: no cover - the return type asked for
        raise TypeError(f"connectorx returned {type(table).__name__}, not an Arrow table")
    if table.num_rows == 0:
        return schema.empty_table()
    return table.rename_columns(schema.names).cast(schema)


def sqlite_select(conn: sa.Connection, sql: str, schema: pa.Schema) -> pa.Table:
    rows = conn.exec_driver_sql(sql).fetchall()
    if not rows:
        return schema.empty_table()
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        column: Sequence[Any] = values
        if pa.types.is_boolean(field.type):
            column = [None if v is None else bool(v) for v in values]
        arrays.append(pa.array(column, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
