"""A small process supervisor: start services, restart the ones that crash, stop them all.

Each replica is a separate ``python -m alertbutler VERB ...`` process, owned by the supervisor
(it dies if the supervisor is SIGKILLed). A crashed replica is restarted with a capped
exponential backoff; its Kafka work is redelivered by the consumer group because services
commit offsets only after their effects are durable. Stopping sends SIGTERM so services can
finish or hand back work in flight, then SIGKILL after a grace period.

Liveness (:meth:`Supervisor.probe`): a replica whose ``/healthz`` fails for
``liveness_timeout`` seconds after it was healthy once (its loop stopped turning, or the
process is stopped or wedged so it does not answer at all) is SIGKILLed and restarted, so a
hung worker's item is redelivered like a crashed one's. A service's ``/healthz`` goes stale
after 120 s without a loop turn (:class:`alertbutler.metrics.Health`), which makes that the
deadline of one work item under ``alertbutler up``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alertbutler.config import REPLICA_ENV, without_settings
from alertbutler.procs import spawn_owned, stop_group

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One service of the topology: the CLI verb and its arguments, how many replicas."""

    name: str
    argv: tuple[str, ...]
    replicas: int = 1
    metrics: bool = True  # the verb accepts --metrics-port


@dataclass(kw_only=True)
class Replica:
    """A running (or restarting) process of one service."""

    spec: ServiceSpec
    index: int
    metrics_port: int | None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    last_exit: int | None = None
    next_start: float = 0.0
    history: list[int] = field(default_factory=list)
    #: liveness: the replica answered /healthz since it started; since when it has not
    healthy_once: bool = False
    unhealthy_since: float | None = None
    killed_unhealthy: int = 0

    @property
    def label(self) -> str:
        if self.spec.replicas == 1 and self.index == 0:
            return self.spec.name
        return f"{self.spec.name}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None


