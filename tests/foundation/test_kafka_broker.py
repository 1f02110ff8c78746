"""Apache Kafka as run by ``alertbutler broker --engine kafka``: durable data dir, process
hygiene, and the refusals (no Java, no Maven, a foreign data dir, a taken port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from alertbutler.broker import BrokerError, KafkaBroker
from alertbutler.jvm import JvmError, java_binary, resolve_classpath
from alertbutler.testing import kafka_unavailable_reason, pid_alive

pytestmark = pytest.mark.skipif(bool(kafka_unavailable_reason()),
                                reason=str(kafka_unavailable_reason()))

CLI = [sys.executable, "-m", "alertbutler"]


def _java_children(of_pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == of_pid and b"kafka.Kafka" in argv:
            found.append(int(proc.name))
    return found


@pytest.fixture
def cli_broker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``alertbutler broker --engine kafka --data-dir D`` as a user runs it."""
    data = tmp_path / "kafka"
    proc = subprocess.Popen([*CLI, "broker", "--engine", "kafka", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert first, proc.stderr.read()  # type: ignore[union-attr]
        yield proc, first, data
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(60) == 0


def _read(bootstrap: str, topic: str, group: str, n: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        if got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_round_trip_then_sigkill_of_owner_then_restart_keeps_everything(cli_broker) -> None:
    proc, bootstrap, data = cli_broker
    host, port = bootstrap.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    topic, group = f"durable-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    _send(bootstrap, topic, [b"first", b"second"])
    assert _read(bootstrap, topic, group, 2) == [b"first", b"second"]  # committed

    jvms = _java_children(proc.pid)
    assert len(jvms) == 1, "the broker is one JVM, a child of the CLI"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 20
    while pid_alive(jvms[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(jvms[0]), "the JVM outlived its SIGKILLed owner"

    again = subprocess.Popen([*CLI, "broker", "--engine", "kafka", "--data-dir", str(data)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert again.stdout.readline().strip() == bootstrap  # type: ignore[union-attr]
        _send(bootstrap, topic, [b"third"])
        # the message survived, and so did the group's committed offset
        assert _read(bootstrap, topic, group, 1) == [b"third"]
        assert _read(bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}", 3) == [
            b"first", b"second", b"third"]
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(60) == 0


def test_a_directory_that_is_not_a_kafka_log_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "busy"
    data.mkdir()
    (data / "notes.txt").write_text("something else lives here")
    with pytest.raises(BrokerError, match=f"{data}.*not a Kafka log dir"):
        KafkaBroker(data_dir=data).start()
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]  # nothing written
    proc = subprocess.run([*CLI, "broker", "--engine", "kafka", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not a Kafka log dir" in proc.stderr and str(data) in proc.stderr


def test_a_log_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    with KafkaBroker(data_dir=data):
        pass
    record = json.loads((data / "broker.json").read_text())
    record["cluster_id"] = "AAAAAAAAAAAAAAAAAAAAAA"
    (data / "broker.json").write_text(json.dumps(record))
    with pytest.raises(BrokerError, match=f"{data} was formatted for cluster .*not "
                                          "AAAAAAAAAAAAAAAAAAAAAA"):
        KafkaBroker(data_dir=data).start()


def test_a_taken_port_is_reported_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run([*CLI, "broker", "--engine", "kafka", "--port", str(port),
                               "--data-dir", str(tmp_path / "k")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert f"port {port} on 127.0.0.1 is taken" in proc.stderr
        assert time.monotonic() - started < 60  # not retried until some timeout


def test_no_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(JvmError, match="no Java found: install a Java 17"):
        java_binary(17)
    proc = subprocess.run([*CLI, "broker", "--engine", "kafka"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk")})
    assert proc.returncode == 2 and "openjdk-17" in proc.stderr


def test_no_maven_and_no_cache_says_what_to_install(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(JvmError, match=r"Maven is missing: install Maven \(Debian: "
                                       "apt-get install maven\\)"):
        resolve_classpath("kafka-test", ["org.apache.kafka:kafka_2.13:4.1.1"])


def test_the_embedded_engine_has_no_data_dir(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "broker", "--data-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--data-dir needs --engine kafka" in proc.stderr


def test_a_cluster_id_is_never_read_as_an_option(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A base64 cluster id starts with "-" one time in 64: formatting must still work (the
    storage tool's parser took "-t -abc..." for two options)."""
    from alertbutler.broker import apache

    assert not any(apache._cluster_id().startswith("-") for _ in range(2000))
    monkeypatch.setattr(apache, "_cluster_id", lambda: "-" + "A" * 21)
    with KafkaBroker(data_dir=tmp_path / "kafka") as broker:
        assert broker.is_running()
    assert json.loads((tmp_path / "kafka" / "broker.json").read_text())["cluster_id"] \
        == "-" + "A" * 21
