"""One small main-job night for the portal's tests, and ``alertbutler serve`` over it.

The night runs as ``alertbutler run`` runs it (an embedded broker started for the night and
gone afterwards, a SQLite L1 database, the ledger and alert archive under
``<data_dir>/mainjob``); every test of the package reads it, none changes it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertbutler.config import load_config
from alertbutler.night.main_job import MainJobOptions, MainJobResult, run_main_job

SMALL = dict(n_visits=3, n_detectors=2, detector_size=2048, workers=2, cadence_s=10.0,
             lead_s=2.0, progress=False, timeout_s=600.0)


@pytest.fixture(scope="session")
def portal_night(tmp_path_factory: pytest.TempPathFactory) -> MainJobResult:
    root = tmp_path_factory.mktemp("portal-night")
    config = load_config(env={}, overrides={
        "general": {"data_dir": str(root)},
        "prompt": {"raw_timeout_s": 20.0, "association_wait_s": 120.0}})
    return run_main_job(config, MainJobOptions(**SMALL))  # type: ignore[arg-type]


def night_dir(result: MainJobResult) -> Path:
    return result.report.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``alertbutler serve`` in a subprocess; ``get`` fetches a path."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertbutler", "serve", "--port", str(self.port)],
            env={**os.environ, "ALERTBUTLER_GENERAL__DATA_DIR": str(data_dir), **(env or {})},
            stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # readiness, not correctness: wait until it answers
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertbutler serve exited: {log.read_text()}")
            try:
                self.get("/api/health")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"alertbutler serve did not answer: {log.read_text()}")

    def get(self, path: str) -> tuple[int, bytes, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as response:
                return response.status, response.read(), response.headers["content-type"]
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers["content-type"]

    def json(self, path: str) -> Any:
        status, body, _ = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def portal(portal_night: MainJobResult, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """The portal over the night, started with no option but the data directory."""
    log = tmp_path_factory.mktemp("portal-serve") / "serve.log"
    server = Server(night_dir(portal_night).parent, log)
    try:
        yield server
    finally:
        server.stop()
