"""The main job (``alertbutler run``): a simulated night through the whole chain.

Embedded defaults: an embedded Kafka-protocol broker, a SQLite L1 database and repositories
under ``<data_dir>/mainjob``. The parts run as they would in production, only closer
together: the ingester is an asyncio task in a thread of this process, the fan-out a thread,
the workers ``alertbutler worker`` processes (one consumer group), and a driver thread plays
the observatory (nextVisit events, then raws landing). Progress comes from the status topic
and the L1 database; the job ends when every visit-detector has a status and is completely
ingested, then writes the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertbutler.config import Config
from alertbutler.kafka.message import value_of
from alertbutler.prompt.driver import Faults, NightDriver
from alertbutler.prompt.status import VisitDetectorStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MainJobOptions:
    """What night to simulate and how to run it."""

    seed: int = 1
    n_visits: int = 6
    n_detectors: int = 4
    detector_size: int = 2048
    #: multiplies the density of static stars (small test detectors need more PSF stars)
    star_density_scale: float = 1.0
    workers: int = 2
    #: seconds between visits (a real night: ~37 s at Rubin, 15 min per field here) and
    #: between a nextVisit event and its raws (Rubin: >= 20 s), compressed to fit 5 minutes
    cadence_s: float = 20.0
    lead_s: float = 4.0
    progress: bool = True
    faults: Faults = field(default_factory=Faults)
    #: a crash point (``POINT[:N]``, :mod:`alertbutler.faults`) armed in every worker: the
    #: first worker to get there is SIGKILLed, once (e.g. ``prompt.alerts-acked``: its alerts
    #: are acknowledged and its item not committed, so another worker publishes them again)
    crash_at: str | None = None
    timeout_s: float = 600.0
    write_outputs: bool = True


@dataclass
class MainJobResult:
    summary: dict[str, Any]
    report: Path
    statuses: dict[tuple[int, int], VisitDetectorStatus]
    alerts: list[dict[str, Any]]
    #: the crash point struck (``crash_at``): the mark it left, with the killed worker's pid
    killed_worker: dict[str, Any] | None = None


def job_config(config: Config, root: Path, bootstrap: str) -> Config:
    """The configuration every part of this run uses: files under ``root``."""
    def section(name: str, **changes: Any) -> Any:
        return dataclasses.replace(getattr(config, name), **changes)

    return dataclasses.replace(
        config,
        general=section("general", data_dir=str(root)),
        kafka=section("kafka", bootstrap_servers=bootstrap),
        butler=section("butler", central_repo=str(root / "central"),
                       local_repo_root=str(root / "local")),
        l1db=section("l1db", url=config.l1db.url or f"sqlite:///{root / 'l1db.sqlite3'}"),
        prompt=section("prompt", landing_dir=str(root / "landing")),
    )


def _env(config: Config) -> dict[str, str]:
    """Environment overrides that hand this run's configuration to a child process."""
    k, p = config.kafka, config.prompt
    env = {
        "ALERTBUTLER_GENERAL__DATA_DIR": config.general.data_dir,
        "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "ALERTBUTLER_KAFKA__ALERT_TOPIC": k.alert_topic,
        "ALERTBUTLER_KAFKA__WORK_TOPIC": k.work_topic,
        "ALERTBUTLER_KAFKA__NEXT_VISIT_TOPIC": k.next_visit_topic,
        "ALERTBUTLER_KAFKA__DEAD_LETTER_TOPIC": k.dead_letter_topic,
        "ALERTBUTLER_KAFKA__PARTITIONS": str(k.partitions),
        "ALERTBUTLER_BUTLER__CENTRAL_REPO": config.butler.central_repo,
        "ALERTBUTLER_BUTLER__LOCAL_REPO_ROOT": config.butler.local_repo_root,
        "ALERTBUTLER_L1DB__URL": config.l1db.url,
        "ALERTBUTLER_PROMPT__STATUS_TOPIC": p.status_topic,
        "ALERTBUTLER_PROMPT__LANDING_DIR": p.landing_dir,
        "ALERTBUTLER_PROMPT__RAW_TIMEOUT_S": str(p.raw_timeout_s),
        "ALERTBUTLER_PROMPT__ASSOCIATION_WAIT_S": str(p.association_wait_s),
        # the workers publish with the registry's ids when one is configured
        "ALERTBUTLER_SCHEMA_REGISTRY__URL": config.schema_registry.url,
    }
    for key, value in config.schema_registry.client.items():  # basic.auth.user.info, ...
        env[f"ALERTBUTLER_SCHEMA_REGISTRY__CLIENT__{key.replace('.', '_').upper()}"] = value
    return {**os.environ, **env}


