"""Crash points: the named point, at the named arrival, kills the process with SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alertbutler.config import load_config
from alertbutler.faults import CRASH_ENV, POINTS, crash_mark, crash_point, parse_crash_at

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


def test_a_mark_makes_the_crash_strike_once_for_all_processes(tmp_path: Path) -> None:
    mark = tmp_path / "mark.json"
    done = _run(f"here:2@{mark}")
    assert done.returncode == -signal.SIGKILL and done.stdout.split() == ["1", "2"]
    assert crash_mark(mark) == {"point": "here", "count": 2, "pid": crash_mark(mark)["pid"]}
    # armed again with the same mark (a restarted replica): it struck already, runs on
    assert _run(f"here:2@{mark}").returncode == 0
    assert crash_mark(tmp_path / "never.json") is None


def test_a_mark_that_is_a_link_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "mark.json").symlink_to(target)
    assert _run(f"here@{tmp_path / 'mark.json'}").returncode == 0
    assert not target.exists()


@pytest.mark.parametrize("value", ["here:0", "here:x", "here:٣"])
def test_counts_are_whole_ascii_numbers_from_one(value: str) -> None:
    with pytest.raises(ValueError, match=CRASH_ENV):
        parse_crash_at(value)


def test_every_listed_point_is_placed_in_the_code() -> None:
    root = Path(__file__).resolve().parents[2] / "services" / "alertbutler"
    text = "\n".join(p.read_text() for p in root.rglob("*.py") if p.name != "faults.py")
    placed = set(re.findall(r'crash_point\("([a-z0-9.-]+)"\)', text)) | {
        m for m in re.findall(r'= "([a-z0-9.-]+)"', text) if m in POINTS}
    assert set(POINTS) <= placed, set(POINTS) - placed
