"""How often each prompt work item was started: bounded retries that survive a crash.

A worker that raises can count its own retries, but a worker that dies (SIGKILL, out of
memory, its own deadline watchdog) forgets them, and the group hands the item to the next
worker, which dies too: without a durable count such an item is redelivered forever and
holds its partition. So every worker records the start of an attempt here before processing,
in the deployment's one shared database, and gives up (dead letter, with the reason) once an
item has been started ``max_attempts`` times without finishing.

An item that finished and is delivered again (a fan-out that crashed before committing
re-sends its event's items) starts again from attempt 1: it is new work, not a retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from alertbutler.l1db._engine import WRITE_OPTION
from alertbutler.l1db.db import L1db
from alertbutler.l1db.schema import build_metadata

#: longest error text kept per item (the dead letter quotes it)
_ERROR_CHARS = 2000

_BEGIN = """
INSERT INTO work_attempt (item, attempts, worker, previous_worker, started_at, last_error,
                          finished_at)
VALUES (:item, 1, :worker, NULL, :now, NULL, NULL)
ON CONFLICT (item) DO UPDATE SET
    attempts = CASE WHEN work_attempt.finished_at IS NULL THEN work_attempt.attempts + 1
                    ELSE 1 END,
    last_error = CASE WHEN work_attempt.finished_at IS NULL THEN work_attempt.last_error
                      ELSE NULL END,
    previous_worker = work_attempt.worker,
    worker = excluded.worker,
    started_at = excluded.started_at,
    finished_at = NULL
RETURNING attempts, previous_worker, last_error
"""


@dataclass(frozen=True)
class Attempt:
    """One start of a work item: its number, and what happened to the one before."""

    item: str
    number: int
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


class WorkAttempts:
    """The ``work_attempt`` table of an L1 database (created when missing: schema 1.0 had
    none). Every call is its own short transaction."""

    def __init__(self, db: L1db) -> None:
        self._engine = db._engine  # same package: the ledger shares the database's pool
        table = build_metadata().tables["work_attempt"]
        try:
            table.create(self._engine, checkfirst=True)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            # Another worker created it between the check and the CREATE: fine if it exists.
            if not sa.inspect(self._engine).has_table("work_attempt"):
                raise

    def _write(self, sql: str, **params: object) -> list[sa.Row]:
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                result = conn.execute(sa.text(sql), params)
                rows = result.all() if result.returns_rows else []
            return rows

    def begin(self, item: str, worker: str) -> Attempt:
        """Record a start of ``item`` by ``worker``; its attempt number (1 for new work)."""
        (number, previous, error), = self._write(_BEGIN, item=item, worker=worker,
                                                 now=time.time())
        return Attempt(item=item, number=int(number), previous_worker=previous,
                       last_error=error)

    def failed(self, item: str, error: str) -> None:
        """Keep why an attempt failed; the next attempt, or the dead letter, quotes it."""
        self._write("UPDATE work_attempt SET last_error = :e WHERE item = :i",
                    e=error[-_ERROR_CHARS:], i=item)

    def finished(self, item: str) -> None:
        """The item has a result (alerts, a recorded bad input, or a dead letter)."""
        self._write("UPDATE work_attempt SET finished_at = :t WHERE item = :i",
                    t=time.time(), i=item)

    def rows(self, *, unfinished: bool = False) -> list[dict[str, object]]:
        """Every item's row, most recently started first (``unfinished``: only those in
        flight or abandoned mid-way), for ``alertbutler l1db attempts``."""
        where = " WHERE finished_at IS NULL" if unfinished else ""
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                f"SELECT * FROM work_attempt{where} ORDER BY started_at DESC, item")).mappings()]

    def get(self, item: str) -> dict[str, object] | None:
        """The item's row, for operators and tests."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM work_attempt WHERE item = :i"),
                               {"i": item}).mappings().first()
        return dict(row) if row is not None else None
