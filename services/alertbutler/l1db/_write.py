"""Bulk, idempotent writes inside one caller-owned transaction.

Every catalog insert skips rows whose key is already there, so a batch written twice (a
consumer that crashed after the commit but before acknowledging) changes nothing the second
time. Each backend takes its fastest path:

- PostgreSQL: binary ``COPY`` (:mod:`._copy`) straight into each table inside a savepoint;
  when a row is already there (a redelivered batch), the rows go through a session
  temporary table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead. Rows are
  sorted by key either way, so concurrent writers lock them in the same order and do not
  deadlock.
- SQLite: ``executemany`` of ``INSERT OR IGNORE``.

``DiaObjectLast`` keeps the newest version of each object whatever order versions arrive in
(alerts from different partitions are not ordered): an upsert that only replaces a row by a
version with a later ``validityStartMjdTai``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import sqlalchemy as sa

from alertbutler.l1db import _markers
from alertbutler.l1db._copy import TABLES, copy_in, encode_batch
from alertbutler.l1db._types import ConsumedOffsets, VisitDetector, VisitDetectorEnd, of_l1
from alertbutler.l1db.rows import RowBatch
from alertbutler.l1db.schema import CATALOG


def _q(name: str) -> str:
    return f'"{name}"'


def write_catalog(conn: sa.Connection, batch: RowBatch) -> dict[str, int]:
    """Insert a batch's rows; returns rows actually inserted per table."""
    pg = conn.dialect.name == "postgresql"
    if pg:
        batch = encode_batch(batch)  # sorted and encoded (unless done ahead, by L1db.prepare)
    inserted: dict[str, int] = {}
    for attribute, table in TABLES.items():
        rows = getattr(batch, attribute)
        if not rows.num_rows:
            continue
        if pg:
            data = batch.encoded[table][1]
            inserted[table] = _pg_insert(conn, table, rows, data)
            if table == "DiaObject":
                _pg_upsert_last(conn, rows, data)
        else:
            inserted[table] = _sqlite_insert(conn, table, rows)
            if table == "DiaObject":
                _sqlite_upsert_last(conn, rows)
    return inserted


# ---- PostgreSQL ------------------------------------------------------------------------

def _raw(conn: sa.Connection) -> Any:
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the L1 database connection is closed")
    return raw


def _pg_copy(conn: sa.Connection, table: str, rows: pa.Table, *, like: str,
             data: bytes) -> str:
    """COPY the rows into this session's temporary table ``table`` (made like ``like``)."""
    with _raw(conn).cursor() as cursor:
        # every time, not once per connection: made inside a transaction that then rolls
        # back (a deadlock retried, a failed store), the table is gone again
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_q(table)} "
                       f"(LIKE {_q(like)}) ON COMMIT DELETE ROWS")
        copy_in(cursor, table, rows, data=data)
    return table


def _pg_insert(conn: sa.Connection, table: str, rows: pa.Table, data: bytes) -> int:
    """Insert the rows whose key is not there yet; returns how many were inserted.

    First straight into the table by binary COPY, inside a savepoint: a new batch (every
    row new, the usual case) costs the server half the CPU of the path through a temporary
    table. A batch holding a row already there (a redelivery) makes that COPY fail with a
    unique violation; it is rolled back to the savepoint and the rows go through a temporary
    table and ``INSERT ... ON CONFLICT DO NOTHING``. Either way rows are sorted by key, so
    concurrent writers of the same rows lock them in the same order (``data``: the sorted
    rows' COPY data, :func:`._copy.encode_batch`)."""
    _, key = CATALOG[table]
    with _raw(conn).cursor() as cursor:
        cursor.execute("SAVEPOINT l1db_copy")
        try:
            copy_in(cursor, table, rows, data=data)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT l1db_copy")
        else:
            cursor.execute("RELEASE SAVEPOINT l1db_copy")
            return rows.num_rows
    tmp = _pg_copy(conn, f"tmp_{table}", rows, like=table, data=data)
    columns = ", ".join(_q(c) for c in rows.column_names)
    result = conn.exec_driver_sql(
        f"INSERT INTO {_q(table)} ({columns}) SELECT {columns} FROM {_q(tmp)} "
        f"ORDER BY {', '.join(_q(k) for k in key)} ON CONFLICT DO NOTHING")
    return max(result.rowcount, 0)


def _pg_upsert_last(conn: sa.Connection, rows: pa.Table, data: bytes) -> None:
    """Newest version per object (the rows through a temporary table; ``data``: the
    DiaObject rows' COPY data, the same columns)."""
    tmp = _pg_copy(conn, "tmp_DiaObjectLast", rows, like="DiaObjectLast", data=data)
    columns = ", ".join(_q(c) for c in rows.column_names)
    updates = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in rows.column_names
                        if c != "diaObjectId")
    conn.exec_driver_sql(
        f'INSERT INTO "DiaObjectLast" ({columns}) '
        f'SELECT DISTINCT ON ("diaObjectId") {columns} FROM {_q(tmp)} '
        f'ORDER BY "diaObjectId", "validityStartMjdTai" DESC '
        f'ON CONFLICT ("diaObjectId") DO UPDATE SET {updates} '
        f'WHERE EXCLUDED."validityStartMjdTai" > "DiaObjectLast"."validityStartMjdTai"')


