"""Engines for the two backends, set up for many small write transactions.

SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (a committed
transaction survives the process being killed; only an OS crash may lose the last few), a
busy timeout, and ``BEGIN IMMEDIATE`` on writing connections so that a writer takes the write
lock up front instead of failing half-way with "database is locked". PostgreSQL: psycopg 3,
whose ``COPY`` the bulk writer uses.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

#: Execution option marking a connection that will write (SQLite then takes the lock first).
WRITE_OPTION = "l1db_write"


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; anything else is kept."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported L1 database URL {parsed.render_as_string()!r}: "
                     "use sqlite:///PATH or postgresql://...")
