"""Run the prompt pipeline over a night's recorded inputs, on a replayed schedule.

Every run is isolated from the night it replays: its own central repository (imported from
the recording's butler export), its own L1 database (SQLite under the run directory, or a
PostgreSQL URL given for the purpose), its own Kafka topics and consumer groups (suffixed with
the run id), its own landing area, and its own output run name (checked against the recorded
night's runs). Nothing it does can write into the recorded night.

The parts are the production services, run by :mod:`alertbutler.night` as for the main job:
the fan-out and the L1 ingester as threads, the workers as child processes
(:mod:`alertbutler.replay.worker`, the prompt Worker with the replayed clock) given the run's
whole configuration (``<root>/effective-config.toml``). The
:class:`~alertbutler.replay.scheduler.Scheduler` plays the recorded nextVisit events and raw
arrivals; at ``--speed 0`` it lets the next visit in only when the pipeline has caught up to
``window`` visits back, so the run goes as fast as the workers take the visits, in the
recorded order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbutler.config import Config
from alertbutler.kafka.message import placed, value_of
from alertbutler.night.config import hand_off, night_config
from alertbutler.night.ingester import IngesterThread
from alertbutler.night.progress import NightProgress
from alertbutler.night.watch import ProgressBars, watch
from alertbutler.night.workers import WorkerPool
from alertbutler.replay.errors import ReplayError
from alertbutler.replay.feed import RecordingFeed
from alertbutler.replay.recording import ScheduledEvent
from alertbutler.replay.scheduler import ScheduleReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NightSpec:
    """What a run needs from a recording: where its files are, its events and schedule."""

    root: Path  # holds raws/ and calibs/ as the schedule and export name them
    instrument: str
    camera: str
    n_detectors: int
    detector_size: int | None
    events: list[tuple[bytes | None, bytes]]  # the recorded nextVisit messages
    schedule: list[ScheduledEvent]
    visits: dict[str, int]  # groupId -> visit

    @property
    def expected(self) -> set[tuple[str, int]]:
        return {(e.group_id, e.detector) for e in self.schedule
                if e.kind == "raw" and e.detector is not None}

    @property
    def visit_detectors(self) -> set[tuple[int, int]]:
        """:attr:`expected` as (visit, detector)."""
        return {(self.visits[g], d) for g, d in self.expected if g in self.visits}

    @property
    def duration_s(self) -> float:
        times = [e.t for e in self.schedule]
        return max(times) - min(times) if times else 0.0


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run: pace, workers, where results go, what to change."""

    speed: float = 0.0
    workers: int = 2
    output_run: str
    l1db_url: str | None = None
    detection_threshold: float | None = None
    write_outputs: bool = True
    window: int = 2
    timeout_s: float = 1800.0
    progress: bool = True


@dataclass
class NightRunResult:
    """What a run produced."""

    run_id: str
    root: Path
    l1db_url: str
    alert_topic: str
    #: alert messages (key, value, Kafka timestamp ms), one per diaSourceId, sorted by it
    alerts: list[tuple[bytes | None, bytes, int | None]]
    alert_ids: list[int]
    statuses: dict[tuple[str, int], Any]
    schedule: ScheduleReport
    setup_s: float = 0.0
    run_s: float = 0.0  # first emission to the last visit-detector ingested
    total_s: float = 0.0
    #: CPU seconds of the run (workers + this process: fan-out, ingester, scheduler)
    cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    duplicates_differing: list[int] = field(default_factory=list)


def window_gate(spec: NightSpec, progress: NightProgress, window: int,
                stop: threading.Event) -> Callable[[ScheduledEvent], None]:
    """The ``--speed 0`` gate: a visit's nextVisit waits until the visit ``window`` before it
    has a status for every detector, so association finds every earlier overlapping
    visit-detector in the L1 database while the run goes as fast as the workers take it."""
    visit_order = [e.group_id for e in sorted(spec.schedule, key=lambda e: e.t)
                   if e.kind == "next_visit"]

    def gate(event: ScheduledEvent) -> None:
        if event.kind != "next_visit":
            return
        k = visit_order.index(event.group_id)
        if k < window:
            return
        wait_for = spec.visits[visit_order[k - window]]
        while not stop.is_set() and not progress.visit_done(wait_for):
            time.sleep(0.05)

    return gate


def import_calibrations(central: Path, calibs: Path) -> int:
    """A recording's calibrations, templates and sky maps (its butler export) into the repo
    ``central``: ids preserved, datasets already there skipped (so a filled repo is left as
    it is); returns how many were added."""
    from alertbutler.butler import Butler

    with Butler(central) as butler:
        try:  # a recording's files never change: link them (~0.5 GB for the default night)
            added = butler.import_(calibs, transfer="hardlink")
        except OSError:  # another filesystem: copy what is not there yet (import is idempotent)
            added = butler.import_(calibs, transfer="copy")
    return len(added)


