"""A prompt worker whose clock is the replayed clock: ``python -m alertbutler.replay.worker``.

It is ``alertbutler worker`` (the prompt service's Worker and pipeline, unchanged) with one
difference: the pipeline's clock reads the recorded time of the work item's raw arrival, so
the processing timestamps it writes into alerts and L1 rows are the same in every replay of a
recording, whatever the replay's speed or the machine's load. Replays start it as a child
process per worker (:class:`alertbutler.night.workers.WorkerPool`), with the replay's whole
configuration in a TOML file named by ``ALERTBUTLER_CONFIG``
(:func:`alertbutler.night.config.hand_off`) or ``--config``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alertbutler.replay.clock import ReplayClock

if TYPE_CHECKING:
    from alertbutler.config import Config
    from alertbutler.prompt.events import WorkItem
    from alertbutler.prompt.pipeline import PromptPipeline
    from alertbutler.prompt.status import VisitDetectorStatus

log = logging.getLogger(__name__)


def recorded_arrivals(schedule_file: Path) -> dict[tuple[str, int], float]:
    """(groupId, detector) -> recorded raw arrival time, from a recording's schedule."""
    entries = json.loads(Path(schedule_file).read_text())
    return {(str(e["group_id"]), int(e["detector"])): float(e["t"])
            for e in entries if e.get("kind") == "raw"}


class ClockedProcessor:
    """Pins the replayed clock to the item's recorded raw arrival, then runs the pipeline."""

    def __init__(self, pipeline: PromptPipeline, clock: ReplayClock,
                 arrivals: Mapping[tuple[str, int], float]) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.arrivals = arrivals

    def process(self, item: WorkItem) -> VisitDetectorStatus:
        t = self.arrivals.get((item.group_id, item.detector))
        self.clock.set(item.event_sent_at if t is None else t)
        return self.pipeline.process(item)

    def ready(self, item: WorkItem) -> bool:
        return bool(self.pipeline.ready(item))

    def abandon(self, item: WorkItem) -> None:
        self.pipeline.abandon(item)


def build_replay_pipeline(config: Config, bootstrap: str, *, camera: str, n_detectors: int,
                          size: int | None, name: str, clock: ReplayClock,
                          output_run: str | None, detection_threshold: float | None,
                          write_outputs: bool = True) -> PromptPipeline:
    """The prompt pipeline with the replayed clock; no ``detection_threshold`` keeps the
    pipeline's own default."""
    from alertbutler.prompt.pipeline import build_pipeline

    build = functools.partial(build_pipeline, config, bootstrap, camera=camera,
                              n_detectors=n_detectors, size=size, name=name, clock=clock,
                              write_outputs=write_outputs, output_run=output_run)
    if detection_threshold is None:
        return build()
    return build(detection_threshold=detection_threshold)


def main(argv: list[str] | None = None) -> int:
    from alertbutler.config import load_config
    from alertbutler.logs import setup_logging
    from alertbutler.prompt.service_support import stop_on_signals
    from alertbutler.prompt.worker import Worker

    parser = argparse.ArgumentParser(prog="python -m alertbutler.replay.worker")
    parser.add_argument("--config", default=None,
                        help="configuration file (default: $ALERTBUTLER_CONFIG)")
    parser.add_argument("--schedule", required=True, type=Path)
    parser.add_argument("--group", required=True, help="consumer group of this replay")
    parser.add_argument("--camera", default="simcam")
    parser.add_argument("--detectors", type=int, required=True)
    parser.add_argument("--detector-size", type=int, default=None)
    parser.add_argument("--name", required=True)
    parser.add_argument("--output-run", default=None)
    parser.add_argument("--detection-threshold", type=float, default=None)
    parser.add_argument("--no-outputs", action="store_true")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    setup_logging(config.general.log_level)
    bootstrap = config.kafka.bootstrap_servers
    arrivals = recorded_arrivals(args.schedule)
    clock = ReplayClock(min(arrivals.values(), default=0.0))
    pipeline = build_replay_pipeline(
        config, bootstrap, camera=args.camera, n_detectors=args.detectors,
        size=args.detector_size, name=args.name, clock=clock, output_run=args.output_run,
        detection_threshold=args.detection_threshold, write_outputs=not args.no_outputs)
    stop = stop_on_signals()
    worker = Worker(config, bootstrap, ClockedProcessor(pipeline, clock, arrivals),
                    group=args.group)
    try:
        done = worker.run(stop)
    finally:
        close = getattr(pipeline, "close", None)
        if close is not None:
            close()
    log.info("replay worker done", extra={"worker": args.name, "items": done})
    return 0


if __name__ == "__main__":
    sys.exit(main())
