"""The streaming deployment on this machine: latency of a real-time night, worker scaling.

* ``latency_p50_s``, ``latency_p98_s``: end of raw arrival (the raw's landing-file mtime) to
  the visit-detector's alerts acknowledged by Kafka, over every visit-detector of the default
  simulated night (the main job's: 6 visits x 4 detectors of 2k x 2k, a visit every 20 s)
  played in real time into ``alertbutler up --workers 2`` (every service its own process).
* ``throughput_1_worker``, ``throughput_2_workers``: detector-visits per minute at speed 0:
  every raw is landed first, then every nextVisit event is sent at once; timed from the first
  event to the last visit-detector's status. One compute thread per worker (OMP/BLAS thread
  variables set to 1 by ``alertbutler up``). The night is ``--throughput-visits`` visits of
  the same camera (default 4 x 4 = 16 detector-visits) to keep the bench under ~20 minutes.

The simulated camera renders every raw of the night before the services start (not timed,
``setup_s``), and the feed only writes and renames them on schedule: a real camera does not
use the pipeline machine's CPU, and rendering a 2k x 2k raw costs about as much CPU as
processing it, so rendering during the night took most of a core from the workers and spread
each visit's four raws over 8-14 s (a worker that took the later detector's item first sat
waiting for its raw while its other raw had landed; with the raws of a visit landing
together, as a camera's do, the order of a worker's items does not matter).
``--render-live`` renders each raw as it lands, as ``alertbutler up --night`` does.

``latency_breakdown``: per stage of the real-time night, p50/p98/max seconds over its
visit-detectors (the workers' ``status.stages``), plus ``queued`` (raw arrived -> the item's
worker got past preload, prefetch and the raw wait: time spent behind the worker's previous
item, plus its own preload when the raw came first),
``latency`` itself, and ``ingest_delay`` (alerts acknowledged -> the ingester committed the
visit-detector complete in the L1 database). ``--items FILE`` writes every item's record.

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


def _pct(values: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values, float)
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p98": round(float(np.percentile(a, 98)), 2), "max": round(float(a.max()), 2)}


def _items(progress: Any) -> list[dict[str, Any]]:
    """One record per successful visit-detector: its timeline and stage seconds."""
    with progress.l1db._engine.connect() as conn:
        completed = {(int(v), int(d)): float(t) for v, d, t in conn.exec_driver_sql(
            "SELECT visit, detector, completed_at FROM ingested_visit_detector")}
    out = []
    for (visit, detector), s in sorted(progress.statuses.items()):
        if not (s.ok and s.raw_arrived_at and s.alerts_acked_at and s.finished_at):
            continue
        started = s.finished_at - sum(s.stages.values())
        # the raw wait ends at arrival or later; what exceeds it is the queue behind the
        # worker's previous item (plus preload when the raw came first)
        ready = started + sum(s.stages.get(k, 0.0) for k in ("preload", "prefetch", "wait_raw"))
        out.append({"visit": visit, "detector": detector, "worker": s.worker,
                    "n_alerts": s.n_alerts, "arrived": s.raw_arrived_at,
                    "started": started, "acked": s.alerts_acked_at,
                    "finished": s.finished_at, "completed": completed.get((visit, detector)),
                    "latency": s.alerts_acked_at - s.raw_arrived_at,
                    "queued": max(0.0, ready - s.raw_arrived_at),
                    "ingest_delay": None if (visit, detector) not in completed
                    else completed[(visit, detector)] - s.alerts_acked_at,
                    "stages": dict(s.stages)})
    return out


def _breakdown(items: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    names: list[str] = []
    for item in items:
        names += [k for k in item["stages"] if k not in names]
    out = {k: _pct([i["stages"].get(k, 0.0) for i in items]) for k in names}
    for key in ("queued", "latency", "ingest_delay"):
        values = [i[key] for i in items if i[key] is not None]
        if values:
            out[key] = _pct(values)
    return out


class _Rendered:
    """The night's simulator with every raw rendered beforehand (see the module doc)."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._raws = {(v.visit, d): sim.raw(v, d) for v in sim.visits
                      for d in sim.camera.detectors}

    def raw(self, visit: Any, detector: int) -> Any:
        return self._raws[(visit.visit, detector)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


def _night(data_dir: Path, *, workers: int, plan: Any,
           render_live: bool = False) -> dict[str, Any]:
    from alertbutler.config import load_config
    from alertbutler.deploy.up import Deployment, UpOptions

    config = load_config(env={}, overrides={
        "general": {"data_dir": str(data_dir), "log_level": "WARNING"},
        "prompt": {"raw_timeout_s": 600.0, "association_wait_s": 600.0}})
    deployment = Deployment(config, UpOptions(workers=workers, live=False, night=plan,
                                              exit_when_done=True, timeout_s=3600))
    started = time.time()
    try:
        deployment.prepare()
        if not render_live and not plan.prestage:
            deployment.sim = _Rendered(deployment.sim)
        deployment.start()
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
        items = _items(progress)
        return {**summary, "workers": workers, "setup_s": round(prepared - started, 1),
                "items": items, "breakdown": _breakdown(items),
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
    parser.add_argument("--only", choices=("latency", "throughput"),
                        help="run only this part (same as skipping the other)")
    parser.add_argument("--render-live", action="store_true",
                        help="render each raw of the real-time night as it lands")
    parser.add_argument("--items", type=Path,
                        help="write the real-time night's per-item records (JSON) here, and "
                        "the speed-0 nights' beside it (FILE.w1.json, FILE.w2.json)")
    args = parser.parse_args()
    if args.only:
        args.skip_latency = args.only != "latency"
        args.skip_throughput = args.only != "throughput"
    root = Path(tempfile.mkdtemp(prefix="bench-night-"))
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, shared with other engineers",
                           "load_before": os.getloadavg()[0]}
    try:
        if not args.skip_latency:
            plan = NightPlan.default()
            print(f"real-time night: {plan}", file=sys.stderr, flush=True)
            r = _night(root / "latency", workers=2, plan=plan, render_live=args.render_live)
            items = r.pop("items")
            if args.items:
                args.items.write_text(json.dumps(items, indent=1))
            print(json.dumps(r), file=sys.stderr, flush=True)
            out.update(latency_p50_s=r["latency_p50_s"], latency_p98_s=r["latency_p98_s"],
                       latency_night={k: r[k] for k in ("visit_detectors_ok",
                                                        "visit_detectors_failed",
                                                        "alerts_published", "night_s")},
                       latency_breakdown=r["breakdown"],
                       latency_raws="rendered as they land" if args.render_live
                       else "rendered before the night")
        if not args.skip_throughput:
            plan = NightPlan.default(n_visits=args.throughput_visits, prestage=True)
            for workers in (1, 2):
                print(f"speed-0 night, {workers} worker(s): {plan}", file=sys.stderr, flush=True)
                r = _night(root / f"w{workers}", workers=workers, plan=plan)
                items = r.pop("items")
                if args.items:
                    args.items.with_suffix(f".w{workers}.json").write_text(
                        json.dumps(items, indent=1))
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
