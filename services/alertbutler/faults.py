"""Named crash points: a test makes a process SIGKILL itself at an exact place in the code.

Crash tests must not depend on timing ("kill it after about two seconds" strikes somewhere
different on a busy machine), so the code marks the places where a crash matters with
:func:`crash_point` and a test arms one in ``$CRASH_AT`` (a test's variable, not an
``ALERTBUTLER_*`` one: those are configuration and nothing else) for the processes it starts:

``POINT``
    kill the process the first time it gets there;
``POINT:N``
    the N-th time (to strike mid-stream, after some work was done);
``POINT[:N]@MARK``
    the same, once for all processes: before dying the process creates the file ``MARK``
    (exclusively, never through a link) holding the point, the count and its pid; a process
    that finds the file already there does not die. Armed in every replica of a deployment,
    the fault kills exactly one process once, and the replica restarted in its place runs
    on. The file is the test's proof that the kill struck where it was meant to: a test whose
    kill did not land fails instead of passing by luck.

The kill is a real SIGKILL: no cleanup, no flush, no ``atexit``, as the OOM killer or a lost
node would do it. Unset, as in production, a point costs one lookup. :data:`POINTS` lists
the points placed in the code and what has happened when a process dies there.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

#: Every crash point in the code, and where a process that dies there stands.
POINTS: dict[str, str] = {
    "prompt.alerts-acked": "worker: the item's alerts and end markers are acknowledged by "
                           "Kafka; outputs, status, ledger and the work item's commit not done",
    "prompt.before-commit": "worker: status published and the attempt recorded finished; the "
                            "work item's offset not committed",
    "ingest.after-dead-letters": "ingester: the batch's dead letters are acknowledged; its "
                                 "database transaction not begun",
    "l1db.store.mid-transaction": "L1 database: a store's rows are written inside its open "
                                  "transaction; markers, offsets and the commit not done",
    "ingest.after-db-commit": "ingester: rows, markers and offsets committed to the L1 "
                              "database; the Kafka offset commit not done",
    "fanout.after-produce": "fan-out: a nextVisit's work items are acknowledged; the "
                            "nextVisit's offset not committed",
    "filter.after-produce-before-commit": "filter service: filtered alerts produced; the "
                                          "input offsets not committed",
    "subscribe.backfill.at-seam": "subscribe: the history was read (and, with a group, "
                                  "committed) up to the seam; the live part not opened",
    "subscribe.backfill.at-archive-seam": "subscribe: the night archives were served (and, "
                                          "with a group, their end offsets committed); the "
                                          "topic's history not read",
}

#: the variable that arms a crash point (not ALERTBUTLER_*: those are configuration only)
CRASH_ENV = "CRASH_AT"

_arrivals: dict[str, int] = {}
_lock = threading.Lock()


def parse_crash_at(value: str) -> tuple[str, int, str | None]:
    """``POINT[:N][@MARK]`` -> (point, n, mark or None); a clear error for anything else."""
    spec, _, mark = value.partition("@")
    point, _, count = spec.partition(":")
    if not count:
        return point, 1, mark or None
    if not count.isascii() or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{CRASH_ENV}={value!r}: expected POINT or POINT:N (N >= 1), "
                         "optionally followed by @MARK-FILE")
    return point, int(count), mark or None


def crash_point(name: str) -> None:
    """SIGKILL this process if ``$CRASH_AT`` names this point (and count)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, n, mark = parse_crash_at(wanted)
    if point != name:
        return
    with _lock:
        _arrivals[name] = arrived = _arrivals.get(name, 0) + 1
        if arrived != n or (mark is not None and not _claim(Path(mark), name, arrived)):
            return
        # one line for the test to check that the kill struck here, not elsewhere
        sys.stderr.write(f"crash point {name} reached ({arrived}): SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _claim(mark: Path, point: str, count: int) -> bool:
    """Create the mark file; False when another process struck first (or it is a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(mark, flags, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"point": point, "count": count, "pid": os.getpid()}, fh)
    return True


def crash_mark(path: Path) -> dict[str, object] | None:
    """What a ``@MARK`` crash left (point, count, pid), or None if it never struck."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