def run_night(config: Config, spec: NightSpec, options: RunOptions, root: Path, *,
              run_id: str, label: str = "replay") -> NightRunResult:
    """Run the pipeline over ``spec`` in a fresh environment under ``root`` (see module doc)."""
    from alertbutler.kafka import kafka_session

    root = root.resolve()
    root.mkdir(parents=True, exist_ok=False)
    with kafka_session(config) as bootstrap:
        return _run(night_config(config, root, bootstrap, run_id=run_id,
                                 l1db_url=options.l1db_url), spec, options, root, run_id, label)


def _worker_argv(spec: NightSpec, schedule_file: Path, options: RunOptions,
                 run_id: str) -> Callable[[int], list[str]]:
    def argv(i: int) -> list[str]:
        command = [sys.executable, "-m", "alertbutler.replay.worker",
                   "--schedule", str(schedule_file),
                   "--group", f"alertbutler-prompt-workers-{run_id}",
                   "--camera", spec.camera, "--detectors", str(spec.n_detectors),
                   "--name", f"replay-{run_id}-worker-{i}", "--output-run",
                   options.output_run]
        if spec.detector_size:
            command += ["--detector-size", str(spec.detector_size)]
        if options.detection_threshold is not None:
            command += ["--detection-threshold", str(options.detection_threshold)]
        if not options.write_outputs:
            command.append("--no-outputs")
        return command
    return argv


def _run(cfg: Config, spec: NightSpec, options: RunOptions, root: Path, run_id: str,
         label: str) -> NightRunResult:
    from alertbutler.butler import Butler
    from alertbutler.l1db import L1db
    from alertbutler.prompt.fanout import FanoutService
    from alertbutler.prompt.geometry import CameraGeometry
    from alertbutler.prompt.kafka_io import make_producer
    from alertbutler.prompt.service_support import ensure_topics

    started = time.monotonic()
    bootstrap = cfg.kafka.bootstrap_servers
    with L1db.create(cfg.l1db_url) as l1db:
        filled = {t: n for t, n in l1db.row_counts().items() if n}
    if filled:  # another night's rows would change association and the comparison
        raise ReplayError(f"the L1 database {l1db.url} already holds rows ("
                          + ", ".join(f"{t} {n}" for t, n in filled.items())
                          + "): a replay needs an empty one")
    ensure_topics(cfg, bootstrap)
    Butler.create(cfg.central_repo).close()
    import_calibrations(Path(cfg.central_repo), spec.root / "calibs")
    schedule_file = root / "schedule.json"
    schedule_file.write_text(json.dumps([e.as_dict() for e in spec.schedule]))
    geometry = CameraGeometry.named(spec.camera, spec.n_detectors, spec.detector_size)
    stop = threading.Event()
    bars = ProgressBars.for_night(options.progress, (f"{label}: events + raws",
                                                     len(spec.schedule)),
                                  len(spec.expected), width=30)
    workers = WorkerPool(_worker_argv(spec, schedule_file, options, run_id), options.workers,
                         env=hand_off(cfg, root), log_dir=root / "logs")
    ingester = IngesterThread(cfg)
    progress = NightProgress(cfg, spec.visit_detectors, visits=spec.visits)
    fanout = FanoutService(cfg, bootstrap, known_detectors=geometry.detectors,
                           history=geometry.history(), group=f"alertbutler-fanout-{run_id}")
    fanout_thread = threading.Thread(target=fanout.run, args=(stop,), name="replay-fanout",
                                     daemon=True)
    producer = make_producer(cfg, bootstrap)
    feed = RecordingFeed(spec, speed=options.speed, producer=producer,
                         topic=cfg.kafka.next_visit_topic, landing=Path(cfg.prompt.landing_dir),
                         gate=window_gate(spec, progress, options.window, stop)
                         if options.speed == 0 else None, stop=stop)

    def check() -> None:
        if feed.error is not None:
            raise RuntimeError(f"the feed failed: {feed.error}")
        if ingester.error is not None:
            raise RuntimeError(f"the L1 ingester failed: {ingester.error}")
        dead = workers.dead()
        if dead:
            raise RuntimeError(f"replay worker {dead[0]} exited: {workers.tail(dead[0])}")

    with bars.running():
        ingester.start()
        fanout_thread.start()
        setup_s = time.monotonic() - started
        run_start = time.monotonic()
        cpu_start = time.process_time()
        feed.start()
        try:
            watch(progress, bars=bars, fed=lambda: len(feed.emitted), check=check,
                  finished=feed.finished.is_set, timeout_s=options.timeout_s,
                  what=f"the {label}")
            run_s = time.monotonic() - run_start
            cpu_s = time.process_time() - cpu_start + workers.cpu_seconds()
        finally:
            stop.set()
            feed.join(timeout=30)
            workers.stop()
            fanout_thread.join(timeout=30)
            ingester.stop()
            producer.flush(5)
            progress.close()
    # the workers' local repos are scratch (copies of calibrations, templates, outputs):
    # ~2.3 GB for the default night
    shutil.rmtree(root / "local", ignore_errors=True)
    statuses = by_group(progress)
    errors = [f"{s.group_id}/{s.detector}: {s.reason}: {s.message}"
              for s in statuses.values() if not s.ok]
    expected_alerts = sum(s.n_alerts for s in statuses.values() if s.ok)
    alerts, ids, differing = collect_alerts(cfg, expected_alerts)
    return NightRunResult(
        run_id=run_id, root=root, l1db_url=cfg.l1db_url, alert_topic=cfg.kafka.alert_topic,
        alerts=alerts, alert_ids=ids, statuses=statuses, schedule=feed.report,
        setup_s=setup_s, run_s=run_s, total_s=time.monotonic() - started, cpu_s=cpu_s,
        errors=errors, duplicates_differing=differing)


