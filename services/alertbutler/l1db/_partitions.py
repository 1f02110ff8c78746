"""Time partitions of ``DiaSource`` and ``DiaForcedSource`` on PostgreSQL, made on demand.

Partition ``p`` of a table holds ``30 p <= midpointMjdTai < 30 (p + 1)`` (Rubin's Cassandra
APDB also uses 30-day time partitions). A writer asks for the partitions its rows fall in
before it opens its write transaction; missing ones are created in a short transaction of
their own, under a transaction-level advisory lock, so concurrent ingesters never race on the
same ``CREATE`` and no write transaction ever holds the parent's lock while waiting for
another. Attaching a partition locks the parent briefly, once per 30 days per table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from alertbutler.l1db.schema import PARTITIONED

#: Days of ``midpointMjdTai`` per partition.
PARTITION_DAYS = 30
#: Advisory lock key serializing partition creation (any fixed 64-bit number).
_LOCK_KEY = 0x4C31_6462_5061_7274  # "L1dbPart"


def partition_numbers(mjd: pa.Array | pa.ChunkedArray | np.ndarray) -> set[int]:
    """The partition numbers these times fall in."""
    values = mjd.to_numpy() if isinstance(mjd, pa.ChunkedArray | pa.Array) else mjd
    if not len(values):
        return set()
    return {int(p) for p in np.unique(np.floor(np.asarray(values) / PARTITION_DAYS))}


def partition_name(table: str, number: int) -> str:
    """``DiaSource_p2033`` (``_m`` for the never-expected negative MJDs)."""
    return f"{table}_{'p' if number >= 0 else 'm'}{abs(number)}"


def existing(conn: sa.Connection, table: str) -> set[int]:
    """Partition numbers the table has now, read from the catalog."""
    names = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        f"WHERE i.inhparent = '\"{table}\"'::regclass").scalars()
    found = set()
    prefix = f"{table}_"
    for name in names:
        tail = name[len(prefix):]
        if name.startswith(prefix) and tail[:1] in ("p", "m") and tail[1:].isdigit():
            found.add(int(tail[1:]) * (1 if tail[0] == "p" else -1))
    return found


def create(conn: sa.Connection, table: str, numbers: Iterable[int]) -> None:
    """Create partitions inside the caller's transaction (which holds the advisory lock)."""
    for number in sorted(numbers):
        lo, hi = number * PARTITION_DAYS, (number + 1) * PARTITION_DAYS
        conn.exec_driver_sql(
            f'CREATE TABLE IF NOT EXISTS "{partition_name(table, number)}" '
            f'PARTITION OF "{table}" FOR VALUES FROM ({lo}) TO ({hi})')


def lock(conn: sa.Connection) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")


class Partitions:
    """What partitions one process knows to exist, and making the missing ones.

    Partitions are never dropped by alertbutler, so a partition once seen stays known.
    """

    def __init__(self) -> None:
        self._known: dict[str, set[int]] = {t: set() for t in PARTITIONED}
        self._lock = threading.Lock()

    def ensure(self, engine: sa.Engine, needed: dict[str, set[int]]) -> None:
        with self._lock:
            missing = {t: n - self._known[t] for t, n in needed.items() if n - self._known[t]}
        if not missing:
            return
        made: dict[str, set[int]] = {}
        with engine.begin() as conn:
            lock(conn)  # held to commit: the next creator sees these partitions
            for table, numbers in missing.items():
                have = existing(conn, table)
                create(conn, table, numbers - have)
                made[table] = have | numbers
        with self._lock:  # only once committed
            for table, numbers in made.items():
                self._known[table] |= numbers
