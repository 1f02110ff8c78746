"""Raw arrival: where a raw lands, how the camera side delivers it, how a worker waits for it.

A raw lands at ``<landing>/<instrument>/<groupId>/<detector>.fits``, the layout of Rubin's
raw buckets (group, then detector). Delivery writes a temporary name and renames it, so a
worker polling the directory never sees half a file; the rename's time is the arrival time
the latency figures start from. Names come from the event, so they are checked first: an
event cannot point a worker outside the landing directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from alertbutler.prompt.errors import RawTimeoutError
from alertbutler.prompt.events import safe_name


def raw_path(landing: Path, instrument: str, group_id: str, detector: int) -> Path:
    """The landing path of one raw; unsafe names raise ``BadEventError``."""
    return (landing / safe_name(instrument, "instrument") / safe_name(group_id, "groupId")
            / f"{int(detector)}.fits")


def land_raw(landing: Path, instrument: str, group_id: str, detector: int,
             write: Callable[[Path], object]) -> tuple[Path, float]:
    """Land one raw the camera side's way: ``write`` fills a hidden temporary name beside
    the target, which is then renamed into place (a worker never sees half a file). Returns
    the path and the arrival time (the file's modification time at the rename)."""
    target = raw_path(landing, instrument, group_id, detector)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, os.stat(target).st_mtime


def deliver_raw(source: Path, landing: Path, instrument: str, group_id: str,
                detector: int) -> tuple[Path, float]:
    """Copy a raw file into the landing area atomically; return its path and arrival time."""
    return land_raw(landing, instrument, group_id, detector,
                    lambda tmp: shutil.copyfile(source, tmp))


def wait_for_raw(path: Path, *, timeout: float, label: str, poll_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until ``path`` exists; return its arrival time (mtime, wall clock).

    Raises ``RawTimeoutError`` after ``timeout`` seconds of waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            pass
        if time.monotonic() >= deadline:
            raise RawTimeoutError(f"{label}: raw did not arrive within {timeout:g} s "
                                  f"(expected at {path})")
        sleep(poll_s)
