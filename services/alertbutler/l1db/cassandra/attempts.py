"""The work-attempt ledger (:mod:`alertbutler.l1db.attempts`) on Cassandra.

Each update is a compare-and-set (a lightweight transaction on the item's row), retried until
it applies, so concurrent workers count every start exactly once, as the SQL upsert does.
The row's key is the item's (instrument, visit, detector), as in SQL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from alertbutler.l1db.cassandra.schema import ATTEMPT_TABLE
from alertbutler.visit_detector import VisitDetector

if TYPE_CHECKING:
    from alertbutler.l1db.attempts import Attempt
    from alertbutler.l1db.cassandra.db import CassandraL1db

_ERROR_CHARS = 2000
_COLUMNS = ("instrument", "visit", "detector", "attempts", "worker", "previous_worker",
            "started_at", "last_error", "finished_at")
_KEY = "instrument = ? AND visit = ? AND detector = ?"


def _key(vd: VisitDetector) -> tuple[str, int, int]:
    return vd.instrument, int(vd.visit), int(vd.detector)


class CassandraWorkAttempts:
    """``WorkAttempts`` on a :class:`CassandraL1db` (made by ``WorkAttempts(db)``)."""

    def __init__(self, db: CassandraL1db) -> None:
        self._db = db
        ks = f'"{db.keyspace}"'
        self._table = f"{ks}.visit_detector_attempt"
        # a keyspace made before the ledger was keyed by visit-detector lacks the table
        db._session.execute(ATTEMPT_TABLE.format(ks=ks))

    def _row(self, item: VisitDetector) -> dict[str, Any] | None:
        row = self._db._session.execute(self._db._prep(
            f"SELECT {', '.join(_COLUMNS)} FROM {self._table} WHERE {_KEY}"), _key(item)).one()
        if row is None:
            return None
        return dict(zip(_COLUMNS, row, strict=True))

    def begin(self, item: VisitDetector, worker: str) -> Attempt:
        """Record a start of ``item`` by ``worker``; its attempt number (1 for new work)."""
        from alertbutler.l1db.attempts import Attempt

        session, prep = self._db._session, self._db._prep
        while True:
            row = self._row(item)
            now = time.time()
            if row is None:
                number, previous, error = 1, None, None
                result = session.execute(prep(
                    f"INSERT INTO {self._table} (instrument, visit, detector, attempts, worker, "
                    "started_at) VALUES (?, ?, ?, 1, ?, ?) IF NOT EXISTS"),
                    (*_key(item), worker, now))
            else:
                unfinished = row["finished_at"] is None
                number = row["attempts"] + 1 if unfinished else 1
                previous = row["worker"] if unfinished else None
                error = row["last_error"] if unfinished else None
                result = session.execute(prep(
                    f"UPDATE {self._table} SET attempts = ?, worker = ?, previous_worker = ?, "
                    f"started_at = ?, last_error = ?, finished_at = null WHERE {_KEY} "
                    "IF attempts = ? AND worker = ?"),
                    (number, worker, previous, now, error, *_key(item), row["attempts"],
                     row["worker"]))
            if result.was_applied:
                return Attempt(item=item, number=number, worker=worker,
                               previous_worker=previous, last_error=error)

    def _cas(self, attempt: Attempt, assignment: str, values: tuple[Any, ...],
             extra: str = "", extra_values: tuple[Any, ...] = ()) -> None:
        row = self._row(attempt.item)
        if row is None or row["worker"] != attempt.worker or row["finished_at"] is not None:
            return
        self._db._session.execute(self._db._prep(
            f"UPDATE {self._table} SET {assignment} WHERE {_KEY} IF worker = ? "
            f"AND finished_at = null{extra}"),
            (*values, *_key(attempt.item), attempt.worker, *extra_values))

    def failed(self, attempt: Attempt, error: str) -> None:
        self._cas(attempt, "last_error = ?", (error[-_ERROR_CHARS:],))

    def release(self, attempt: Attempt) -> None:
        self._cas(attempt, "attempts = ?", (attempt.number - 1,), " AND attempts = ?",
                  (attempt.number,))

    def finished(self, attempt: Attempt) -> None:
        self._cas(attempt, "finished_at = ?", (time.time(),))

    def rows(self, *, unfinished: bool = False) -> list[dict[str, object]]:
        rows = [dict(zip(_COLUMNS, r, strict=True)) for r in self._db._session.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM {self._table}", timeout=600)]
        if unfinished:
            rows = [r for r in rows if r["finished_at"] is None]
        return sorted(rows, key=lambda r: (-float(r["started_at"] or 0), str(r["instrument"]),
                                           int(r["visit"]), int(r["detector"])))

    def get(self, item: VisitDetector) -> dict[str, object] | None:
        return self._row(item)