class _Ingester:
    """The L1 ingester as an asyncio task on a thread of its own."""

    def __init__(self, config: Config) -> None:
        from alertbutler.ingest.service import Ingester, IngestSettings
        from alertbutler.kafka import aiokafka_settings, confluent_settings, group_id

        bootstrap = config.kafka.bootstrap_servers
        self.ingester = Ingester(IngestSettings(
            topics=(config.kafka.alert_topic,), db_url=config.l1db_url,
            group=group_id(config, f"{config.ingest.group}-{config.kafka.alert_topic}"),
            dead_letter_topic=config.kafka.dead_letter_topic,
            aiokafka=aiokafka_settings(config, bootstrap),
            confluent=confluent_settings(config, bootstrap),
            max_batch_messages=config.ingest.max_batch_messages,
            max_batch_ms=config.ingest.max_batch_ms, assign_all=True))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="ingester", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.ingester.run())
        except BaseException as exc:
            self.error = exc
            log.exception("ingester failed")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.ingester.stop)
        self.thread.join(timeout=30)


class _Workers:
    """``alertbutler worker`` processes, logs under the run directory."""

    def __init__(self, config: Config, n: int, *, n_detectors: int, size: int,
                 write_outputs: bool, log_dir: Path, crash_at: str | None = None) -> None:
        from alertbutler.faults import CRASH_ENV
        from alertbutler.procs import COMPUTE_ENV, spawn_owned

        log_dir.mkdir(parents=True, exist_ok=True)
        self.logs = [log_dir / f"worker-{i}.log" for i in range(n)]
        self.procs: list[subprocess.Popen[Any]] = []
        env = {**_env(config), **COMPUTE_ENV}  # same alerts as a replay; memory reused
        env.pop(CRASH_ENV, None)
        if crash_at:
            env[CRASH_ENV] = crash_at
        for i in range(n):
            argv = [sys.executable, "-m", "alertbutler", "--log-level", "INFO", "worker",
                    "--name", f"worker-{i}", "--detectors", str(n_detectors),
                    "--detector-size", str(size)]
            if not write_outputs:
                argv.append("--no-outputs")
            out = open(self.logs[i], "ab")  # noqa: SIM115 - closed with the process
            self.procs.append(spawn_owned(argv, env=env, stdout=out, stderr=out,
                                          stdin=subprocess.DEVNULL))

    def crashed(self, mark: Path) -> dict[str, Any] | None:
        """The mark of a crash point that struck, checked against the worker it names (it
        must have died by SIGKILL); None when no crash point struck."""
        import signal

        from alertbutler.faults import crash_mark

        struck = crash_mark(mark)
        if struck is None:
            return None
        codes = {p.pid: p.returncode for p in self.procs}
        if codes.get(int(struck["pid"])) != -signal.SIGKILL:  # type: ignore[call-overload]
            raise RuntimeError(f"crash mark {struck} names no worker killed by SIGKILL "
                               f"(workers' exit codes {codes})")
        return struck

    def stop(self) -> None:
        from alertbutler.procs import stop_group

        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self.procs:
            stop_group(proc, grace=10)


