"""The supervisor restarts crashed services and stops all of them, leaving no process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from alertbutler.deploy import ServiceSpec, Supervisor
from alertbutler.testing import pid_alive


def _wait(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_restart_after_sigkill_and_clean_stop(tmp_path: Path) -> None:
    # `alertbutler broker` is a long-running verb that exits 0 on SIGTERM: a real service.
    spec = ServiceSpec(name="broker", argv=("broker",), replicas=2, metrics=False)
    sup = Supervisor([spec], env={}, log_dir=tmp_path / "logs").start()
    try:
        assert [r.label for r in sup.replicas] == ["broker-0", "broker-1"]
        logs = tmp_path / "logs"

        def _ready(label: str, n: int = 1) -> bool:
            path = logs / f"{label}.log"
            return path.exists() and path.read_text().count("Ctrl-C") >= n

        # let every process reach its loop (a SIGTERM during interpreter start-up is fatal)
        assert _wait(lambda: _ready("broker-0") and _ready("broker-1"))
        first = sup.replicas[0].pid
        assert first is not None
        sup.poll()
        assert sup.kill("broker-0", signal.SIGKILL) == first, (
            [(r.label, r.history) for r in sup.replicas], (logs / "broker-0.log").read_text())
        assert _wait(lambda: bool(sup.poll()) or sup.replicas[0].restarts > 0)
        assert _wait(lambda: sup.replicas[0].pid is not None)
        assert sup.replicas[0].pid != first
        assert sup.replicas[0].history == [-signal.SIGKILL]
        assert sup.replicas[1].restarts == 0
        assert _wait(lambda: _ready("broker-0", 2))
    finally:
        pids = [r.pid for r in sup.replicas if r.pid]
        sup.stop(grace=15)
    assert pids and not any(pid_alive(p) for p in pids)
    codes = [r.proc.returncode for r in sup.replicas if r.proc is not None]
    assert codes == [0, 0], (codes, [(r.history, r.restarts) for r in sup.replicas])
    assert (tmp_path / "logs" / "broker-0.log").exists()


def test_a_stopped_service_is_killed_and_restarted(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Liveness: SIGSTOP (a wedged process: no loop turn, no HTTP answer) -> SIGKILL, restart."""
    import uuid

    from alertbutler.deploy.up import free_port_block

    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    spec = ServiceSpec(name="ingest", argv=(
        "ingest", "--assign-all", "--create-db", "--topic", topic,
        "--db", f"sqlite:///{tmp_path / 'l1.sqlite3'}"))
    env = {"ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
           "ALERTBUTLER_GENERAL__DATA_DIR": str(tmp_path)}
    from alertbutler.kafka import create_topics

    create_topics(kafka_bootstrap, {topic: 1})
    sup = Supervisor([spec], env=env, log_dir=tmp_path / "logs", base_port=free_port_block(1),
                     liveness_timeout=3.0, liveness_interval=0.5).start()
    replica = sup.replicas[0]
    try:
        def _probe_until(cond) -> bool:  # type: ignore[no-untyped-def]
            return _wait(lambda: bool(sup.probe() or sup.poll() or True) and cond(), 120)

        assert _probe_until(lambda: replica.healthy_once), (tmp_path / "logs" / "ingest.log") \
            .read_text()[-2000:]
        first = replica.pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)
        assert _probe_until(lambda: replica.restarts == 1 and replica.pid is not None)
        assert replica.killed_unhealthy == 1
        assert replica.history == [-signal.SIGKILL]
        assert replica.pid != first
        assert _probe_until(lambda: replica.healthy_once)  # the new process is healthy
    finally:
        sup.stop(grace=15)
    assert not pid_alive(first)
