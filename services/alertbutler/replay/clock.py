"""Time in a replay: the pacer that keeps a recorded schedule, and the replayed clock.

A recorded night is a timeline: nextVisit events and raw arrivals at recorded times. A replay
at ``--speed X`` re-issues each one ``(t - t0) / X`` seconds after the replay began; the
``Pacer`` sleeps until each due time (measured on the monotonic clock, so a wall-clock step
does not disturb it) and reports when each one actually went out. ``--speed 0`` means no
waiting: as fast as the consumer takes them.

The pipeline must not read the wall clock during a replay, or two replays would stamp
different processing times into their alerts. ``ReplayClock`` is the time the pipeline sees:
the recorded time of the event being handled, so a replay reproduces the recorded night's
clock readings exactly, whatever its speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Wait for due times on a schedule scaled by ``speed`` (0 or None: never wait)."""

    def __init__(self, speed: float | None = 1.0, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 slack_s: float = 0.002) -> None:
        if speed is not None and speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.speed = speed or 0.0
        self._monotonic = monotonic
        self._sleep = sleep
        self._slack = slack_s
        self._start: float | None = None
        self.behind_s = 0.0  # the most the schedule ran late (the consumer was slower)

    def start(self) -> float:
        self._start = self._monotonic()
        return self._start

    @property
    def started(self) -> bool:
        return self._start is not None

    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return self._monotonic() - self._start

    def due(self, offset_s: float) -> float:
        """Seconds after the start at which a recorded offset is due."""
        return 0.0 if self.speed == 0 else offset_s / self.speed

    def wait_until(self, offset_s: float) -> float:
        """Sleep until the recorded ``offset_s`` is due; returns the actual elapsed time.

        Sleeps only when ahead by more than ``slack_s``, so a fast schedule (10,000 messages
        per second) costs one clock read per message, not one sleep.
        """
        if self._start is None:
            self.start()
        due = self.due(offset_s)
        now = self.elapsed()
        if self.speed == 0:
            return now
        while due - now > self._slack:
            self._sleep(min(due - now, 0.5))
            now = self.elapsed()
        self.behind_s = max(self.behind_s, now - due)
        return now


class RatePacer(Pacer):
    """``rate`` messages per second, evenly spaced (message ``i`` is due at ``i / rate``)."""

    def __init__(self, rate: float, **kwargs: object) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 messages per second, got {rate}")
        super().__init__(1.0, **kwargs)  # type: ignore[arg-type]
        self.rate = rate

    def wait_for(self, index: int) -> float:
        return self.wait_until(index / self.rate)


class ReplayClock:
    """The time the pipeline sees during a replay: the recorded time of the current event.

    ``set(t)`` is called by the scheduler (or a worker, per work item) with a recorded time
    (Unix seconds); ``now()`` returns it. Before any ``set`` it returns ``start``. Reads and
    writes are thread-safe; a worker thread may pin its own time with ``for_thread``.
    """

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._local = threading.local()

    def set(self, t: float) -> None:
        with self._lock:
            self._now = float(t)

    def for_thread(self, t: float | None) -> None:
        """Pin this thread's clock to ``t`` (None: follow the shared time again)."""
        self._local.t = t

    def now(self) -> float:
        pinned = getattr(self._local, "t", None)
        if pinned is not None:
            return float(pinned)
        with self._lock:
            return self._now

    __call__ = now
