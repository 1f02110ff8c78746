"""Named crash points: a test makes a process SIGKILL itself at an exact place in the code.

Crash tests must not depend on timing ("kill it after about two seconds" strikes somewhere
different on a busy machine), so the code marks the places where a crash matters with
:func:`crash_point` and a test names one in ``$ALERTBUTLER_CRASH_AT``: ``POINT`` kills the
process the first time it gets there, ``POINT:N`` the N-th time (to strike mid-stream, after
some work was done). The kill is a real SIGKILL: no cleanup, no flush, no ``atexit``, as the
OOM killer or a lost node would do it. Unset, as in production, a point costs one lookup.
"""

from __future__ import annotations

import os
import signal
import sys

from alertbutler.config import CRASH_ENV

_arrivals: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if ``$ALERTBUTLER_CRASH_AT`` names this point (and count)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    try:
        n = int(count or 1)
    except ValueError:
        raise ValueError(f"{CRASH_ENV}={wanted!r}: expected POINT or POINT:N") from None
    _arrivals[name] = _arrivals.get(name, 0) + 1
    if _arrivals[name] >= n:
        # one line for the test to check that the kill struck here, not elsewhere
        sys.stderr.write(f"crash point {name} reached ({_arrivals[name]}): SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
