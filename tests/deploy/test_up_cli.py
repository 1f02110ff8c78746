"""``alertbutler up`` as a command: services come up ready, SIGTERM stops all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alertbutler.deploy.state import DeploymentState, state_path
from alertbutler.deploy.up import free_port_block
from alertbutler.testing import pid_alive

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_up_starts_every_service_and_sigterm_stops_them(tmp_path: Path) -> None:
    base = free_port_block(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBUTLER_")}
    env["ALERTBUTLER_GENERAL__DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertbutler", "up", "--workers", "1", "--no-live",
         "--base-port", str(base)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not all(_ready(base + i) for i in range(3)):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
            assert time.monotonic() < deadline, "services not ready in 240 s"
            time.sleep(1)
        children = _children(proc.pid)
        assert len(children) >= 4  # broker, fanout, worker, ingest
        state = DeploymentState.read(state_path(tmp_path))  # where feeders find it
        assert state.pid == proc.pid and state.alive
        assert state.metrics_ports == {"fanout": base, "worker": base + 1, "ingest": base + 2}
        assert Path(state.landing_dir) == tmp_path / "landing"
        second = subprocess.run([sys.executable, "-m", "alertbutler", "up", "--no-live"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and f"another alertbutler up (pid {proc.pid})" in \
            second.stderr, second.stderr[-2000:]
        assert DeploymentState.read(state_path(tmp_path)).pid == proc.pid  # left alone
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode()[-3000:]
    time.sleep(0.5)
    assert not [pid for pid in children if pid_alive(pid)]
    assert not state_path(tmp_path).exists()
    logs = tmp_path / "logs"
    assert {p.name for p in logs.glob("*.log")} >= {"fanout.log", "worker.log", "ingest.log"}
    for name in ("fanout", "worker", "ingest"):  # each exited through its own SIGTERM path
        text = (logs / f"{name}.log").read_text()
        assert "Traceback" not in text, (name, text[-2000:])
