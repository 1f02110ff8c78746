"""``alertbutler fanout``: turn nextVisit events into one work item per detector."""

from __future__ import annotations

import argparse

from alertbutler.config import Config
from alertbutler.prompt.fanout import FanoutService
from alertbutler.prompt.geometry import CameraGeometry
from alertbutler.prompt.service_support import (
    add_service_options,
    ensure_topics,
    observability,
    require_bootstrap,
    stop_on_signals,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fanout", help="turn nextVisit events into one work item per detector",
        description="Consume nextVisit events from kafka.next_visit_topic and produce one "
        "work item per detector to kafka.work_topic (key = detector), committing each event "
        "only after all of its items were acknowledged. Detectors the camera does not have "
        "are refused with an error on prompt.status_topic.")
    add_service_options(parser, camera_help="camera whose detectors and geometry to use",
                        unit="an event")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    bootstrap = require_bootstrap(config, "fanout")
    geometry = CameraGeometry.named(args.camera, args.detectors, args.detector_size)
    ensure_topics(config, bootstrap)
    stop = stop_on_signals()
    with observability("fanout", args.metrics_port) as (metrics, health):
        service = FanoutService(config, bootstrap, known_detectors=geometry.detectors,
                                history=geometry.history(), metrics=metrics, health=health)
        done = service.run(stop, idle_exit_s=args.idle_exit)
    print(f"fanout: {done} nextVisit events, {service.items_sent} work items")
    return 0
