"""``alertbutler up``: the whole topology as supervised local processes.

What it does, in order:

1. Kafka: the configured ``kafka.bootstrap_servers``, else a broker of ``--engine`` owned by
   this process (it dies with it, even on SIGKILL): the embedded one (the default), or Apache
   Kafka with its data in ``<root>/kafka``. A broker that dies is started again on the same
   port and data directory (:mod:`alertbutler.deploy.broker`);
2. the topics (next-visit, work, alerts, dead-letter, status), the L1 database (SQLite under
   ``data_dir`` or ``--l1db-url``) and the central butler repo: with ``--night``, filled from
   the simulated night's calibrations and templates; otherwise an existing one, or an empty
   one with the dataset types registered (something else fills it: a recording, a real repo);
3. the services of :mod:`alertbutler.deploy.topology` under the :class:`Supervisor`, each with
   its ``--metrics-port`` and the whole effective configuration handed down as
   ``<root>/effective-config.toml`` (:mod:`alertbutler.night.config`, as ``run`` and
   ``night replay`` hand theirs to their workers);
4. with ``--night``, the observatory (:class:`alertbutler.deploy.feed.NightFeed`) plays the
   night into the deployment once every service is ready.

Once the services are started, ``<data_dir>/up/deployment.json``
(:mod:`alertbutler.deploy.state`) says where the broker, topics, landing area, central repo and
L1 database are, so another process can feed the deployment (``alertbutler night replay
RECORDING --into <data_dir>``); it is removed when ``up`` stops.

The loop restarts crashed services (and the broker) and renders the live view; SIGTERM or
Ctrl-C stops the
services in topology order (each finishes or hands back its work in flight), then the broker.
With ``--night`` every run uses a fresh ``<data_dir>/up`` directory (repos, L1 DB, landing).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertbutler.config import Config
from alertbutler.deploy.broker import SupervisedBroker
from alertbutler.deploy.feed import NightFeed, NightPlan
from alertbutler.deploy.state import (
    DeploymentNotFoundError,
    DeploymentState,
    find_state,
    state_fields,
    state_path,
)
from alertbutler.deploy.supervisor import Replica, Supervisor
from alertbutler.deploy.topology import topology
from alertbutler.errors import AlertbutlerError
from alertbutler.night.config import hand_off, night_config
from alertbutler.night.progress import NightProgress

log = logging.getLogger(__name__)



class DeploymentRunningError(AlertbutlerError, RuntimeError):
    """Another ``alertbutler up`` already runs on this data directory."""


@dataclass(frozen=True, kw_only=True)
class UpOptions:
    """How ``alertbutler up`` runs."""

    workers: int = 2
    l1db_url: str | None = None
    filters: Path | None = None
    live: bool = True
    #: first metrics port (replicas take consecutive ports); None: a free block from 9100
    base_port: int | None = None
    #: a simulated night to play once the services are ready
    night: NightPlan | None = None
    #: stop by itself once the night is processed and ingested (tests, benchmarks)
    exit_when_done: bool = False
    timeout_s: float | None = None
    grace_s: float = 30.0
    worker_args: tuple[str, ...] = ()
    #: camera geometry of the fan-out and workers without a night (None: the camera's own);
    #: a night's plan sets its own
    n_detectors: int | None = None
    detector_size: int | None = None
    #: the broker started when ``kafka.bootstrap_servers`` is empty: "embedded" or "kafka"
    #: (None: ``kafka.engine``)
    engine: str | None = None

    @property
    def camera_args(self) -> tuple[str, ...]:
        """``--detectors N --detector-size PX`` for the fan-out and the workers."""
        if self.night is not None:
            return self.night.camera_args
        args: tuple[str, ...] = ()
        if self.n_detectors is not None:
            args += ("--detectors", str(self.n_detectors))
        if self.detector_size is not None:
            args += ("--detector-size", str(self.detector_size))
        return args


def free_port_block(n: int, start: int = 9100, host: str = "127.0.0.1") -> int:
    """The first port of ``n`` consecutive ports nothing listens on, from ``start``."""
    port = start
    while port + n < 65536:
        for i in range(n):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port + i))
                except OSError:
                    port += i + 1
                    break
        else:
            return port
    raise OSError(f"no {n} consecutive free ports from {start}")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1.0) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class Deployment:
    """One ``alertbutler up``: prepare, start, supervise, stop (see the module doc)."""

    def __init__(self, config: Config, options: UpOptions) -> None:
        self.options = options
        self.base_config = config
        self.root = (config.data_dir / "up" if options.night else config.data_dir).resolve()
        self.broker: SupervisedBroker | None = None
        self.config = config
        self.supervisor: Supervisor | None = None
        self.feed: NightFeed | None = None
        self.progress: NightProgress | None = None
        self.sim: Any = None
        self._producer: Any = None
        self._stop_feed = threading.Event()
        self._more_workers = 0  # asked for by SIGUSR1, started by the loop

    # -- start ------------------------------------------------------------------------------
    def _refuse_if_running(self) -> None:
        """Two deployments on one data directory would wipe (``--night``) or hide (the
        state file) each other's: refuse the second."""
        try:
            running = find_state(self.base_config.data_dir)
        except DeploymentNotFoundError:
            return  # none, or a stale file from a deployment that was killed
        if running.pid != os.getpid():  # this process's own file is a leftover
            raise DeploymentRunningError(
                f"another alertbutler up (pid {running.pid}) runs on "
                f"{self.base_config.data_dir}: stop it first, or give this one another "
                "general.data_dir")

    def prepare(self) -> Deployment:
        """Broker, effective configuration, topics, L1 database and central repo."""
        from alertbutler.l1db import L1db
        from alertbutler.prompt.service_support import ensure_topics

        self._refuse_if_running()
        if self.options.night and self.root.exists():
            shutil.rmtree(self.root)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        bootstrap = self.base_config.kafka.bootstrap_servers
        if not bootstrap:
            engine = self.options.engine or self.base_config.kafka.engine
            self.broker = SupervisedBroker(
                engine, data_dir=self.root / "kafka" if engine == "kafka" else None,
                log_file=self.root / "logs" / "broker.log",
                on_restart=lambda address: ensure_topics(self.config, address)).start()
            bootstrap = self.broker.bootstrap
        self.config = self._effective(bootstrap)
        ensure_topics(self.config, bootstrap)
        L1db.create(self.config.l1db_url).close()
        self._central_repo()
        return self

    def _effective(self, bootstrap: str) -> Config:
        """The night runner's configuration (:func:`alertbutler.night.config.night_config`):
        with ``--night`` a fresh one under ``<data_dir>/up``, else the configured repos."""
        fresh = self.options.night is not None
        return night_config(self.base_config, self.root, bootstrap, fresh=fresh,
                            l1db_url=self.options.l1db_url
                            or (None if fresh else self.base_config.l1db_url))

    def _central_repo(self) -> None:
        from alertbutler.butler import Butler
        from alertbutler.prompt.central import build_central_repo, register_types

        central = self.config.central_repo
        if self.options.night is not None:
            self.sim = self.options.night.simulator()
            started = time.monotonic()
            build_central_repo(central, self.sim)
            log.info("central repo built from the simulated night",
                     extra={"repo": str(central), "seconds": round(time.monotonic() - started)})
        elif not (central / "butler.yaml").exists():
            with Butler.create(central) as butler:
                register_types(butler)
            log.info("created an empty central repo", extra={"repo": str(central)})

    def child_env(self) -> dict[str, str]:
        """What every service gets: the whole effective configuration, settings given in
        code included (a benchmark's or a test's timeouts), as ``effective-config.toml``
        (:func:`alertbutler.night.config.hand_off`)."""
        return hand_off(self.config, self.root)

    def start(self) -> Deployment:
        """Start every service (after :meth:`prepare`)."""
        specs = topology(workers=self.options.workers, filters=self.options.filters,
                         camera_args=self.options.camera_args,
                         worker_args=self.options.worker_args)
        n_ports = sum(s.replicas for s in specs if s.metrics)
        base = self.options.base_port or free_port_block(n_ports)
        self.supervisor = Supervisor(specs, env=self.child_env(), log_dir=self.root / "logs",
                                     base_port=base).start()
        if self.sim is not None:
            expected = {(v.visit, d) for v in self.sim.visits for d in self.sim.camera.detectors}
            self.progress = NightProgress(self.config, expected, l1_every_s=0.5)
        self.write_state()
        return self

    @property
    def state_file(self) -> Path:
        """``<data_dir>/up/deployment.json``: where feeders find this deployment."""
        return state_path(self.base_config.data_dir).resolve()

    def write_state(self) -> Path:
        """Tell feeders (``alertbutler night replay --into``) where everything is."""
        o = self.options
        plan = o.night
        state = DeploymentState(**state_fields(
            self.config, pid=os.getpid(), started_at=time.time(),
            data_dir=str(self.root), camera="simcam",
            n_detectors=plan.n_detectors if plan else o.n_detectors,
            detector_size=plan.detector_size if plan else o.detector_size,
            metrics_ports={r.label: r.metrics_port for r in self.replicas if r.metrics_port}))
        path = state.write(self.state_file)
        log.info("deployment state written", extra={"file": str(path)})
        return path

    def _remove_state(self) -> None:
        try:
            if DeploymentState.read(self.state_file).pid == os.getpid():
                self.state_file.unlink()
        except (DeploymentNotFoundError, OSError):
            pass

    @property
    def replicas(self) -> list[Replica]:
        return self.supervisor.replicas if self.supervisor else []

    def wait_ready(self, timeout: float = 180.0) -> bool:
        """True once every replica answers ``/readyz`` with 200 (restarting crashed ones)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.supervisor is not None
            self.supervisor.poll()
            if self.broker is not None:
                self.broker.poll()
            if all(r.metrics_port and _ready(r.metrics_port) for r in self.replicas):
                return True
            time.sleep(0.5)
        return False

    def start_feed(self) -> NightFeed:
        """Play the simulated night into the deployment (needs ``--night``)."""
        from alertbutler.prompt.kafka_io import make_producer

        if self.options.night is None or self.sim is None:
            raise ValueError("no night to feed: start the deployment with a NightPlan")
        self._producer = make_producer(self.config, self.config.kafka.bootstrap_servers)
        self.feed = NightFeed(self.options.night, self.sim, producer=self._producer,
                              topic=self.config.kafka.next_visit_topic,
                              landing=Path(self.config.prompt.landing_dir),
                              stop=self._stop_feed)
        self.feed.start()
        return self.feed

    def scale_workers(self, n: int) -> list[Replica]:
        """Run ``n`` workers in all (more only): the work topic's group rebalances."""
        assert self.supervisor is not None
        added = self.supervisor.scale("worker", n)
        for replica in added:
            log.info("worker added", extra={"service": replica.label,
                                            "metrics_port": replica.metrics_port})
        if added:
            self.write_state()  # the new metrics ports
        return added

    def request_worker(self) -> None:
        """One more worker at the next loop turn (safe from a signal handler)."""
        self._more_workers += 1

    # -- run --------------------------------------------------------------------------------
    def step(self) -> None:
        """One turn of the loop: restart what crashed, read the night's progress."""
        assert self.supervisor is not None
        if self._more_workers:
            n, self._more_workers = self._more_workers, 0
            self.scale_workers(sum(r.spec.name == "worker" for r in self.replicas) + n)
        if self.broker is not None:
            self.broker.poll()  # first: the services reconnect to it by themselves
        self.supervisor.probe()
        for replica in self.supervisor.poll():
            log.warning("service restarted", extra={"service": replica.label,
                                                    "restarts": replica.restarts})
        if self.progress is not None:
            self.progress.poll()
        if self.feed is not None and self.feed.error is not None:
            raise RuntimeError(f"the night feed failed: {self.feed.error}")

    def night_done(self) -> bool:
        return (self.progress is not None and self.feed is not None
                and self.feed.finished.is_set() and self.progress.done())

    def run(self, stop: threading.Event) -> int:
        """Supervise until ``stop`` (or the night is done, with ``exit_when_done``)."""
        from alertbutler.deploy.live import LiveView

        view = LiveView(self.replicas, progress=self.progress)
        deadline = (time.monotonic() + self.options.timeout_s
                    if self.options.timeout_s else None)
        live: Any = None
        if self.options.live:
            from rich.live import Live

            live = Live(view.render(), refresh_per_second=2, transient=False)
            live.start()
        last_line = 0.0
        try:
            if self.options.night is not None and self.feed is None:
                while not stop.is_set() and not self.wait_ready(timeout=1.0):
                    if live is not None:
                        live.update(view.render())
                    if deadline and time.monotonic() > deadline:
                        raise TimeoutError("services not ready before the timeout")
                if not stop.is_set():
                    self.start_feed()
            while not stop.wait(1.0):
                self.step()
                if live is not None:
                    live.update(view.render())
                elif time.monotonic() - last_line > 10:
                    last_line = time.monotonic()
                    log.info("up", extra=view.line())
                if self.options.exit_when_done and self.night_done():
                    log.info("night done", extra=self.progress.summary() if self.progress
                             else {})
                    break
                if deadline and time.monotonic() > deadline:
                    raise TimeoutError(f"not done within {self.options.timeout_s:.0f} s")
        finally:
            if live is not None:
                live.update(view.render())
                live.stop()
        return 0

    # -- stop -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Feed first, then services in topology order, then the broker."""
        self._remove_state()
        self._stop_feed.set()
        if self.feed is not None:
            self.feed.join(timeout=30)
        if self.supervisor is not None:
            self.supervisor.stop(grace=self.options.grace_s)
        if self.progress is not None:
            self.progress.poll()
            self.progress.close()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None  # no reconnect attempts to a broker about to stop
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> Deployment:
        try:
            return self.prepare().start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