class _Progress:
    """Live rich progress bars, or nothing."""

    def __init__(self, enabled: bool, n_visits: int, n_vd: int) -> None:
        self.bar: Any = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                            TimeElapsedColumn(), transient=False)
        self.tasks = {
            "setup": self.bar.add_task("central repo + services", total=1, note=""),
            "visits": self.bar.add_task("visits announced", total=n_visits, note=""),
            "vd": self.bar.add_task("visit-detectors processed", total=n_vd, note=""),
            "l1": self.bar.add_task("visit-detectors in L1 DB", total=n_vd, note=""),
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if self.bar is None:
            yield
            return
        with self.bar:
            yield

    def update(self, name: str, completed: float, note: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.tasks[name], completed=completed, note=note)


def run_main_job(config: Config, options: MainJobOptions | None = None) -> MainJobResult:
    """Simulate a night, run it through every service, report; see the module doc."""
    from alertbutler.kafka import kafka_session

    options = options or MainJobOptions()
    root = Path(config.data_dir).resolve() / "mainjob"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    from alertbutler.alerts.registry import registry_in_use

    registry = config.schema_registry
    with kafka_session(config) as bootstrap, registry_in_use(registry.url, registry.client):
        return _run(job_config(config, root, bootstrap), options, root)


def _run(config: Config, options: MainJobOptions, root: Path) -> MainJobResult:
    from alertbutler.l1db import L1db
    from alertbutler.prompt.central import build_central_repo
    from alertbutler.prompt.fanout import FanoutService
    from alertbutler.prompt.geometry import CameraGeometry
    from alertbutler.prompt.kafka_io import make_producer
    from alertbutler.prompt.service_support import ensure_topics
    from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator, SkyDensity

    started = time.time()
    camera = Camera(n_detectors=options.n_detectors, nx=options.detector_size,
                    ny=options.detector_size)
    density = SkyDensity(stars=SkyDensity().stars * options.star_density_scale)
    sim = Simulator(SimConfig(seed=options.seed, camera=camera, density=density,
                              night=NightConfig(n_visits=options.n_visits)))
    geometry = CameraGeometry(camera)
    expected = {(v.visit, d) for v in sim.visits for d in camera.detectors}
    progress = _Progress(options.progress, len(sim.visits), len(expected))
    bootstrap = config.kafka.bootstrap_servers
    stop = threading.Event()
    with progress.running():
        ensure_topics(config, bootstrap)
        L1db.create(config.l1db_url).close()
        monitor = _Monitor(config, expected)
        mark = root / "crash-mark.json"
        workers = _Workers(config, options.workers, n_detectors=options.n_detectors,
                           size=options.detector_size, write_outputs=options.write_outputs,
                           log_dir=root / "logs",
                           crash_at=f"{options.crash_at}@{mark}" if options.crash_at else None)
        build_central_repo(Path(config.butler.central_repo), sim)
        ingester = _Ingester(config)
        ingester.start()
        fanout = FanoutService(config, bootstrap, known_detectors=geometry.detectors,
                               history=geometry.history())
        fanout_thread = threading.Thread(target=fanout.run, args=(stop,), name="fanout",
                                         daemon=True)
        fanout_thread.start()
        progress.update("setup", 1, f"{time.time() - started:.0f} s")
        producer = make_producer(config, bootstrap)
        driver = NightDriver(sim=sim, producer=producer, topic=config.kafka.next_visit_topic,
                             landing=Path(config.prompt.landing_dir),
                             cadence_s=options.cadence_s, lead_s=options.lead_s,
                             faults=options.faults, stop=stop)
        driver.start()
        try:
            deadline = time.monotonic() + options.timeout_s
            while time.monotonic() < deadline:
                monitor.poll()
                progress.update("visits", len(driver.log.announced))
                progress.update("vd", len(monitor.statuses),
                                f"{monitor.n_errors} errors")
                progress.update("l1", len(monitor.ingested_at),
                                f"{monitor.n_alerts} alerts")
                if driver.error is not None:
                    raise RuntimeError(f"the night driver failed: {driver.error}")
                if ingester.error is not None:
                    raise RuntimeError(f"the ingester failed: {ingester.error}")
                if monitor.done():
                    break
                time.sleep(0.25)
            else:
                raise TimeoutError(f"the night did not finish within {options.timeout_s:.0f} s: "
                                   f"{len(monitor.statuses)} of {len(expected)} "
                                   "visit-detectors processed")
        finally:
            stop.set()
            workers.stop()
            fanout_thread.join(timeout=30)
            ingester.stop()
            producer.flush(5)
            monitor.close()
    killed = workers.crashed(mark)
    from alertbutler.prompt.summary import summarize

    return summarize(config=config, sim=sim, root=root, monitor=monitor, driver=driver,
                     started=started, killed=killed, options=options)


class _Monitor:
    """Reads the status topic and the L1 database's ingestion bookkeeping."""

    def __init__(self, config: Config, expected: set[tuple[int, int]]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from alertbutler.l1db import L1db

        self.expected = expected
        self.statuses: dict[tuple[int, int], VisitDetectorStatus] = {}
        self.refused: list[VisitDetectorStatus] = []
        self.ingested_at: dict[tuple[int, int], float] = {}
        self.l1db = L1db(config.l1db_url)
        self.consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers,
                                  "group.id": "alertbutler-mainjob-monitor",
                                  "enable.auto.commit": False, "log_level": 3,
                                  **config.kafka.client})
        self.consumer.assign([TopicPartition(config.prompt.status_topic, 0,
                                             OFFSET_BEGINNING)])
        self._lock = threading.Lock()
        self._last_l1 = 0.0

    @property
    def n_errors(self) -> int:
        return sum(1 for s in self.statuses.values() if not s.ok) + len(self.refused)

    @property
    def n_alerts(self) -> int:
        return sum(s.n_alerts for s in self.statuses.values() if s.ok)

    def poll(self) -> None:
        with self._lock:
            for msg in self.consumer.consume(500, timeout=0.1):
                if msg.error():
                    continue
                status = VisitDetectorStatus.from_json(value_of(msg))
                key = (int(status.visit or 0), status.detector)
                if key in self.expected:
                    self.statuses[key] = status
                else:
                    self.refused.append(status)
            if time.monotonic() - self._last_l1 > 0.2:
                self._last_l1 = time.monotonic()
                pending = [k for k in self.expected if k not in self.ingested_at]
                if pending:
                    now = time.time()
                    for vd in self.l1db.ingested(pending):
                        self.ingested_at[(vd.visit, vd.detector)] = now

    def done(self) -> bool:
        return set(self.statuses) >= self.expected and set(self.ingested_at) >= self.expected

    def close(self) -> None:
        self.consumer.close()
        self.l1db.close()


