"""``alertbutler up`` followed by ``alertbutler night replay --into``: a night in production.

The deployment is the real one (its own embedded broker, ``alertbutler fanout``, a worker and
``alertbutler ingest`` as processes, no night of its own); the replay is the real CLI in a
process of its own, finding the deployment through ``<data_dir>/up/deployment.json``. Every
visit-detector's alerts must reach the deployment's alert topic and its L1 database exactly
once, and equal those of a plain ``night replay`` of the same recording (only the processing
time differs: the deployment's workers keep the wall clock).

Small to stay inside the suite's budget: 2 visits of one field x 2 detectors of 1536 px
(smaller detectors hold too few stars to model the PSF, and every item would fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alertbutler.alerts import decode_alert
from alertbutler.config import load_config
from alertbutler.deploy.state import DeploymentState, state_path
from alertbutler.deploy.up import Deployment, UpOptions
from alertbutler.l1db import L1db
from alertbutler.replay.compare import compare_alerts
from alertbutler.replay.night import WALL_CLOCK_FIELDS, SimNight, record_sim_night, replay_night
from alertbutler.replay.recording import Recording
from tests.deploy.nights import alerts_by_visit_detector, night_config, read_topic

pytestmark = pytest.mark.slow

NIGHT = SimNight(seed=2, n_visits=2, n_detectors=2, detector_size=1536, n_fields=1,
                 bands=("g",))
#: the recorded night spans ~960 s (the field is revisited 15 minutes later): ~24 s here
SPEED = 40.0


def test_replay_into_a_running_deployment(kafka_bootstrap: str, tmp_path: Path) -> None:
    config = load_config(env={"ALERTBUTLER_GENERAL__DATA_DIR": str(tmp_path / "work"),
                              "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap})
    recording, recorded = record_sim_night(config, tmp_path / "recording", NIGHT, workers=1,
                                           progress=False, write_outputs=False)
    assert recorded.alerts and not recorded.errors, recorded.errors
    plain = replay_night(config, recording, speed=0, workers=1, progress=False,
                         out=tmp_path / "plain", write_outputs=False)
    assert plain.comparison.differences == 0
    with Recording.open(recording) as rec:
        groups = {e.group_id for e in rec.schedule()}

    data = tmp_path / "deployment"
    deployment = Deployment(night_config(data), UpOptions(
        workers=1, live=False, n_detectors=NIGHT.n_detectors,
        detector_size=NIGHT.detector_size, grace_s=30))
    log = tmp_path / "replay-into.log"
    with deployment:
        assert deployment.wait_ready(timeout=300), "services never became ready"
        state = DeploymentState.read(state_path(data))
        assert state.pid == os.getpid() and state.bootstrap != kafka_bootstrap
        assert (state.n_detectors, state.detector_size) == (2, 1536)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
        env["ALERTBUTLER_GENERAL__DATA_DIR"] = str(tmp_path / "feeder")
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "alertbutler", "night", "replay", str(recording),
                 "--into", str(data), "--speed", str(SPEED), "--json", "--timeout", "600"],
                stdout=subprocess.PIPE, stderr=err, env=env)
            deadline = time.monotonic() + 700
            while proc.poll() is None:  # the supervisor restarts what crashes meanwhile
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                deployment.step()
                time.sleep(0.5)
            out = proc.stdout.read().decode() if proc.stdout else ""
        assert proc.returncode == 0, log.read_text()[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        cfg = deployment.config
        messages = read_topic(cfg.kafka.bootstrap_servers, cfg.kafka.alert_topic)
        with L1db(cfg.l1db_url) as db:
            vds = sorted(alerts_by_visit_detector(messages))
            in_db = {vd: db.sources_of_visit_detector(*vd).column("diaSourceId").to_pylist()
                     for vd in vds}
            rows = db.row_counts()
        landing = Path(cfg.prompt.landing_dir)
    assert not state_path(data).exists(), "up leaves its state file behind"

    # the feed did what the observatory does, into the deployment's own places
    assert summary["visit_detectors"] == summary["visit_detectors_ok"] == 4, summary["errors"]
    assert summary["calibration_datasets_added"] > 0
    assert summary["schedule_spacing_max_rel_error"] is not None
    landed = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())
    assert landed == sorted(f"SIMCAM/{g}/{d}.fits" for g in groups for d in range(2))

    # every visit-detector's alerts exactly once on the topic and in the L1 database
    on_topic = alerts_by_visit_detector(messages)
    plain_alerts = [decode_alert(v) for _, v, _ in plain.run.alerts]
    plain_ids: dict[tuple[int, int], set[int]] = {}
    for alert in plain_alerts:
        src = alert["diaSource"]
        plain_ids.setdefault((src["visit"], src["detector"]), set()).add(src["diaSourceId"])
    assert set(on_topic) == set(plain_ids)
    for vd, copies in on_topic.items():
        assert all(len(c) == 1 for c in copies.values()), f"{vd}: an alert published twice"
        assert set(copies) == plain_ids[vd], vd
        assert sorted(in_db[vd]) == sorted(copies), f"{vd}: L1 DB and topic disagree"
    assert rows["DiaSource"] == len(plain_alerts) == summary["alerts_replayed"]

    # and they are the plain replay's alerts (the processing time aside)
    deployed = [c[0] for copies in on_topic.values() for c in copies.values()]
    comparison = compare_alerts(plain_alerts, deployed, ignore=WALL_CLOCK_FIELDS)
    assert comparison.differences == 0, comparison.as_dict()
    assert summary["differences"] == 0, summary
