"""The streaming deployment on this machine: latency of a real-time night, worker scaling.

* ``latency_p50_s``, ``latency_p98_s``: end of raw arrival (the raw's landing-file mtime) to
  the visit-detector's alerts acknowledged by Kafka, over every visit-detector of the default
  simulated night (the main job's: 8 visits x 4 detectors of 2k x 2k, a visit every 20 s)
  played in real time into ``alertbutler up --workers 2`` (every service its own process).
* ``throughput_1_worker``, ``throughput_2_workers``: detector-visits per minute at speed 0:
  every raw is landed first, then every nextVisit event is sent at once; timed from the first
  event to the last visit-detector's status. One compute thread per worker (OMP/BLAS thread
  variables set to 1 by ``alertbutler up``). The night is ``--throughput-visits`` visits of
  the same camera (default 4 x 4 = 16 detector-visits) to keep the bench under ~20 minutes.

Prints progress, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _night(data_dir: Path, *, workers: int, plan: Any) -> dict[str, Any]:
    from alertbutler.config import load_config
    from alertbutler.deploy.up import Deployment, UpOptions

    config = load_config(env={}, overrides={
        "general": {"data_dir": str(data_dir), "log_level": "WARNING"},
        "prompt": {"raw_timeout_s": 600.0, "association_wait_s": 600.0}})
    deployment = Deployment(config, UpOptions(workers=workers, live=False, night=plan,
                                              exit_when_done=True, timeout_s=3600))
    started = time.time()
    try:
        deployment.prepare().start()
        prepared = time.time()
        deployment.run(threading.Event())
        progress = deployment.progress
        assert progress is not None and deployment.feed is not None
        summary = progress.summary()
        first = deployment.feed.log.started_at
        last = summary["last_finished_at"]
        n = summary["visit_detectors_ok"]
        stages: dict[str, float] = {}
        for status in progress.statuses.values():
            for stage, seconds in status.stages.items():
                stages[stage] = stages.get(stage, 0.0) + seconds / max(1, n)
        return {**summary, "workers": workers, "setup_s": round(prepared - started, 1),
                "stage_mean_s": {k: round(v, 2) for k, v in stages.items()},
                "night_s": round(last - first, 1),
                "detector_visits_per_min": round(60.0 * n / (last - first), 2)}
    finally:
        deployment.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    from alertbutler.deploy.feed import NightPlan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput-visits", type=int, default=4)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-night-"))
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, shared with other engineers",
                           "load_before": os.getloadavg()[0]}
    try:
        if not args.skip_latency:
            plan = NightPlan.default()
            print(f"real-time night: {plan}", file=sys.stderr, flush=True)
            r = _night(root / "latency", workers=2, plan=plan)
            print(json.dumps(r), file=sys.stderr, flush=True)
            out.update(latency_p50_s=r["latency_p50_s"], latency_p98_s=r["latency_p98_s"],
                       latency_night={k: r[k] for k in ("visit_detectors_ok",
                                                        "visit_detectors_failed",
                                                        "alerts_published", "night_s")})
        if not args.skip_throughput:
            plan = NightPlan.default(n_visits=args.throughput_visits, prestage=True)
            for workers in (1, 2):
                print(f"speed-0 night, {workers} worker(s): {plan}", file=sys.stderr, flush=True)
                r = _night(root / f"w{workers}", workers=workers, plan=plan)
                print(json.dumps(r), file=sys.stderr, flush=True)
                out[f"throughput_{workers}_worker{'s' if workers > 1 else ''}"] = \
                    r["detector_visits_per_min"]
            out["scaling_2_over_1"] = round(out["throughput_2_workers"]
                                            / out["throughput_1_worker"], 2)
            out["throughput_night_detector_visits"] = plan.n_visits * plan.n_detectors
        out["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
