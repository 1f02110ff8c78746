"""PostgreSQL query results as Arrow through the ADBC PostgreSQL driver.

The driver (libpq, C++) reads a result with binary ``COPY`` and builds the Arrow columns
itself, so the ~10^5 rows of a visit's history never pass through Python one by one (psycopg's
``COPY`` iterator hands over one Python bytes object per row, which is what a busy machine
slows down). Connections are autocommit, so an idle pooled connection holds no lock (a
partition being attached needs the parent table's lock), and each is used by one thread at a
time.
"""

from __future__ import annotations

import threading

import pyarrow as pa
from sqlalchemy.engine import URL


class ArrowReader:
    """A small pool of ADBC connections to one PostgreSQL database."""

    def __init__(self, url: URL) -> None:
        # libpq takes the URL as SQLAlchemy writes it, without the "+psycopg" driver name
        self._uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle: list = []
        self._lock = threading.Lock()

    def query(self, sql: str) -> pa.Table:
        """Run one SELECT (no parameters: the caller formats only numbers into it)."""
        from adbc_driver_postgresql import dbapi

        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = dbapi.connect(self._uri, autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                table = cursor.fetch_arrow_table()
        except BaseException:
            conn.close()  # it may be broken: never hand it out again
            raise
        with self._lock:
            self._idle.append(conn)
        return table

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