# ---- SQLite ----------------------------------------------------------------------------

def _tuples(rows: pa.Table) -> list[tuple]:
    return list(zip(*[column.to_pylist() for column in rows.columns], strict=True))


def _sqlite_insert(conn: sa.Connection, table: str, rows: pa.Table) -> int:
    columns = ", ".join(_q(c) for c in rows.column_names)
    marks = ", ".join("?" * rows.num_columns)
    result = conn.exec_driver_sql(
        f"INSERT OR IGNORE INTO {_q(table)} ({columns}) VALUES ({marks})", _tuples(rows))
    return max(result.rowcount, 0)


def _sqlite_upsert_last(conn: sa.Connection, rows: pa.Table) -> None:
    # newest version per object within the batch first: one upsert per object
    ids = rows.column("diaObjectId").to_numpy()
    order = np.lexsort((-rows.column("validityStartMjdTai").to_numpy(), ids))
    _, first = np.unique(ids[order], return_index=True)
    latest = rows.take(order[first])
    columns = ", ".join(_q(c) for c in latest.column_names)
    marks = ", ".join("?" * latest.num_columns)
    updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in latest.column_names
                        if c != "diaObjectId")
    conn.exec_driver_sql(
        f'INSERT INTO "DiaObjectLast" ({columns}) VALUES ({marks}) '
        f'ON CONFLICT ("diaObjectId") DO UPDATE SET {updates} '
        f'WHERE excluded."validityStartMjdTai" > "DiaObjectLast"."validityStartMjdTai"',
        _tuples(latest))


# ---- bookkeeping -----------------------------------------------------------------------

def write_markers(conn: sa.Connection, markers: Sequence[VisitDetectorEnd],
                  now: float) -> None:
    """Record end markers, a partition's recorded one replaced only by a marker of an
    attempt that published more alerts (:func:`._markers.prevails`: idempotent, and an empty
    close never overrides alerts), and for out-of-band ones the offsets they wait for.
    Whether this completes a visit-detector is :func:`settle_markers`' business."""
    if not markers:
        return
    pg = conn.dialect.name == "postgresql"
    conn.execute(sa.text(
        "INSERT INTO visit_detector_end (visit, detector, partition, n_partitions, "
        "n_alerts, n_alerts_total, recorded_at) VALUES (:v, :d, :p, :np, :n, :t, :now) "
        "ON CONFLICT (visit, detector, partition) DO UPDATE SET "
        "n_partitions = excluded.n_partitions, n_alerts = excluded.n_alerts, "
        "n_alerts_total = excluded.n_alerts_total, recorded_at = excluded.recorded_at "
        f"WHERE {_markers.PREVAILS_SQL}"),
        [{"v": m.visit, "d": m.detector, "p": m.partition, "np": m.n_partitions,
          "n": m.n_alerts, "t": m.n_alerts_total, "now": now} for m in markers])
    waits = [{"v": m.visit, "d": m.detector, "t": m.topic, "p": m.partition,
              "o": m.last_offset} for m in markers
             if m.topic is not None and m.last_offset is not None]
    if waits:
        # two attempts' alerts on one partition: wait for the later (both get stored)
        greatest = "GREATEST" if pg else "MAX"
        conn.execute(sa.text(
            "INSERT INTO visit_detector_wait (visit, detector, topic, partition, last_offset) "
            "VALUES (:v, :d, :t, :p, :o) ON CONFLICT (visit, detector, topic, partition) "
            f"DO UPDATE SET last_offset = {greatest}(visit_detector_wait.last_offset, "
            "excluded.last_offset)"), waits)


#: PostgreSQL advisory lock key serializing :func:`settle_markers` between ingesters.
_SETTLE_LOCK = 0x616C6572745F656E  # "alert_en"


