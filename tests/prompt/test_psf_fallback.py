"""A visit-detector with too few PSF stars yields alerts, flagged in them and in its metrics.

The small night of issue 15 (``alertbutler run --detectors 2 --detector-size 1024 --visits
4``): visit 1, detector 1 has three usable PSF stars and once failed with "only 3 usable PSF
stars (need 5)"; visit 2, detector 1 has six and keeps the empirical model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alertbutler.alerts import decode_message
from alertbutler.butler import Butler
from alertbutler.config import Config
from alertbutler.deploy.feed import NightPlan
from alertbutler.l1db import L1db
from alertbutler.prompt.central import build_central_repo
from alertbutler.prompt.events import WorkItem
from alertbutler.prompt.outputs import output_run
from alertbutler.prompt.pipeline import build_pipeline
from alertbutler.prompt.raws import land_raw
from alertbutler.sim.files import write_raw
from tests.prompt.conftest import read_all

pytestmark = pytest.mark.slow


def _item(event: dict, detector: int) -> WorkItem:
    return WorkItem(instrument=event["instrument"], group_id=event["groupId"],
                    visit=event["visit"], detector=detector, band=event["filters"],
                    ra=event["position"][0], dec=event["position"][1],
                    camera_angle=event["cameraAngle"], start_time=event["startTime"],
                    duration=event["duration"], nimages=1, survey=event["survey"],
                    event_sent_at=time.time())


def test_fallback_psf_is_flagged_in_alerts_status_and_metrics(
        prompt_config: Callable[..., Config], tmp_path: Path) -> None:
    plan = NightPlan.default(n_visits=4, n_detectors=2, detector_size=1024)
    sim = plan.simulator()
    config = prompt_config(butler={"central_repo": str(tmp_path / "central")})
    build_central_repo(config.central_repo, sim)
    L1db.create(config.l1db_url).close()
    landing = Path(config.prompt.landing_dir or config.data_dir / "landing")
    events = sim.next_visit_events()
    pipeline = build_pipeline(config, config.kafka.bootstrap_servers,
                              n_detectors=plan.n_detectors, size=plan.detector_size,
                              name="psf-test")
    statuses = {}
    try:
        for index, degraded in ((0, True), (1, False)):
            visit, event = sim.visits[index], events[index]
            raw = sim.raw(visit, 1)
            land_raw(landing, event["instrument"], event["groupId"], 1,
                     lambda tmp, raw=raw: write_raw(tmp, raw.data, raw.header))
            status = pipeline.process(_item(event, 1))
            assert status.ok, status.message
            assert status.psf_degraded is degraded
            assert status.n_alerts > 0
            statuses[visit.visit] = status
    finally:
        pipeline.close()

    messages = read_all(config.kafka.bootstrap_servers, config.kafka.alert_topic,
                        partitions=config.kafka.partitions)
    flags: dict[int, set[bool | None]] = {}
    for _, _, value in messages:
        decoded = decode_message(value)
        if decoded.kind == "alert":
            source = decoded.record["diaSource"]
            flags.setdefault(source["visit"], set()).add(source["psfModel_flag_degraded"])
    assert flags == {v: {s.psf_degraded} for v, s in statuses.items()}
    assert sum(s.n_alerts for s in statuses.values()) == \
        sum(1 for _, _, v in messages if decode_message(v).kind == "alert")

    central = Butler(config.central_repo)
    for visit, status in statuses.items():
        metrics = central.get("metrics", instrument=events[0]["instrument"], visit=visit,
                              detector=1, collections=output_run(events[0]["instrument"]))
        psf = metrics["psf"]
        assert psf["degraded"] is status.psf_degraded
        assert psf["model"] == ("moffat" if status.psf_degraded else "empirical")
        assert psf["n_stars"] == (3 if status.psf_degraded else 6)
        assert psf["fwhm_px"] > 0 and psf["kernel_stamps"] >= 3
