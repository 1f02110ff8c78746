"""Apache Kafka 4.x, single node in KRaft mode, run from its Maven Central jars.

The broker and its controller share one JVM (``process.roles=broker,controller``), on two
loopback ports. Everything it keeps lives in one data directory::

    DIR/broker.json        alertbutler's record: cluster id, ports, Kafka version
    DIR/server.properties  the broker's configuration, rewritten at every start
    DIR/log4j2.properties  its logging (to DIR/server.log)
    DIR/logs/              Kafka's log dir (topics, offsets, the metadata log)
    DIR/admin.secret       with ``security``: the super user's password (mode 600)

so a restart on the same directory keeps every topic, message and committed offset, and
reuses the port it had (clients reconnect to the address they know). The storage is
formatted on first start. A directory that holds something else, or was formatted for
another cluster, is refused. The JVM is a child that dies with its owner (``procs``).

With ``security`` (:class:`~alertbutler.broker.security.KafkaSecurity`) the one client
listener is SASL_PLAINTEXT with SCRAM-SHA-512 and StandardAuthorizer enforces ACLs; see
``broker/security.py``. A directory made secured is never started open, nor the reverse.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from alertbutler.broker.embedded import BrokerError, free_port
from alertbutler.broker.security import (
    MECHANISM,
    KafkaSecurity,
    apply_security,
    broker_properties,
)
from alertbutler.jvm import JvmError, java_binary, resolve_classpath
from alertbutler.procs import ServerProcess, port_free, port_open, spawn_owned, stop_group

log = logging.getLogger(__name__)

#: The Apache Kafka release run by ``--engine kafka``.
KAFKA_VERSION = "4.1.1"
ARTIFACTS = [f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
             "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3"]
_RECORD = "broker.json"
_ADMIN_SECRET = "admin.secret"
_JVM_OPTS = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true"]

_live: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


def kafka_classpath() -> str:
    """The broker's classpath, resolved with Maven on first use and cached."""
    try:
        return resolve_classpath(f"kafka-{KAFKA_VERSION}", ARTIFACTS)
    except JvmError as exc:
        raise BrokerError(f"Apache Kafka: {exc}") from exc


def server_java(server: str) -> str:
    """The Java (17 or later) to run ``server`` on, or a :class:`BrokerError` naming it."""
    try:
        return java_binary(17)
    except JvmError as exc:
        raise BrokerError(f"{server} needs Java: {exc}") from exc