def _degraded_note(s: dict[str, Any]) -> str:
    n = s.get("visit_detectors_degraded_psf", 0)
    if not n:
        return ""
    return (f" ({n} ok with a fallback PSF model or kernel: completeness "
            f"{s['degraded_psf_completeness']}, purity {s['degraded_psf_purity']} there)")


def print_summary(result: MainJobResult) -> None:
    s = result.summary
    lines = [
        f"visits {s['visits']}, visit-detectors {s['visit_detectors_ok']} ok / "
        f"{s['visit_detectors_failed']} failed" + _degraded_note(s),
        f"alerts published {s['alerts_published']}, in the L1 database {s['alerts_in_l1db']}",
        f"latency raw -> Kafka ack p50 {s['latency_p50_s']} s, p98 {s['latency_p98_s']} s; "
        f"raw -> L1 DB p50 {s['latency_l1db_p50_s']} s, p98 {s['latency_l1db_p98_s']} s",
        f"completeness {s['completeness']} ({s['n_truth_bright_found']}/{s['n_truth_bright']} "
        f"injected variables+transients with difference S/N >= 10), purity {s['purity']}",
        f"astrometry rms {s['astrometry_rms_arcsec']} arcsec, photometry bias "
        f"{s['photometry_bias']}",
        f"wall time {s['wall_time_s']} s",
    ]
    for error in s.get("errors", [])[:10]:
        lines.append(f"error: {error}")
    print("\n".join(lines))
    print(json.dumps({k: s[k] for k in ("visits", "alerts_published", "alerts_in_l1db",
                                        "completeness", "purity", "latency_p50_s",
                                        "latency_p98_s")}))
    print(f"report: {result.report}")