def settle_markers(conn: sa.Connection, markers: Sequence[VisitDetectorEnd],
                   now: float) -> list[VisitDetector]:
    """Complete the visit-detectors whose recorded markers settle them and whose every
    alert offset is stored (or raise the count of one completed on fewer alerts); return
    them.

    Runs after this transaction's markers and offsets are written. The waits are the alert
    offsets out-of-band markers name; one is lifted when a stored offset of that partition
    (``consumer_offset``, written with the rows) has passed it, whichever transaction or
    ingester stored which. On PostgreSQL one advisory lock, taken after those writes,
    serializes this step: of two concurrent transactions, one storing a marker and one
    storing the offsets it waits for, the second to take the lock sees the first's commit
    (READ COMMITTED reads afresh per statement), so neither strands a visit-detector."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETTLE_LOCK})
    candidates = {of_l1(m.visit, m.detector) for m in markers}
    lifted = conn.execute(sa.text(
        "DELETE FROM visit_detector_wait WHERE EXISTS (SELECT 1 FROM consumer_offset c "
        "WHERE c.topic = visit_detector_wait.topic "
        "AND c.partition = visit_detector_wait.partition "
        "AND c.next_offset > visit_detector_wait.last_offset) "
        "RETURNING visit, detector")).fetchall()
    candidates.update(of_l1(v, d) for v, d in lifted)
    done = []
    for vd in sorted(candidates):
        params = {"v": vd.visit, "d": vd.detector}
        if conn.execute(sa.text("SELECT 1 FROM visit_detector_wait WHERE visit = :v AND "
                                "detector = :d LIMIT 1"), params).first() is not None:
            continue  # alerts a marker names are not all stored yet
        count = _markers.settled_count(conn.execute(sa.text(
            "SELECT n_partitions, n_alerts, n_alerts_total FROM visit_detector_end "
            "WHERE visit = :v AND detector = :d"), params).all())
        if count is not None and _complete(conn, vd, count, now, raise_count=True):
            done.append(vd)
    return done


def _complete(conn: sa.Connection, vd: VisitDetector, n_alerts: int, now: float, *,
              raise_count: bool) -> bool:
    """Record ``vd`` complete with ``n_alerts``; ``raise_count``: also over a completion of
    fewer alerts (:func:`._markers.raises`). True when a row was written."""
    pg = conn.dialect.name == "postgresql"
    params = {"v": int(vd.visit), "d": int(vd.detector), "n": int(n_alerts), "now": now}
    if raise_count:
        sql = ("INSERT INTO ingested_visit_detector (visit, detector, n_alerts, completed_at) "
               "VALUES (:v, :d, :n, :now) ON CONFLICT (visit, detector) DO UPDATE SET "
               "n_alerts = excluded.n_alerts, completed_at = excluded.completed_at "
               "WHERE excluded.n_alerts > ingested_visit_detector.n_alerts")
    else:
        prefix = "INSERT" if pg else "INSERT OR IGNORE"
        suffix = " ON CONFLICT DO NOTHING" if pg else ""
        sql = (f"{prefix} INTO ingested_visit_detector (visit, detector, n_alerts, "
               f"completed_at) VALUES (:v, :d, :n, :now){suffix}")
    return conn.execute(sa.text(sql), params).rowcount > 0


def mark_complete(conn: sa.Connection, visit_detectors: Iterable[VisitDetector], now: float,
                  *, n_alerts: int | None = None) -> list[VisitDetector]:
    """Insert ``ingested_visit_detector`` rows outright (a writer that stores whole
    visit-detectors needs no markers), each under a PostgreSQL advisory lock of its own."""
    pg = conn.dialect.name == "postgresql"
    done = []
    for vd in visit_detectors:
        if pg:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": (int(vd.visit) * 4099 + int(vd.detector)) % (1 << 62)})
        if _complete(conn, vd, int(n_alerts or 0), now, raise_count=False):
            done.append(of_l1(vd.visit, vd.detector))
    return done


def write_offsets(conn: sa.Connection, consumed: ConsumedOffsets, n_rows: int,
                  now: float) -> None:
    """Record the consumer's next offsets (never moving backwards) and its totals."""
    greatest = "GREATEST" if conn.dialect.name == "postgresql" else "MAX"
    if consumed.next_offsets:
        conn.execute(sa.text(
            "INSERT INTO consumer_offset (consumer, topic, partition, next_offset, updated_at) "
            "VALUES (:c, :t, :p, :o, :now) ON CONFLICT (consumer, topic, partition) DO UPDATE "
            f"SET next_offset = {greatest}(consumer_offset.next_offset, excluded.next_offset), "
            "updated_at = excluded.updated_at"),
            [{"c": consumed.consumer, "t": topic, "p": partition, "o": offset, "now": now}
             for (topic, partition), offset in sorted(consumed.next_offsets.items())])
    conn.execute(sa.text(
        "INSERT INTO ingest_progress (consumer, member, n_messages, n_rows, updated_at) "
        "VALUES (:c, :m, :n, :r, :now) ON CONFLICT (consumer, member) DO UPDATE "
        "SET n_messages = ingest_progress.n_messages + excluded.n_messages, "
        "n_rows = ingest_progress.n_rows + excluded.n_rows, updated_at = excluded.updated_at"),
        {"c": consumed.consumer, "m": consumed.member, "n": consumed.n_messages, "r": n_rows,
         "now": now})
