"""``alertbutler worker``: one prompt-processing worker of the consumer group."""

from __future__ import annotations

import argparse
import logging

from alertbutler.config import Config
from alertbutler.prompt.service_support import (
    add_service_options,
    ensure_topics,
    observability,
    require_bootstrap,
    stop_on_signals,
)

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker", help="a prompt-processing worker",
        description="Join the worker group on kafka.work_topic. For each work item: preload "
        "calibrations and templates from the central repo, wait for the raw under "
        "prompt.landing_dir, run the imaging pipeline, associate with the L1 database, "
        "publish the alerts through the publish datastore, export the outputs, and only then "
        "commit the item. Start more processes to scale.")
    add_service_options(parser, camera_help="camera whose geometry predicts footprints",
                        unit="a work item")
    parser.add_argument("--name", default="", help="worker name (default: worker-<pid>)")
    parser.add_argument("--output-run", default=None,
                        help="RUN for the outputs (default: prompt/<instrument>/outputs)")
    parser.add_argument("--detection-threshold", type=float, default=5.0, metavar="SIGMA",
                        help="difference-image detection threshold (default 5)")
    parser.add_argument("--no-outputs", action="store_true",
                        help="do not write calexp/difference/catalog/preview/metrics")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.prompt.pipeline import build_pipeline
    from alertbutler.prompt.worker import Worker

    bootstrap = require_bootstrap(config, "worker")
    ensure_topics(config, bootstrap)
    stop = stop_on_signals()
    pipeline = build_pipeline(config, bootstrap, camera=args.camera,
                              n_detectors=args.detectors, size=args.detector_size,
                              name=args.name,
                              write_outputs=not args.no_outputs,
                              output_run=args.output_run,
                              detection_threshold=args.detection_threshold)
    with observability("worker", args.metrics_port) as (metrics, health):
        worker = Worker(config, bootstrap, pipeline, metrics=metrics, health=health)
        try:
            done = worker.run(stop, idle_exit_s=args.idle_exit)
        finally:
            pipeline.close()
    print(f"worker {pipeline.name}: {done} work items")
    return 0
