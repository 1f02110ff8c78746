"""The main job (``alertbutler run``): a simulated night through the whole chain.

Embedded defaults: an embedded Kafka-protocol broker, a SQLite L1 database and repositories
under ``<data_dir>/mainjob``. The parts run as they would in production, only closer
together, and are the ones every night runner uses (:mod:`alertbutler.night`): the ingester
an asyncio task in a thread of this process, the fan-out a thread, the workers ``alertbutler
worker`` processes (one consumer group) given the whole effective configuration
(``<data_dir>/mainjob/effective-config.toml``), and a driver thread plays the observatory
(nextVisit events, then raws landing). Progress comes from the status topic and the L1
database; the job ends when every visit-detector has a status and is completely ingested,
then writes the report.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alertbutler.config import Config
from alertbutler.night.config import hand_off, night_config
from alertbutler.night.ingester import IngesterThread
from alertbutler.night.plan import SimulatedNight
from alertbutler.night.progress import NightProgress
from alertbutler.night.summary import MainJobResult, print_summary, summarize
from alertbutler.night.watch import ProgressBars, watch
from alertbutler.night.workers import WorkerPool
from alertbutler.prompt.driver import Faults, NightDriver

__all__ = ["MainJobOptions", "MainJobResult", "print_summary", "run_main_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MainJobOptions(SimulatedNight):
    """What night to simulate (:class:`SimulatedNight`) and how to run it."""

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


def run_main_job(config: Config, options: MainJobOptions | None = None) -> MainJobResult:
    """Simulate a night, run it through every service, report; see the module doc."""
    from alertbutler.alerts.registry import registry_in_use
    from alertbutler.kafka import kafka_session

    options = options or MainJobOptions()
    root = Path(config.data_dir).resolve() / "mainjob"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    registry = config.schema_registry
    with kafka_session(config) as bootstrap, registry_in_use(registry.url, registry.client):
        return _run(night_config(config, root, bootstrap, l1db_url=config.l1db.url or None),
                    options, root)


def _worker_argv(options: MainJobOptions) -> Callable[[int], list[str]]:
    def argv(i: int) -> list[str]:
        command = [sys.executable, "-m", "alertbutler", "--log-level", "INFO", "worker",
                   "--name", f"worker-{i}", *options.camera_args]
        return command if options.write_outputs else [*command, "--no-outputs"]
    return argv


def _run(config: Config, options: MainJobOptions, root: Path) -> MainJobResult:
    from alertbutler.faults import CRASH_ENV
    from alertbutler.l1db import L1db
    from alertbutler.prompt.central import build_central_repo
    from alertbutler.prompt.fanout import FanoutService
    from alertbutler.prompt.geometry import CameraGeometry
    from alertbutler.prompt.kafka_io import make_producer
    from alertbutler.prompt.service_support import ensure_topics

    started = time.time()
    sim = options.simulator()
    camera = sim.camera
    geometry = CameraGeometry(camera)
    expected = {(v.visit, d) for v in sim.visits for d in camera.detectors}
    bars = ProgressBars.for_night(options.progress, ("visits announced", len(sim.visits)),
                                  len(expected),
                                  first={"setup": ("central repo + services", 1)})
    bootstrap = config.kafka.bootstrap_servers
    stop = threading.Event()
    with bars.running():
        ensure_topics(config, bootstrap)
        L1db.create(config.l1db_url).close()
        progress = NightProgress(config, expected)
        mark = root / "crash-mark.json"
        env = hand_off(config, root)
        env.pop(CRASH_ENV, None)
        if options.crash_at:
            env[CRASH_ENV] = f"{options.crash_at}@{mark}"
        workers = WorkerPool(_worker_argv(options), options.workers, env=env,
                             log_dir=root / "logs")
        build_central_repo(Path(config.butler.central_repo), sim)
        ingester = IngesterThread(config, group=f"{config.ingest.group}-"
                                                f"{config.kafka.alert_topic}")
        ingester.start()
        fanout = FanoutService(config, bootstrap, known_detectors=geometry.detectors,
                               history=geometry.history())
        fanout_thread = threading.Thread(target=fanout.run, args=(stop,), name="fanout",
                                         daemon=True)
        fanout_thread.start()
        bars.update("setup", 1, f"{time.time() - started:.0f} s")
        producer = make_producer(config, bootstrap)
        driver = NightDriver(sim=sim, producer=producer, topic=config.kafka.next_visit_topic,
                             landing=Path(config.prompt.landing_dir),
                             cadence_s=options.cadence_s, lead_s=options.lead_s,
                             faults=options.faults, stop=stop)
        driver.start()

        def check() -> None:
            if driver.error is not None:
                raise RuntimeError(f"the night driver failed: {driver.error}")
            if ingester.error is not None:
                raise RuntimeError(f"the ingester failed: {ingester.error}")

        try:
            watch(progress, bars=bars, fed=lambda: len(driver.log.announced), check=check,
                  finished=lambda: True, timeout_s=options.timeout_s, what="the night",
                  interval_s=0.25)
        finally:
            stop.set()
            workers.stop()
            fanout_thread.join(timeout=30)
            ingester.stop()
            producer.flush(5)
            progress.close()
    killed = workers.crashed(mark)
    return summarize(config=config, sim=sim, root=root, monitor=progress, driver=driver,
                     started=started, killed=killed,
                     facts={"seed": options.seed, "detectors": options.n_detectors,
                            "detector_size": options.detector_size,
                            "workers": options.workers})
