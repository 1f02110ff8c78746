"""A broker outage under running services: one line each way, /readyz off, a metric, exit 0.

The ingester, the fan-out and a worker run as their own processes (as ``alertbutler up`` runs
them) on a broker of this test's own. The broker is SIGKILLed, restarted on the same port
(Apache Kafka: on the same data directory), and killed again; the services are stopped with
SIGTERM during that second outage. Before, an outage was only a flood of client error lines
(librdkafka's and aiokafka's, one per reconnection attempt), ``/readyz`` stayed 200, and a
SIGTERM during it ended the ingester with exit 1 and a traceback.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alertbutler.broker import make_broker
from alertbutler.config import load_config
from alertbutler.deploy.up import free_port_block
from alertbutler.l1db import L1db
from alertbutler.procs import spawn_owned
from alertbutler.prompt.service_support import ensure_topics
from tests.deploy.nights import eventually, scrape, status_code, total

pytestmark = pytest.mark.slow

SERVICES = {"ingest": ("ingest", "--assign-all"), "fanout": ("fanout",),
            "worker": ("worker", "--no-outputs")}


def _readyz(port: int) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def test_services_report_an_outage_once_and_stop_cleanly_during_it(
        broker_engine: str, tmp_path: Path) -> None:
    data = tmp_path / "kafka" if broker_engine == "kafka" else None
    broker = make_broker(broker_engine, data_dir=data, log_file=tmp_path / "broker.log")
    broker.start()
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    env = {"ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
           "ALERTBUTLER_GENERAL__DATA_DIR": str(tmp_path),
           "ALERTBUTLER_L1DB__URL": f"sqlite:///{tmp_path / 'l1db.sqlite3'}",
           "ALERTBUTLER_BUTLER__CENTRAL_REPO": str(tmp_path / "central")}
    config = load_config(env=env)
    ensure_topics(config, broker.bootstrap)
    L1db.create(config.l1db_url).close()
    from alertbutler.butler import Butler
    from alertbutler.prompt.central import register_types

    with Butler.create(config.central_repo) as butler:
        register_types(butler)
    # away from the block other deployments scan from 9100 (tests run side by side)
    base = free_port_block(len(SERVICES), start=random.randrange(20000, 60000))
    ports = {name: base + i for i, name in enumerate(SERVICES)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in SERVICES}
    try:
        for name, argv in SERVICES.items():
            with open(logs[name], "wb") as out:
                procs[name] = spawn_owned(
                    [sys.executable, "-m", "alertbutler", *argv, "--metrics-port",
                     str(ports[name])], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    env={**os.environ, **env})

        def ready(want: int, says: str = "") -> None:
            for name, p in ports.items():
                assert procs[name].poll() is None, (name, logs[name].read_text()[-3000:])
                code, body = _readyz(p)
                assert code == want and says in body, (name, code, body)

        eventually(lambda: ready(200), timeout=240)
        for outage in (1, 2):
            broker.kill()
            eventually(lambda: ready(503, "Kafka broker unreachable"), timeout=120)
            for name, p in ports.items():
                m = scrape(p)
                assert total(m, "alertbutler_kafka_up") == 0, name
                assert total(m, "alertbutler_kafka_outages_total") >= outage, name
                assert status_code(p, "/healthz") == 200, name  # alive: no restart wanted
            if outage == 1:  # back on the same port (and data directory)
                broker = make_broker(broker_engine, data_dir=data, port=port,
                                     log_file=tmp_path / "broker.log")
                broker.start()
                eventually(lambda: ready(200), timeout=240)
                for name, p in ports.items():
                    m = scrape(p)
                    assert total(m, "alertbutler_kafka_up") == 1, name
                    assert total(m, "alertbutler_kafka_outage_seconds_total") > 0, name
        # SIGTERM during the second outage: every service ends cleanly
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        codes = {name: proc.wait(timeout=120) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        broker.stop()
    texts = {name: path.read_text(errors="replace") for name, path in logs.items()}
    assert codes == dict.fromkeys(SERVICES, 0), {n: texts[n][-3000:] for n in SERVICES}
    for name, text in texts.items():
        lines = text.splitlines()
        # one line each way per outage, not one per reconnection attempt (the second outage
        # never ended)
        down = sum("Kafka broker unreachable" in line for line in lines)
        up = sum("Kafka broker reachable again" in line for line in lines)
        assert down == up + 1 >= 2, (name, down, up)
        assert "Traceback" not in text, name
        # no flood: no client's per-attempt connection lines
        flood = [line for line in lines if "Connection refused" in line
                 or "Connect call failed" in line or "Unable connect" in line]
        assert not flood, (name, flood[:5])