class KafkaBroker(ServerProcess):
    """One Apache Kafka broker (KRaft, broker + controller) on loopback.

    ``data_dir`` None means a temporary directory removed at :meth:`stop`. Use as a context
    manager, or :meth:`start` / :meth:`stop`; :meth:`kill` is SIGKILL, for crash tests.
    """

    engine = "kafka"

    def __init__(self, *, data_dir: Path | str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, log_file: Path | None = None,
                 extra_properties: dict[str, str] | None = None,
                 security: KafkaSecurity | None = None) -> None:
        self.host = host
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._requested_port = port
        self.port = port or 0
        self.controller_port = 0
        self.log_file = log_file
        self.extra_properties = dict(extra_properties or {})
        self.security = security
        self._admin_password = ""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # -- start ----------------------------------------------------------------------------
    def start(self, *, timeout: float = 120.0) -> KafkaBroker:
        """Format the storage if new, start the JVM, return once the broker answers."""
        if self._proc is not None:
            return self
        java = server_java("Apache Kafka")
        classpath = kafka_classpath()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="alertbutler-kafka-"))
        record = self._prepare_dir(java, classpath)
        self._write_config(record)
        out_path = self.log_file or self.data_dir / "server.out"
        out = open(out_path, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "LOG_DIR": str(self.data_dir)}
        cmd = [java, *_JVM_OPTS,
               f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
               f"-Dkafka.logs.dir={self.data_dir}",
               "-cp", classpath, "kafka.Kafka", str(self.data_dir / "server.properties")]
        try:
            self._proc = spawn_owned(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     env=env, cwd=str(self.data_dir))
        finally:
            out.close()
        _live.add(self)
        try:
            self._wait_ready(timeout)
            if self.security is not None:
                apply_security(self.bootstrap, self.admin_settings(), self.security)
        except BaseException:
            self.stop(grace=1.0)
            raise
        log.info("Apache Kafka ready", extra={
            "bootstrap": self.bootstrap, "pid": self.pid,
            "security": f"SASL_PLAINTEXT {MECHANISM}" if self.security else "PLAINTEXT"})
        return self

    def _prepare_dir(self, java: str, classpath: str) -> dict[str, object]:
        """Refuse a directory that is not ours; format a new one; choose the ports."""
        assert self.data_dir is not None
        root = self.data_dir
        record_path = root / _RECORD
        if root.is_symlink():
            raise BrokerError(f"{root}: the Kafka data directory must not be a symbolic link")
        if root.exists() and not root.is_dir():
            raise BrokerError(f"{root} is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        record: dict[str, object]
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
                cluster_id = str(record["cluster_id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BrokerError(f"{record_path} is not an alertbutler Kafka record: "
                                  f"{exc}") from exc
            meta = _read_properties(root / "logs" / "meta.properties")
            if not meta:
                raise BrokerError(f"{root} is not a Kafka log dir: {root / 'logs'} has no "
                                  "meta.properties (remove the directory to start afresh)")
            if meta.get("cluster.id") != cluster_id:
                raise BrokerError(
                    f"{root} was formatted for cluster {meta.get('cluster.id')}, not "
                    f"{cluster_id}: refusing to start on another cluster's log dir")
            if bool(record.get("secured")) != (self.security is not None):
                raise BrokerError(
                    f"{root} holds a cluster with SCRAM users and ACLs: start it with its "
                    "users (--users FILE), never open" if record.get("secured") else
                    f"{root} was formatted without security: its super user does not exist, "
                    "so SCRAM and ACLs need a new data directory")
        else:
            if any(root.iterdir()):
                raise BrokerError(f"{root} is not a Kafka log dir made by alertbutler (no "
                                  f"{_RECORD}) and is not empty: give an empty or new "
                                  "directory")
            record = {"cluster_id": _cluster_id(), "kafka_version": KAFKA_VERSION,
                      "node_id": 1, "secured": self.security is not None}
        self.port = self._choose_port(self._requested_port or _int(record.get("port")))
        self.controller_port = self._choose_port(_int(record.get("controller_port")),
                                                 avoid=self.port)
        record.update(port=self.port, controller_port=self.controller_port)
        if self.security is not None:
            self._admin_password = _admin_secret(root / _ADMIN_SECRET)
        if not (root / "logs" / "meta.properties").is_file():
            self._write_config(record)
            self._format(java, classpath, str(record["cluster_id"]))
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        return record

    def _choose_port(self, wanted: int | None, avoid: int = 0) -> int:
        if self._requested_port and wanted == self._requested_port:
            if not port_free(self.host, wanted):
                raise BrokerError(f"port {wanted} on {self.host} is taken: choose another "
                                  "--port or stop what listens there")
            return wanted
        if wanted and wanted != avoid and port_free(self.host, wanted):
            return wanted  # the port of the last run: clients reconnect to it
        while True:
            port = free_port(self.host)
            if port != avoid:
                return port

    def _format(self, java: str, classpath: str, cluster_id: str) -> None:
        assert self.data_dir is not None
        cmd = [java, "-Xmx256m",
               f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
               "-cp", classpath, "kafka.tools.StorageTool", "format", "--ignore-formatted",
               f"--cluster-id={cluster_id}", "-c", str(self.data_dir / "server.properties")]
        if self.security is not None:
            # the super user must exist before the first start: the admin client that
            # creates the other users and the ACLs logs in as it
            cmd += ["--add-scram", f"{MECHANISM}=[name={self.security.super_user},"
                                   f"password={self._admin_password}]"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()[-500:]
            if self._admin_password:
                output = output.replace(self._admin_password, "***")
            raise BrokerError(f"formatting the Kafka storage in {self.data_dir} failed: "
                              f"{output}")

    def _write_config(self, record: dict[str, object]) -> None:
        assert self.data_dir is not None
        node_id = record.get("node_id", 1)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": f"{node_id}@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(16 * 1024 * 1024),
            "socket.request.max.bytes": str(128 * 1024 * 1024),
        }
        if self.security is not None:
            props.update(broker_properties(
                self.security, host=self.host, port=self.port,
                controller_port=self.controller_port, admin_password=self._admin_password))
        props.update(self.extra_properties)
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        _write_private(self.data_dir / "server.properties", text)  # may hold a password
        (self.data_dir / "log4j2.properties").write_text(_log4j2(self.data_dir / "server.log"))

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(f"Apache Kafka exited with code {self._proc.returncode} "
                                  f"during start: {self._log_tail()}")
            if not port_open(self.host, self.port):
                time.sleep(0.1)
                continue
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0,
                                 **self._client_settings()})
            try:
                meta = admin.list_topics(timeout=5)
                if meta.brokers:
                    return
            except Exception as exc:  # KafkaException until the broker registered
                last_error = exc
            time.sleep(0.2)
        raise BrokerError(f"Apache Kafka at {self.bootstrap} not ready after {timeout}s: "
                          f"{last_error}; {self._log_tail()}")

    def _client_settings(self) -> dict[str, str]:
        return self.admin_settings()

    def admin_settings(self) -> dict[str, str]:
        """librdkafka settings of the super user (creating topics, tests); none without
        security. Holds a password: never log it."""
        if self.security is None:
            return {}
        return self.security.client_settings(self.security.super_user, self._admin_password)

    def __repr__(self) -> str:
        return (f"KafkaBroker(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r}, "
                f"security={self.security!r})")

    def _log_tail(self) -> str:
        assert self.data_dir is not None
        lines: list[str] = []
        for name in ("server.out", "server.log"):
            path = self.log_file if name == "server.out" and self.log_file else \
                self.data_dir / name
            with contextlib.suppress(OSError):
                lines += path.read_text(errors="replace").strip().splitlines()[-8:]
        bad = [line for line in lines if "ERROR" in line or "Exception" in line]
        return " | ".join((bad or lines)[-5:]) or "no log output"

    # -- stop -----------------------------------------------------------------------------
    def stop(self, *, grace: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM, then SIGKILL after ``grace``); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._disown()
            stop_group(proc, grace=grace)
        if self._temporary and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def _disown(self) -> None:
        _live.discard(self)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, never starting
    with "-" (a command line would read it as an option: one id in 64 did, as Kafka's own
    ``Uuid.randomUuid`` also avoids)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (mode 600, also for an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _admin_secret(path: Path) -> str:
    """The super user's password: made once per data directory and kept there (mode 600)."""
    if path.is_symlink():
        raise BrokerError(f"{path} must not be a symbolic link")
    if path.exists():
        password = path.read_text().strip()
        if not password:
            raise BrokerError(f"{path} is empty: the super user's password is lost")
        return password
    password = secrets.token_urlsafe(24)
    _write_private(path, password + "\n")
    return password


def _read_properties(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    props = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _log4j2(path: Path) -> str:
    return (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {path}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = WARN\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "logger.server.name = kafka.server.KafkaRaftServer\n"
        "logger.server.level = INFO\n"
    )


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        broker.stop(grace=5.0)
