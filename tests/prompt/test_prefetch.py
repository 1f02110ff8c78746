"""While a worker waits for a raw, it preloads the same visit for its other detector.

A visit's raws land together, so the item after this one finds its raw already there: its
preload would then sit between the raw's arrival and its alerts. The pipeline does that
preload during the wait instead (best effort), and the alerts do not change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alertbutler.config import Config
from alertbutler.deploy.feed import NightPlan
from alertbutler.l1db import L1db
from alertbutler.prompt.central import build_central_repo
from alertbutler.prompt.events import WorkItem
from alertbutler.prompt.pipeline import build_pipeline
from alertbutler.prompt.raws import land_raw, raw_path
from alertbutler.sim.files import write_raw

pytestmark = pytest.mark.slow


def _item(event: dict, detector: int) -> WorkItem:
    return WorkItem(instrument=event["instrument"], group_id=event["groupId"],
                    visit=event["visit"], detector=detector, band=event["filters"],
                    ra=event["position"][0], dec=event["position"][1],
                    camera_angle=event["cameraAngle"], start_time=event["startTime"],
                    duration=event["duration"], nimages=1, survey=event["survey"],
                    event_sent_at=time.time())


def test_waiting_for_a_raw_preloads_the_other_detector(
        prompt_config: Callable[..., Config], tmp_path: Path) -> None:
    plan = NightPlan.default(n_visits=2, n_detectors=2)
    sim = plan.simulator()
    config = prompt_config(butler={"central_repo": str(tmp_path / "central")},
                           prompt={"raw_timeout_s": 120.0})
    build_central_repo(config.central_repo, sim)
    L1db.create(config.l1db_url).close()
    landing = Path(config.prompt.landing_dir or config.data_dir / "landing")
    events = sim.next_visit_events()
    first, second = sim.visits

    def land(visit: object, event: dict, detector: int) -> None:
        raw = sim.raw(visit, detector)
        land_raw(landing, event["instrument"], event["groupId"], detector,
                 lambda tmp: write_raw(tmp, raw.data, raw.header))

    pipeline = build_pipeline(config, config.kafka.bootstrap_servers,
                              n_detectors=plan.n_detectors, size=plan.detector_size,
                              name="prefetch-test", write_outputs=False)
    try:
        repos = pipeline.repos
        # visit 1, detector 0, raw already there: nothing to wait for, nothing prefetched
        land(first, events[0], 0)
        status = pipeline.process(_item(events[0], 0))
        assert status.ok, status.message
        assert "prefetch" not in status.stages

        # visit 2, detector 1, raw not there yet: the wait preloads visit 2 for detector 0
        later = _item(events[1], 0)
        wanted = pipeline.preloader.template_refs(later)
        assert wanted and any(repos.local.registry.get_dataset(r.id) is None for r in wanted)

        def camera() -> None:  # the raw lands once the prefetch is done (or a minute later)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                    repos.local.registry.get_dataset(r.id) is None for r in wanted):
                time.sleep(0.05)
            land(second, events[1], 1)

        lander = threading.Thread(target=camera, daemon=True)
        assert not raw_path(landing, later.instrument, later.group_id, 1).exists()
        lander.start()
        status = pipeline.process(_item(events[1], 1))
        lander.join()
        assert status.ok, status.message
        assert "prefetch" in status.stages
        assert all(repos.local.registry.get_dataset(r.id) is not None for r in wanted)
    finally:
        pipeline.close()
