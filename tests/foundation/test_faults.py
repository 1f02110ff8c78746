"""Crash points: the named point, at the named arrival, kills the process with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from alertbutler.config import CRASH_ENV, load_config
from alertbutler.faults import crash_point

_SCRIPT = """
from alertbutler.faults import crash_point
for i in range(1, 6):
    crash_point("other")
    print(i, flush=True)
    crash_point("here")
"""


def _run(crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60)


def test_kills_at_the_named_arrival() -> None:
    done = _run("here:3")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2", "3"]
    assert "crash point here reached (3): SIGKILL" in done.stderr


def test_unset_or_other_point_runs_through() -> None:
    assert _run(None).stdout.split() == ["1", "2", "3", "4", "5"]
    assert _run("elsewhere").returncode == 0


def test_bad_count_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "here:soon")
    with pytest.raises(ValueError, match="POINT or POINT:N"):
        crash_point("here")


def test_not_a_configuration_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "here:3")
    load_config()  # no "expected ALERTBUTLER_<SECTION>__<KEY>" error
