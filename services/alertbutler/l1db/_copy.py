"""Arrow tables into PostgreSQL by binary ``COPY``, with no per-row Python.

pgpq encodes an Arrow table into PostgreSQL's binary COPY format in Rust: about a quarter of
the client CPU of writing the same rows as CSV (5.5 ms against 25 ms for 10,000 DiaSources,
measured), and the server reads binary values without parsing text. Binary COPY needs each
Arrow type to be the column's exact SQL type; the catalog's Arrow schema (:mod:`.schema`) is
declared to match (int64 ``bigint``, int32 ``integer``, float32 ``real``, float64 ``double
precision``, string ``text``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pgpq
import pyarrow as pa

from alertbutler.l1db.rows import RowBatch
from alertbutler.l1db.schema import CATALOG

#: RowBatch attribute -> catalog table
TABLES = {"objects": "DiaObject", "sources": "DiaSource",
          "forced_sources": "DiaForcedSource", "ss_sources": "SSSource"}


def quote(name: str) -> str:
    """A catalog identifier, double-quoted (the names are ours, never a caller's)."""
    return f'"{name}"'


def binary_copy_data(rows: pa.Table) -> bytes:
    """The rows in PostgreSQL's binary COPY format: header, tuples, trailer."""
    encoder = pgpq.ArrowToPostgresBinaryEncoder(rows.schema)
    out = bytearray(encoder.write_header())
    for batch in rows.to_batches():
        out.extend(encoder.write_batch(batch))
    out.extend(encoder.finish())
    return bytes(out)


def by_key(table: str, rows: pa.Table) -> pa.Table:
    """The rows sorted by the table's key: concurrent writers then lock rows in one order."""
    _, key = CATALOG[table]
    return rows.sort_by([(k, "ascending") for k in key])


def encode_batch(batch: RowBatch) -> RowBatch:
    """The batch with each non-empty table sorted by key and its binary COPY data made.

    What a PostgreSQL store does on the client before its transaction, done apart from it:
    a pipelined writer (the ingester) does it for the next batch while the server writes
    this one (27-37 ms of a 220-310 ms store of 6,000 small alerts, measured)."""
    changes: dict[str, Any] = {}
    encoded: dict[str, tuple[pa.Table, bytes]] = {}
    for attribute, table in TABLES.items():
        rows = getattr(batch, attribute)
        if not rows.num_rows:
            continue
        done = batch.encoded.get(table)
        if done is not None and done[0] is rows:  # encoded ahead, and not replaced since
            encoded[table] = done
            continue
        rows = changes[attribute] = by_key(table, rows)
        encoded[table] = (rows, binary_copy_data(rows))
    return dataclasses.replace(batch, **changes, encoded=encoded)


def copy_in(cursor: Any, table: str, rows: pa.Table,
            columns: Sequence[str] | None = None, *, data: bytes | None = None) -> None:
    """``COPY table (columns) FROM STDIN`` in the binary format, on a psycopg cursor.

    ``columns``: the table's columns the Arrow columns go into, in order (default: the Arrow
    column names). ``data``: the rows' binary COPY data, if made already."""
    names = ", ".join(quote(c) for c in (columns or rows.column_names))
    if data is None:
        data = binary_copy_data(rows)
    with cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN WITH (FORMAT binary)") as copy:
        copy.write(data)
