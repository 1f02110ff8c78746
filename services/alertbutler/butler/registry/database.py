"""Engines, connections, transactions and retries for SQLite and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (no fsync per commit; a power cut may
lose the last commits but never corrupts), a busy timeout, and write transactions opened with
``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of deadlocking on an
upgrade. Any "database is locked" that still escapes is retried by :meth:`Database.retry`.
PostgreSQL sessions run with ``synchronous_commit = off``, the same trade.
Each :class:`Database` keeps one connection per thread (the hot path reuses prepared
statements on it); a forked child gets fresh connections.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

T = TypeVar("T")

#: how long one SQLite statement waits for a lock before raising "database is locked"
BUSY_TIMEOUT_MS = 30_000
RETRIES = 8


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool
                                  if ":memory:" not in url else sa.pool.StaticPool)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # straight to the DBAPI connection: a put pays for this on every transaction
            conn.connection.dbapi_connection.execute(
                "BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2)

    @event.listens_for(engine, "connect")
    def _on_pg_connect(dbapi_conn, _record):
        # The same trade as SQLite's synchronous=NORMAL: a commit returns before its WAL
        # record is flushed, so a server crash may lose the last few commits (never corrupts
        # and never mixes halves of a transaction). ~8 ms -> ~2 ms per put here.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
        dbapi_conn.commit()

    return engine


def is_transient(exc: BaseException) -> bool:
    """Locked/busy SQLite, or a PostgreSQL serialization failure/deadlock."""
    text = str(exc).lower()
    return ("database is locked" in text or "database is busy" in text
            or "deadlock detected" in text or "could not serialize" in text)


class Database:
    """One engine plus one connection per thread (and per process after a fork).

    SQLite connections may not cross threads, and a transaction belongs to one thread, so the
    connection, the nesting depth and the raw cursor are thread-local: a butler can be used
    from worker threads (``asyncio.to_thread``) without sharing a connection.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url)
        self._local = threading.local()
        self._pid = os.getpid()
        self._transient = (sa.exc.DBAPIError, self.engine.dialect.loaded_dbapi.OperationalError)

    def _state(self) -> threading.local:
        if self._pid != os.getpid():  # forked: never touch the parent's connections
            self.engine.dispose(close=False)
            self._local = threading.local()
            self._pid = os.getpid()
        local = self._local
        if not hasattr(local, "conn"):
            local.conn = None
            local.depth = 0
            local.cursor = local.cursor_conn = None
        return local

    @property
    def conn(self) -> sa.Connection:
        local = self._state()
        if local.conn is None:
            local.conn = self.engine.connect()
        return local.conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction (nested calls join the outer one)."""
        local = self._state()
        conn = self.conn
        if local.depth:
            local.depth += 1
            try:
                yield conn
            finally:
                local.depth -= 1
            return
        if conn.in_transaction():
            conn.commit()  # end an implicit read transaction before taking the write lock
        conn.info["write"] = True
        local.depth = 1
        try:
            with conn.begin():
                yield conn
        finally:
            local.depth = 0
            conn.info["write"] = False

    @property
    def in_transaction(self) -> bool:
        return self._state().depth > 0

    def raw_cursor(self) -> Any:
        """SQLite only: a DBAPI cursor on this thread's connection, for the few hot
        statements (about 3x cheaper than going through SQLAlchemy's execution layer). It
        shares the connection, so it joins any transaction opened by :meth:`transaction`."""
        local = self._state()
        dbapi = self.conn.connection.dbapi_connection
        if dbapi is None:
            raise RuntimeError("the registry's database connection is closed")
        if local.cursor is None or local.cursor_conn is not dbapi:
            local.cursor = dbapi.cursor()
            local.cursor_conn = dbapi
        return local.cursor

    def read(self) -> sa.Connection:
        """The connection for reads; outside a write transaction each read ends its own."""
        return self.conn

    def end_read(self) -> None:
        local = self._state()
        if not local.depth and local.conn is not None and local.conn.in_transaction():
            local.conn.commit()

    def retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which opens its own transaction) again on transient lock errors
        (wrapped by SQLAlchemy or raised by the raw SQLite cursor)."""
        for attempt in range(RETRIES):
            try:
                return fn()
            except self._transient as exc:
                if attempt == RETRIES - 1 or not is_transient(exc):
                    raise
                self.end_read_after_error()
                time.sleep(0.01 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    def retry_race(self, fn: Callable[[], T]) -> T:
        """:meth:`retry`, and again (at most 3 runs) when ``fn``'s transaction lost a race: a
        concurrent writer inserted the same dimension record between its check and its
        insert. The new transaction sees that record (identical: skipped)."""
        for attempt in range(3):
            try:
                return self.retry(fn)
            except sa.exc.IntegrityError:
                self.end_read_after_error()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def end_read_after_error(self) -> None:
        local = self._state()
        if local.conn is not None and local.conn.in_transaction():
            local.conn.rollback()

    def close(self) -> None:
        local = self._state()
        if local.conn is not None:
            local.conn.close()
        local.conn = local.cursor = local.cursor_conn = None
        self.engine.dispose()
