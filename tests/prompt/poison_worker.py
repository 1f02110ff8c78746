"""A real worker process whose processor misbehaves on one detector, for the retry tests.

Run as ``python poison_worker.py CONFIG.toml JOURNAL POISON_DETECTOR BEHAVIOUR``: it joins
the work topic's group like ``alertbutler worker`` (SIGTERM stops it), processes items
instantly, and on the poison detector: ``raise``s, ``die``s at once (``os._exit``, as SIGKILL
would leave it), ``hang``s, or has an ``outage`` (a database error on its first two starts).
Every start, success and abandon is appended to the journal file, one line each.

Behaviour ``publish`` publishes for real, through the publish datastore as the pipeline
does: an item's alerts (fake ones, deterministic per visit-detector) with their end
markers, and for ``abandon`` an empty batch with its markers; it dies at its first start on
the poison detector only (the journal remembers starts across processes).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

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


class PublishingProcessor(PoisonProcessor):
    """Publishes through a butler with the publish datastore, in a local repo of its own
    process (``alertbutler up`` names its workers after their pid)."""

    N_ALERTS = 12

    def __init__(self, journal: Path, poison: int, config: Any) -> None:
        super().__init__(journal, poison, "publish")
        from alertbutler.alerts.publish_datastore import PublishDatastore
        from alertbutler.butler import Butler
        from alertbutler.prompt.publishing import ALERT_DATASET, ALERT_RUN

        root = journal.parent / f"local-{os.getpid()}"
        Butler.create(root).close()
        self.butler = Butler(root, run=ALERT_RUN, datastore=PublishDatastore(
            bootstrap=config.kafka.bootstrap_servers, topic_template=config.kafka.alert_topic))
        self.butler.register_dataset_type(ALERT_DATASET, ["instrument", "visit", "detector"],
                                          "AlertBatch")
        self.dataset = ALERT_DATASET

    def _publish(self, item: WorkItem, alerts: list[dict[str, Any]]) -> None:
        self.butler.put(alerts, self.dataset, instrument=item.instrument, visit=item.visit,
                        detector=item.detector)

    def process(self, item: WorkItem) -> VisitDetectorStatus:
        from alertbutler.alerts.fake import fake_alerts

        seen = self.journal.exists() and f"start {item.detector}\n" in self.journal.read_text()
        self._note("start", item)
        if item.detector == self.poison and not seen:
            os._exit(137)
        alerts = fake_alerts(self.N_ALERTS, seed=item.detector, n_history=1, cutout_size=None,
                             visit=item.visit, detector=item.detector)
        self._publish(item, alerts)
        self._note("done", item)
        return VisitDetectorStatus(instrument=item.instrument, group_id=item.group_id,
                                   visit=item.visit, detector=item.detector, ok=True,
                                   n_alerts=len(alerts), finished_at=time.time(),
                                   alert_ids=tuple(a["diaSource"]["diaSourceId"]
                                                   for a in alerts))

    def abandon(self, item: WorkItem) -> None:
        self._note("abandon", item)
        self._publish(item, [])  # as PromptPipeline.abandon: closed, with no alerts


def main() -> int:
    config_file, journal, poison, behaviour = sys.argv[1:5]
    config = load_config(config_file, env={})
    processor = (PublishingProcessor(Path(journal), int(poison), config)
                 if behaviour == "publish"
                 else PoisonProcessor(Path(journal), int(poison), behaviour))
    worker = Worker(config, config.kafka.bootstrap_servers, processor)
    worker.run(stop_on_signals(), idle_exit_s=4.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
