"""A real worker process whose processor misbehaves on one detector, for the retry tests.

Run as ``python poison_worker.py CONFIG.toml JOURNAL POISON_DETECTOR BEHAVIOUR``: it joins
the work topic's group like ``alertbutler worker`` (SIGTERM stops it), processes items
instantly, and on the poison detector: ``raise``s, ``die``s at once (``os._exit``, as SIGKILL
would leave it), ``hang``s, or has an ``outage`` (a database error on its first two starts).
Every start, success and abandon is appended to the journal file, one line each.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from alertbutler.config import load_config
from alertbutler.prompt.events import WorkItem
from alertbutler.prompt.service_support import stop_on_signals
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.prompt.worker import Worker


class PoisonProcessor:
    def __init__(self, journal: Path, poison: int, behaviour: str) -> None:
        self.journal, self.poison, self.behaviour = journal, poison, behaviour
        self.starts = 0

    def _note(self, what: str, item: WorkItem) -> None:
        with self.journal.open("a") as f:
            f.write(f"{what} {item.detector}\n")

    def process(self, item: WorkItem) -> VisitDetectorStatus:
        self._note("start", item)
        if item.detector == self.poison:
            self.starts += 1
            if self.behaviour == "outage" and self.starts <= 2:
                raise sa.exc.OperationalError("SELECT 1", {}, ConnectionError("server gone"))
            if self.behaviour == "raise":
                raise RuntimeError(f"poisoned detector {item.detector}")
            if self.behaviour == "die":
                os._exit(137)
            if self.behaviour == "hang":
                time.sleep(3600)
        self._note("done", item)
        return VisitDetectorStatus(instrument=item.instrument, group_id=item.group_id,
                                   visit=item.visit, detector=item.detector, ok=True,
                                   finished_at=time.time())

    def abandon(self, item: WorkItem) -> None:
        self._note("abandon", item)


def main() -> int:
    config_file, journal, poison, behaviour = sys.argv[1:5]
    config = load_config(config_file, env={})
    worker = Worker(config, config.kafka.bootstrap_servers,
                    PoisonProcessor(Path(journal), int(poison), behaviour))
    worker.run(stop_on_signals(), idle_exit_s=4.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