def by_group(progress: NightProgress) -> dict[tuple[str, int], Any]:
    """The night's status records keyed as a recording names them: (groupId, detector)."""
    return {(s.group_id, s.detector): s
            for s in [*progress.refused, *progress.statuses.values()]}


def collect_alerts(config: Config, expected: int, *, timeout_s: float = 120.0,
                   visits: Collection[int] | None = None
                   ) -> tuple[list[tuple[bytes | None, bytes, int | None]], list[int], list[int]]:
    """Every alert on the run's alert topic (of ``visits`` only, when given: a shared
    deployment's topic holds others), one per diaSourceId (a re-processed item publishes the
    same alerts again), sorted by diaSourceId; also ids whose copies differ. Messages that
    are not alertbutler alerts are skipped and counted in the log; a topic not read to its
    end within ``timeout_s`` is an error, not a silently shorter list."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from alertbutler.alerts import AlertFormatError, decode_message

    topic = config.kafka.alert_topic
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers,
                         "group.id": f"alertbutler-replay-collect-{os.getpid()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 3, **config.kafka.client})
    found: dict[int, tuple[bytes | None, bytes, int | None]] = {}
    differing: list[int] = []
    wanted = None if visits is None else set(visits)
    foreign = 0
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                err = msg.error()
                if err:
                    if err.code() == -191:  # _PARTITION_EOF
                        at_end.add(placed(msg)[1])
                    continue
                _, partition, _ = placed(msg)
                at_end.discard(partition)
                value = value_of(msg)
                try:
                    decoded = decode_message(value)
                except AlertFormatError:
                    foreign += 1
                    continue
                if decoded.kind != "alert" or (
                        wanted is not None
                        and int(decoded.record["diaSource"]["visit"]) not in wanted):
                    continue
                ident = int(decoded.record["diaSourceId"])
                if ident in found:
                    if found[ident][1] != value:
                        differing.append(ident)
                    continue
                found[ident] = (msg.key(), value, msg.timestamp()[1])
            if len(found) >= expected and at_end >= set(parts):
                break
        else:
            raise ReplayError(f"could not read {topic} to its end within {timeout_s:.0f} s "
                              f"({len(found)} of {expected} alerts found): the comparison "
                              "would be partial")
    finally:
        consumer.close()
    if foreign:
        log.warning("skipped messages that are not alertbutler alerts",
                    extra={"topic": topic, "count": foreign})
    ids = sorted(found)
    return [found[i] for i in ids], ids, differing


def l1db_fingerprint(url: str) -> dict[str, dict[str, Any]]:
    """Row count and a sha256 of every catalog table's rows in key order (no bookkeeping)."""
    import sqlalchemy as sa

    from alertbutler.l1db.schema import CATALOG

    engine = sa.create_engine(url)
    out: dict[str, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            for table, (columns, key) in CATALOG.items():
                names = ", ".join(f'"{c.name}"' for c in columns)
                order = ", ".join(f'"{k}"' for k in key)
                digest = hashlib.sha256()
                count = 0
                for row in conn.execute(sa.text(f'SELECT {names} FROM "{table}" '
                                                f"ORDER BY {order}")):
                    digest.update(repr(tuple(row)).encode())
                    count += 1
                out[table] = {"rows": count, "sha256": digest.hexdigest()}
    finally:
        engine.dispose()
    return out
