"""``alertbutler run``: the main job on the embedded defaults (see alertbutler.night.main_job).

A thin entry point: it parses, then calls :func:`alertbutler.night.main_job.run_main_job`.
"""

from __future__ import annotations

import argparse

from alertbutler.cli import args as arg_types
from alertbutler.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run the main job on the embedded defaults",
        description="Simulate a small night and run it through the whole chain (embedded "
        "broker unless kafka.bootstrap_servers is set, SQLite L1 database and butler repos "
        "under <data_dir>/mainjob): nextVisit fan-out, prompt workers, alerts through the "
        "publish datastore, the L1 ingester. Ends with a summary, summary.json and an HTML "
        "report; the last line of output is the report's path.")
    parser.add_argument("--visits", type=int, default=6, help="visits in the night (default 6)")
    parser.add_argument("--detectors", type=int, default=4,
                        help="detectors of the camera (default 4)")
    parser.add_argument("--detector-size", type=int, default=2048, metavar="PIXELS",
                        help="detector side in pixels (default 2048)")
    parser.add_argument("--workers", type=arg_types.workers, default=None,
                        help="worker processes (default: prompt.workers)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress bars")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Config) -> int:
    import logging

    from alertbutler.night.main_job import MainJobOptions, print_summary, run_main_job

    if args.log_level is None:  # progress bars and the summary say it; workers log to files
        logging.getLogger().setLevel(logging.WARNING)

    options = MainJobOptions(seed=args.seed, n_visits=args.visits, n_detectors=args.detectors,
                             detector_size=args.detector_size,
                             workers=args.workers or config.prompt.workers,
                             progress=not args.no_progress)
    result = run_main_job(config, options)
    print_summary(result)
    return 0 if result.summary["visit_detectors_failed"] == 0 else 1
