"""Watching a night to its end: live progress bars, failures raised, a deadline.

The verbs that run a night in the foreground (``alertbutler run``, ``night replay`` with or
without ``--into``) poll one :class:`~alertbutler.night.progress.NightProgress` until every
expected visit-detector has a status and is complete in the L1 database, showing
:class:`ProgressBars` meanwhile; each verb says what else must hold (``check``: its feed,
ingester and workers alive) and when its observatory is done (``fed``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from alertbutler.night.progress import NightProgress


class ProgressBars:
    """Rich progress bars named by ``rows`` (name -> (label, total)), or nothing."""

    def __init__(self, enabled: bool, rows: dict[str, tuple[str, int]], *,
                 width: int = 28, transient: bool = False) -> None:
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn(f"{{task.description:<{width}}}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                            TimeElapsedColumn(), transient=transient)
        self.tasks = {name: self.bar.add_task(label, total=total, note="")
                      for name, (label, total) in rows.items()}

    @classmethod
    def for_night(cls, enabled: bool, fed: tuple[str, int], n_vd: int, *, width: int = 28,
                  first: dict[str, tuple[str, int]] | None = None) -> ProgressBars:
        """The bars of a night: what the observatory ``fed`` (label, total), visit-detectors
        processed and in the L1 database; ``first``: rows above them."""
        return cls(enabled, {**(first or {}), "fed": fed,
                             "vd": ("visit-detectors processed", n_vd),
                             "l1": ("visit-detectors in L1 DB", n_vd)}, width=width)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if self.bar is None:
            yield
            return
        with self.bar:
            yield

    def update(self, name: str, completed: float, note: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.tasks[name], completed=completed, note=note)

    def show(self, progress: NightProgress, fed: int) -> None:
        """The night's rows from ``progress`` and the count the observatory ``fed``."""
        self.update("fed", fed)
        self.update("vd", progress.n_done, f"{progress.n_errors} errors")
        self.update("l1", len(progress.ingested_at), f"{progress.n_alerts} alerts")


def watch(progress: NightProgress, *, bars: ProgressBars, fed: Callable[[], int],
          check: Callable[[], None], finished: Callable[[], bool], timeout_s: float,
          what: str, interval_s: float = 0.2) -> None:
    """Poll ``progress`` until the observatory ``finished`` and the night is done; ``check``
    raises what has gone wrong (a feed, ingester or worker that failed); a
    :class:`TimeoutError` past ``timeout_s`` says how far the night got."""
    deadline = time.monotonic() + timeout_s
    while True:
        progress.poll()
        bars.show(progress, fed())
        check()
        if finished() and progress.done():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what} did not finish within {timeout_s:.0f} s: {progress.n_done} of "
                f"{len(progress.expected)} visit-detectors processed, "
                f"{len(progress.ingested_at)} ingested")
        time.sleep(interval_s)
