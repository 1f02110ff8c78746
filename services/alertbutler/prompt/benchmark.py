"""Time one detector-visit through the worker: raw arrival to alerts acknowledged by Kafka.

Used by ``bench/visit.py``. Builds a central repo for one LSST-like 4k x 4k detector (not
timed), starts an embedded broker and a SQLite L1 database, processes a first visit of the
field (its alerts are stored in the L1 database, as the ingester would, so the timed visit
associates against real history), then times the second visit: the raw lands, the worker
reads it through the butler, runs the imaging pipeline, associates, does forced photometry,
packages alerts with cutouts and puts them through the publish datastore. Preloading runs
before the raw arrives in production (the nextVisit event comes >= 20 s earlier), so it is
reported but not counted.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any


def time_detector_visit(*, seed: int = 1, detector_size: int = 4096,
                        workdir: Path | None = None) -> dict[str, Any]:
    from alertbutler.broker import EmbeddedBroker
    from alertbutler.config import load_config
    from alertbutler.l1db import L1db, rows_from_alerts
    from alertbutler.prompt.central import build_central_repo
    from alertbutler.prompt.events import WorkItem
    from alertbutler.prompt.pipeline import build_pipeline
    from alertbutler.prompt.raws import deliver_raw
    from alertbutler.prompt.service_support import ensure_topics
    from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator
    from alertbutler.sim.files import write_raw

    tmp = tempfile.TemporaryDirectory(prefix="alertbutler-bench-") if workdir is None else None
    root = Path(tmp.name) if tmp is not None else workdir
    assert root is not None
    camera = Camera(name="SIMCAM4K", n_detectors=1, nx=detector_size, ny=detector_size, gap=150)
    sim = Simulator(SimConfig(seed=seed, camera=camera, patch_size=2048,
                              night=NightConfig(n_visits=2, n_fields=1, bands=("r",))))
    t0 = time.perf_counter()
    build_central_repo(root / "central", sim)
    setup_s = time.perf_counter() - t0
    out: dict[str, Any] = {"central_repo_s": round(setup_s, 3)}
    try:
        with EmbeddedBroker() as broker:
            config = load_config(env={}, overrides={
                "general": {"data_dir": str(root)},
                "kafka": {"bootstrap_servers": broker.bootstrap, "partitions": 4}})
            ensure_topics(config, broker.bootstrap)
            L1db.create(config.l1db_url).close()
            pipeline = build_pipeline(config, broker.bootstrap, camera="simcam4k",
                                      n_detectors=1, size=detector_size, name="bench",
                                      write_outputs=False)
            landing = root / "landing"
            l1db = L1db(config.l1db_url)
            results = []
            for visit, event in zip(sim.visits, sim.next_visit_events(), strict=True):
                item = WorkItem(
                    instrument=event["instrument"], group_id=event["groupId"],
                    visit=event["visit"], detector=0, band=event["band"],
                    ra=event["position"][0], dec=event["position"][1],
                    camera_angle=event["cameraAngle"], start_time=event["startTime"],
                    duration=event["duration"], nimages=1, survey=event["survey"],
                    event_sent_at=time.time())
                pipeline.preloader.preload(item)  # as after the nextVisit event
                raw = sim.raw(visit, 0)
                staged = root / "staging" / f"{visit.visit}.fits"
                write_raw(staged, raw.data, raw.header)
                _, arrived = deliver_raw(staged, landing, item.instrument, item.group_id, 0)
                cpu0 = time.process_time()
                status = pipeline.process(item)
                cpu = time.process_time() - cpu0
                if not status.ok:
                    raise RuntimeError(f"bench visit failed: {status.reason}: {status.message}")
                results.append((status, arrived, cpu))
                if len(results) == 1:  # what the ingester would do with the first visit
                    alerts = pipeline.repos.publishing.get(
                        "alerts", instrument=item.instrument, visit=visit.visit, detector=0)
                    l1db.store(rows_from_alerts(alerts),
                               complete=[(visit.visit, 0)])
            status, arrived, cpu = results[-1]
            if status.alerts_acked_at is None:
                raise RuntimeError(f"visit {visit.visit}: its alerts were not acknowledged")
            preload = status.stages.get("preload", 0.0)
            stages = {k: round(v, 3) for k, v in status.stages.items()
                      if k not in ("preload", "wait_raw")}
            out.update({
                "detector_visit_s": round(status.alerts_acked_at - arrived - preload
                                          - status.stages.get("wait_raw", 0.0), 3),
                "stages": stages,
                "preload_s": round(preload, 3),
                # CPU seconds of this process for the same work (preload included): what one
                # core needs when the machine is shared and wall time is not ours
                "detector_visit_cpu_s": round(cpu, 3),
                "n_alerts": status.n_alerts,
                "n_forced": status.n_forced,
                "n_new_objects": status.n_new_objects,
                "n_alerts_first_visit": results[0][0].n_alerts,
                "shape": [detector_size, detector_size],
                "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "scope": "raw arrival -> alerts acknowledged by Kafka (preload excluded)",
            })
            l1db.close()
            pipeline.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out