class Supervisor:
    """Runs every replica of every service until :meth:`stop`.

    Each replica's environment is ``env`` over this process's, less its ``ALERTBUTLER_*``
    settings: ``env`` says the configuration (``ALERTBUTLER_CONFIG``, or settings one by one).
    """

    def __init__(self, specs: Sequence[ServiceSpec], *, env: Mapping[str, str],
                 log_dir: Path, base_port: int | None = None, max_backoff: float = 10.0,
                 python: str = sys.executable, liveness_timeout: float | None = 30.0,
                 liveness_interval: float = 5.0) -> None:
        self.env = dict(env)
        #: a replica whose /healthz fails (stale loop, or no answer: hung, stopped) this long
        #: after it was once healthy is SIGKILLed and restarted; its work is redelivered
        self.liveness_timeout = liveness_timeout
        self.liveness_interval = liveness_interval
        self._last_probe = 0.0
        self.log_dir = log_dir
        self.max_backoff = max_backoff
        self.python = python
        self.replicas: list[Replica] = []
        port = base_port
        for spec in specs:
            for i in range(spec.replicas):
                mport = None
                if spec.metrics and port is not None:
                    mport, port = port, port + 1
                self.replicas.append(Replica(spec=spec, index=i, metrics_port=mport))
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def command(self, replica: Replica) -> list[str]:
        argv = [self.python, "-m", "alertbutler", *replica.spec.argv]
        if replica.metrics_port is not None:
            argv += ["--metrics-port", str(replica.metrics_port)]
        return argv

    def _start(self, replica: Replica) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{replica.label}.log", "ab")  # noqa: SIM115 - child owns it
        env = {**without_settings(), **self.env, REPLICA_ENV: replica.label}
        replica.proc = spawn_owned(self.command(replica), stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out, env=env)
        out.close()
        replica.started_at = time.monotonic()
        replica.healthy_once, replica.unhealthy_since = False, None
        log.info("service started", extra={"service": replica.label, "pid": replica.proc.pid})

    def start(self) -> Supervisor:
        with self._lock:
            for replica in self.replicas:
                self._start(replica)
        return self

    def poll(self) -> list[Replica]:
        """Restart replicas that exited while not stopping; returns those restarted now."""
        restarted: list[Replica] = []
        now = time.monotonic()
        with self._lock:
            if self._stopping.is_set():
                return restarted
            for replica in self.replicas:
                proc = replica.proc
                if proc is not None and proc.poll() is None:
                    continue
                if proc is not None:  # it just exited: schedule a restart with backoff
                    replica.last_exit = proc.returncode
                    replica.history.append(proc.returncode)
                    replica.proc = None
                    quick = now - replica.started_at < 5.0
                    backoff = min(self.max_backoff, 0.5 * 2 ** min(replica.restarts, 5)) \
                        if quick else 0.5
                    replica.next_start = now + backoff
                    log.warning("service exited; restarting",
                                extra={"service": replica.label, "code": proc.returncode,
                                       "backoff_s": backoff})
                    continue
                if now >= replica.next_start:
                    replica.restarts += 1
                    self._start(replica)
                    restarted.append(replica)
        return restarted

    def scale(self, name: str, replicas: int) -> list[Replica]:
        """Start more replicas of service ``name`` (up to ``replicas`` in all); returns the
        new ones. Consumer-group services rebalance: the newcomers take partitions as soon
        as they join, the others finish the item they hold first."""
        current = [r for r in self.replicas if r.spec.name == name]
        if not current:
            raise ValueError(f"no service named {name!r}")
        if replicas < len(current):
            raise ValueError(f"{name}: scaling down is a SIGTERM of a replica, not scale()")
        spec = dataclasses.replace(current[0].spec, replicas=replicas)
        used = [r.metrics_port for r in self.replicas if r.metrics_port is not None]
        added: list[Replica] = []
        with self._lock:
            for index in range(len(current), replicas):
                port = None
                if spec.metrics and used:
                    port = _free_port_after(max(used))
                    used.append(port)
                replica = Replica(spec=spec, index=index, metrics_port=port)
                position = self.replicas.index(current[-1]) + 1 + len(added)
                self.replicas.insert(position, replica)
                self._start(replica)
                added.append(replica)
        return added

    def probe(self) -> list[Replica]:
        """Liveness: SIGKILL replicas whose /healthz failed for ``liveness_timeout`` seconds
        after they were healthy once (the next :meth:`poll` restarts them)."""
        now = time.monotonic()
        if self.liveness_timeout is None or now - self._last_probe < self.liveness_interval:
            return []
        self._last_probe = now
        killed = []
        for replica in list(self.replicas):
            pid = replica.pid
            if pid is None or replica.metrics_port is None or self._stopping.is_set():
                continue
            if _healthy(replica.metrics_port):
                replica.healthy_once, replica.unhealthy_since = True, None
                continue
            if not replica.healthy_once:
                continue  # still starting
            replica.unhealthy_since = replica.unhealthy_since or now
            if now - replica.unhealthy_since >= self.liveness_timeout:
                log.error("service unhealthy: killing it for a restart",
                          extra={"service": replica.label, "pid": pid,
                                 "unhealthy_s": round(now - replica.unhealthy_since)})
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                replica.killed_unhealthy += 1
                replica.healthy_once, replica.unhealthy_since = False, None
                killed.append(replica)
        return killed

    def kill(self, label: str, sig: int) -> int | None:
        """Send a signal to one replica (chaos tests, operators); returns the pid signalled."""
        for replica in self.replicas:
            if replica.label == label and replica.pid:
                os.kill(replica.pid, sig)
                return replica.pid
        return None

    def stop(self, *, grace: float = 30.0) -> None:
        """Stop services in topology order (inputs first, so work in flight drains downstream):
        SIGTERM each service's replicas, wait for them, then the next service; whatever is
        still running when ``grace`` seconds have passed in all is SIGKILLed."""
        self._stopping.set()
        deadline = time.monotonic() + grace
        with self._lock:
            order: list[str] = []
            for replica in self.replicas:
                if replica.spec.name not in order:
                    order.append(replica.spec.name)
            for name in order:
                procs = [r.proc for r in self.replicas
                         if r.spec.name == name and r.proc is not None]
                for proc in procs:
                    if proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
                for proc in procs:  # signal 0: wait only; a second SIGTERM could land
                    # in the interpreter's finalisation, where it kills (exit -15)
                    stop_group(proc, grace=max(0.1, deadline - time.monotonic()), sig=0)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0) as r:
            return bool(r.status == 200)
    except OSError:  # refused, timed out (a stopped process), or HTTP 503 (stale loop)
        return False


def _free_port_after(port: int) -> int:
    import socket

    for candidate in range(port + 1, 65536):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise OSError(f"no free port after {port}")
