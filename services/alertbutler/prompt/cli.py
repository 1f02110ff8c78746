"""``alertbutler worker``: one prompt-processing worker of the consumer group."""

from __future__ import annotations

import argparse
import logging

from alertbutler.config import Config
from alertbutler.prompt.geometry import CAMERAS
from alertbutler.prompt.service_support import (
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
    parser.add_argument("--camera", default="simcam", choices=sorted(CAMERAS),
                        help="camera whose geometry predicts footprints (default: simcam)")
    parser.add_argument("--detectors", type=int, default=None,
                        help="number of detectors of the camera (default: the camera's)")
    parser.add_argument("--detector-size", type=int, default=None, metavar="PIXELS",
                        help="detector side in pixels (default: the camera's)")
    parser.add_argument("--name", default="", help="worker name (default: worker-<pid>)")
    parser.add_argument("--output-run", default=None,
                        help="RUN for the outputs (default: prompt/<instrument>/outputs)")
    parser.add_argument("--detection-threshold", type=float, default=5.0, metavar="SIGMA",
                        help="difference-image detection threshold (default 5)")
    parser.add_argument("--no-outputs", action="store_true",
                        help="do not write calexp/difference/catalog/preview/metrics")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /metrics, /healthz and /readyz on this port")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help="exit after this long without a work item (default: never)")
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
