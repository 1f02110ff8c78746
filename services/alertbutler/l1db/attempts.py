"""How often each prompt work item was started: bounded retries that survive a crash.

A worker that raises can count its own retries, but a worker that dies (SIGKILL, out of
memory, its own deadline watchdog) forgets them, and the group hands the item to the next
worker, which dies too: without a durable count such an item is redelivered forever and
holds its partition. So every worker records the start of an attempt here before processing,
in the deployment's one shared database, and gives up (dead letter, with the reason) once an
item has been started ``max_attempts`` times without finishing.

An item that finished and is delivered again (a fan-out that crashed before committing
re-sends its event's items) starts again from attempt 1: it is new work, not a retry.

The ledger is keyed by the item's :class:`~alertbutler.visit_detector.VisitDetector`
(instrument, visit, detector), table ``visit_detector_attempt``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import sqlalchemy as sa

from alertbutler.l1db._engine import WRITE_OPTION
from alertbutler.l1db._errors import L1dbError
from alertbutler.l1db.db import L1db
from alertbutler.l1db.schema import build_metadata
from alertbutler.visit_detector import VisitDetector

#: longest error text kept per item (the dead letter quotes it)
_ERROR_CHARS = 2000

_TABLE = "visit_detector_attempt"
_KEY = "instrument = :instrument AND visit = :visit AND detector = :detector"

_BEGIN = f"""
INSERT INTO {_TABLE} (instrument, visit, detector, attempts, worker, previous_worker,
                      started_at, last_error, finished_at)
VALUES (:instrument, :visit, :detector, 1, :worker, NULL, :now, NULL, NULL)
ON CONFLICT (instrument, visit, detector) DO UPDATE SET
    attempts = CASE WHEN {_TABLE}.finished_at IS NULL THEN {_TABLE}.attempts + 1
                    ELSE 1 END,
    last_error = CASE WHEN {_TABLE}.finished_at IS NULL THEN {_TABLE}.last_error
                      ELSE NULL END,
    previous_worker = CASE WHEN {_TABLE}.finished_at IS NULL THEN {_TABLE}.worker
                           ELSE NULL END,
    worker = excluded.worker,
    started_at = excluded.started_at,
    finished_at = NULL
RETURNING attempts, previous_worker, last_error
"""


@dataclass(frozen=True)
class Attempt:
    """One start of a work item: its number, and what happened to the one before."""

    item: VisitDetector
    number: int
    #: the worker making this attempt
    worker: str
    #: the worker of the previous unfinished attempt (None on a first attempt)
    previous_worker: str | None
    #: the error the previous attempts recorded, if any (None when a worker just died)
    last_error: str | None

    def give_up_reason(self) -> str:
        """Why the item is abandoned, for the dead letter and the status."""
        tries = self.number - 1
        if self.last_error:
            return f"gave up after {tries} attempts; last error: {self.last_error}"
        return (f"gave up after {tries} attempts: each ended without a result (the worker "
                f"died or passed its deadline; last on {self.previous_worker})")


def _key(vd: VisitDetector) -> dict[str, object]:
    return {"instrument": vd.instrument, "visit": int(vd.visit), "detector": int(vd.detector)}


class WorkAttempts:
    """The ``visit_detector_attempt`` table of an L1 database. Every call is its own short
    transaction, and every update names the worker, so a worker that lost an item to another
    (a rebalance) cannot finish or release the other's attempt.

    ``create``: add the table when it is missing; a read-only caller passes False and gets
    :class:`L1dbError` instead.
    """

    def __new__(cls, db: L1db, *, create: bool = True) -> WorkAttempts:
        if db.backend == "cassandra":  # the same ledger with compare-and-set updates
            from alertbutler.l1db.cassandra.attempts import CassandraWorkAttempts

            return CassandraWorkAttempts(db)  # type: ignore[arg-type, return-value]
        return super().__new__(cls)

    def __init__(self, db: L1db, *, create: bool = True) -> None:
        self._engine = db._engine  # same package: the ledger shares the database's pool
        if db.backend == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise L1dbError(f"the work-attempt ledger needs SQLite 3.35 or later (UPSERT ... "
                            f"RETURNING); this Python has {sqlite3.sqlite_version}: use "
                            "PostgreSQL or a newer Python build")
        if sa.inspect(self._engine).has_table(_TABLE):
            return
        if not create:
            raise L1dbError(f"{db.url} has no {_TABLE} table yet (schema "
                            f"{db.schema_version}): no worker has run against it")
        table = build_metadata().tables[_TABLE]
        try:
            with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                with conn.begin():
                    table.create(conn, checkfirst=True)
        except sa.exc.DBAPIError:
            # Another worker created it between the check and the CREATE: fine if it exists.
            if not sa.inspect(self._engine).has_table(_TABLE):
                raise

    def _write(self, sql: str, **params: object) -> list[sa.Row]:
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                result = conn.execute(sa.text(sql), params)
                rows = list(result.all()) if result.returns_rows else []
            return rows

    def begin(self, item: VisitDetector, worker: str) -> Attempt:
        """Record a start of ``item`` by ``worker``; its attempt number (1 for new work)."""
        (number, previous, error), = self._write(_BEGIN, **_key(item), worker=worker,
                                                 now=time.time())
        return Attempt(item=item, number=int(number), worker=worker,
                       previous_worker=previous, last_error=error)

    def failed(self, attempt: Attempt, error: str) -> None:
        """Keep why an attempt failed; the next attempt, or the dead letter, quotes it."""
        self._write(f"UPDATE {_TABLE} SET last_error = :e WHERE {_KEY} AND worker = :w "
                    "AND finished_at IS NULL", e=error[-_ERROR_CHARS:], **_key(attempt.item),
                    w=attempt.worker)

    def release(self, attempt: Attempt) -> None:
        """Take an attempt back: the item is handed back unprocessed (the worker is being
        stopped, or the database or broker failed), which says nothing about the item."""
        self._write(f"UPDATE {_TABLE} SET attempts = :n - 1 WHERE {_KEY} AND "
                    "worker = :w AND attempts = :n AND finished_at IS NULL",
                    **_key(attempt.item), w=attempt.worker, n=attempt.number)

    def finished(self, attempt: Attempt) -> None:
        """The item has a result (alerts, a recorded bad input, or a dead letter)."""
        self._write(f"UPDATE {_TABLE} SET finished_at = :t WHERE {_KEY} AND worker = :w "
                    "AND finished_at IS NULL", t=time.time(), **_key(attempt.item),
                    w=attempt.worker)

    def rows(self, *, unfinished: bool = False) -> list[dict[str, object]]:
        """Every item's row, most recently started first (``unfinished``: only those in
        flight or abandoned mid-way), for ``alertbutler l1db attempts``."""
        where = " WHERE finished_at IS NULL" if unfinished else ""
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                f"SELECT * FROM {_TABLE}{where} ORDER BY started_at DESC, instrument, visit, "
                "detector")).mappings()]

    def get(self, item: VisitDetector) -> dict[str, object] | None:
        """The item's row, for operators and tests."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.text(f"SELECT * FROM {_TABLE} WHERE {_KEY}"),
                               _key(item)).mappings().first()
        return dict(row) if row is not None else None
