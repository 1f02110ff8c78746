"""Play a recorded night into a running deployment: ``alertbutler night replay --into``.

A plain replay runs its own isolated services; this mode is the observatory for services
that already run (``alertbutler up``, or anything that wrote ``<data_dir>/up/deployment.json``
(:mod:`alertbutler.deploy.state`)). In order:

1. the deployment's central repo gets the recording's calibrations, templates and sky maps
   through the butler's import (ids preserved, files hard-linked, else copied; datasets it
   already has are skipped, so a filled repo is left as it is);
2. :class:`~alertbutler.replay.feed.RecordingFeed` plays the recorded timeline: each
   nextVisit message, byte for byte, on the deployment's next-visit topic (acks=all), and
   each raw landed atomically in its landing area, at ``(t - t0) / speed`` after the start
   (``--speed 0``: a visit is let in once the visit ``window`` before it has a status for
   every detector, as in a plain replay);
3. it waits until every visit-detector has a status and is complete in the L1 database,
   reads the recording's visits' alerts back from the deployment's alert topic and compares
   them with the recorded ones. The deployment's workers keep the wall clock, so
   ``*.timeProcessedMjdTai`` is left out of the comparison; everything else must be equal.

The feed is the one a plain replay plays into its own services, and the same observatory as
``alertbutler up --night``'s simulated one (:class:`alertbutler.deploy.feed.Feed`:
acknowledged publish, atomic landing, a log of when each happened).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbutler.config import Config
from alertbutler.deploy.state import DeploymentState, find_state
from alertbutler.replay.errors import ReplayError
from alertbutler.replay.feed import RecordingFeed
from alertbutler.replay.night_run import NightSpec, import_calibrations

log = logging.getLogger(__name__)


@dataclass
class IntoOutcome:
    """What a replay into a deployment did and how its alerts compare with the recording."""

    state: DeploymentState
    comparison: Any
    summary: dict[str, Any]
    report: Path
    alerts: list[tuple[bytes | None, bytes, int | None]] = field(default_factory=list)
    statuses: dict[tuple[str, int], Any] = field(default_factory=dict)


def deployment_config(config: Config, state: DeploymentState) -> Config:
    """``config`` pointed at the running deployment (its broker, topics, areas, databases)."""
    def section(name: str, **changes: Any) -> Any:
        return dataclasses.replace(getattr(config, name), **changes)

    return dataclasses.replace(
        config,
        kafka=section("kafka", bootstrap_servers=state.bootstrap,
                      next_visit_topic=state.next_visit_topic, alert_topic=state.alert_topic),
        l1db=section("l1db", url=state.l1db_url),
        butler=section("butler", central_repo=state.central_repo),
        prompt=section("prompt", landing_dir=state.landing_dir,
                       status_topic=state.status_topic))


def check_camera(spec: NightSpec, state: DeploymentState) -> None:
    """Refuse a recording whose detectors the deployment's fan-out and workers do not serve
    (unknown detectors, or another detector size: footprints and alerts would differ)."""
    from alertbutler.prompt.geometry import CameraGeometry

    deployed = CameraGeometry.named(state.camera, state.n_detectors, state.detector_size).camera
    recorded = {e.detector for e in spec.schedule if e.detector is not None}
    missing = sorted(recorded - set(deployed.detectors))
    if missing:
        raise ReplayError(f"the deployment serves detectors 0-{deployed.n_detectors - 1}, the "
                          f"recording has {missing}: start `alertbutler up --detectors "
                          f"{spec.n_detectors}" + (f" --detector-size {spec.detector_size}`"
                                                   if spec.detector_size else "`"))
    if spec.detector_size and int(spec.detector_size) != deployed.nx:
        raise ReplayError(f"the deployment's detectors are {deployed.nx} px, the recording's "
                          f"{spec.detector_size} px: start `alertbutler up --detectors "
                          f"{spec.n_detectors} --detector-size {spec.detector_size}`")


def replay_into(config: Config, source: Path, where: Path, *, speed: float = 1.0,
                window: int = 2, timeout_s: float = 1800.0, progress: bool = True,
                out: Path | None = None) -> IntoOutcome:
    """Play the recording ``source`` into the deployment at ``where`` (see the module doc)."""
    from alertbutler.alerts import decode_alert
    from alertbutler.l1db import L1db
    from alertbutler.night.progress import NightProgress
    from alertbutler.night.watch import ProgressBars, watch
    from alertbutler.prompt.kafka_io import make_producer
    from alertbutler.replay.compare import compare_alerts
    from alertbutler.replay.night import (
        WALL_CLOCK_FIELDS,
        _spec,
        new_run_id,
        recorded_alerts,
        write_replay_report,
    )
    from alertbutler.replay.night_run import by_group, collect_alerts, window_gate
    from alertbutler.replay.recording import Recording

    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    state = find_state(where)
    cfg = deployment_config(config, state)
    run_id = new_run_id()
    started = time.monotonic()
    with Recording.open(source) as recording:
        night = recording.night
        spec = _spec(recording.root, night, recording.schedule())
        check_camera(spec, state)
        vds = [(spec.visits[g], d) for g, d in sorted(spec.expected)]
        with L1db(cfg.l1db_url) as l1db:
            already = l1db.ingested(vds)
        if already:  # their rows would change association, and the comparison
            raise ReplayError(f"the deployment's L1 database already holds {len(already)} of "
                              f"the recording's visit-detectors (e.g. visit "
                              f"{min(already).visit}): replay into a fresh deployment")
        added = import_calibrations(Path(state.central_repo), spec.root / "calibs")
        log.info("calibrations imported into the deployment's central repo",
                 extra={"repo": state.central_repo, "added": added})
        stop = threading.Event()
        night_progress = NightProgress(cfg, spec.visit_detectors, visits=spec.visits)
        bars = ProgressBars.for_night(progress, ("into deployment: events + raws",
                                                 len(spec.schedule)),
                                      len(spec.expected), width=30)
        producer = make_producer(cfg, state.bootstrap)
        feed = RecordingFeed(spec, speed=speed, producer=producer,
                             topic=state.next_visit_topic, landing=Path(state.landing_dir),
                             gate=window_gate(spec, night_progress, window, stop) if speed == 0
                             else None, stop=stop)

        def check() -> None:
            if feed.error is not None:
                raise ReplayError(f"the feed failed: {feed.error}")
            if not state.alive:
                raise ReplayError(f"the deployment (pid {state.pid}) stopped")

        setup_s = time.monotonic() - started
        run_start = time.monotonic()
        try:
            with bars.running():
                feed.start()
                watch(night_progress, bars=bars, fed=lambda: len(feed.emitted), check=check,
                      finished=feed.finished.is_set, timeout_s=timeout_s,
                      what="the replay into the deployment")
            run_s = time.monotonic() - run_start
        finally:
            stop.set()
            feed.join(timeout=30)
            producer.flush(5)
            night_progress.close()
        statuses = {k: v for k, v in by_group(night_progress).items() if k in spec.expected}
        visits = set(spec.visits.values())
        expected_alerts = sum(s.n_alerts for s in statuses.values() if s.ok)
        alerts, _, differing = collect_alerts(cfg, expected_alerts, visits=visits,
                                              timeout_s=max(120.0, timeout_s / 4))
        replayed = [decode_alert(v) for _, v, _ in alerts]
        comparison = compare_alerts(recorded_alerts(recording), replayed,
                                    ignore=WALL_CLOCK_FIELDS)
        errors = [f"{s.group_id}/{s.detector}: {s.reason}: {s.message}"
                  for s in statuses.values() if not s.ok]
        summary = {
            "recording": str(source), "run_id": run_id, "into": str(where),
            "deployment_pid": state.pid, "bootstrap": state.bootstrap,
            "next_visit_topic": state.next_visit_topic, "alert_topic": state.alert_topic,
            "landing_dir": state.landing_dir, "central_repo": state.central_repo,
            "calibration_datasets_added": added, "speed": speed,
            "recorded_duration_s": round(spec.duration_s, 3),
            "setup_s": round(setup_s, 2), "replay_s": round(run_s, 2),
            "visit_detectors": len(spec.expected),
            "visit_detectors_ok": sum(1 for s in statuses.values() if s.ok),
            "alerts_recorded": comparison.n_recorded, "alerts_replayed": comparison.n_replayed,
            "differences": comparison.differences, "new": len(comparison.new),
            "missing": len(comparison.missing), "changed": len(comparison.changed),
            "ignored_fields": list(WALL_CLOCK_FIELDS),
            "duplicates_differing": differing[:50], "errors": errors[:50],
        }
        if speed:
            summary["schedule_max_late_s"] = round(feed.report.max_late_s, 3)
            errs = feed.report.spacing_errors()
            summary["schedule_spacing_max_rel_error"] = round(max(map(abs, errs)), 4) \
                if errs else None
        root = (out or Path(config.data_dir) / "replays" / f"into-{run_id}").resolve()
        report = write_replay_report(root, summary, comparison)
    return IntoOutcome(state, comparison, summary, report, alerts, statuses)
