"""A local Apache Cassandra 5 cluster of N nodes, run from its Maven Central jars.

Node ``i`` (1-based) listens on its own loopback address ``127.0.0.i`` (Linux routes all of
127/8 to ``lo``), so every node uses the same storage and native (CQL) ports without clashes
and the driver sees N distinct hosts, as in a real cluster. JMX is not started (no port to
clash with; nothing here needs nodetool). Everything lives in one data directory::

    DIR/cluster.json      alertbutler's record: Cassandra version, nodes, ports
    DIR/nodeI/            one node: cassandra.yaml, logback.xml, data, commit log, hints, logs

A fresh cluster starts all nodes at once with ``auto_bootstrap: false`` (there is no data to
stream), which is far faster than joining them one by one; a restart on the same directory
keeps every keyspace. Each JVM is a child that dies with its owner (``procs``). Sized for a
small shared machine: 512 MB heaps, 4 tokens per node, few concurrent readers and writers.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from alertbutler.jvm import JvmError, java_binary, resolve_classpath
from alertbutler.l1db._errors import L1dbError
from alertbutler.procs import port_free, port_open, spawn_owned, stop_group

log = logging.getLogger(__name__)

#: The Apache Cassandra release run by ``alertbutler l1db server --engine cassandra``.
CASSANDRA_VERSION = "5.0.6"
ARTIFACTS = [f"org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION}"]
_RECORD = "cluster.json"
_CLUSTER_NAME = "alertbutler"
_TOKENS = 4

#: Java 17 module openings Cassandra 5 needs (its jvm17-server.options, reduced).
_JAVA17 = [f"--add-exports={m}=ALL-UNNAMED" for m in (
    "java.base/jdk.internal.misc", "java.base/jdk.internal.ref", "java.base/sun.nio.ch",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi", "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server", "java.sql/java.sql")] + [
    f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader",
        "java.base/jdk.internal.ref", "java.base/jdk.internal.reflect",
        "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.nio",
        "java.base/java.util.concurrent", "java.base/java.util",
        "java.base/java.util.concurrent.atomic", "java.base/java.lang",
        "java.base/java.math", "java.base/java.lang.reflect", "java.base/java.net")]
_JVM_OPTS = ["-Xms256m", "-Xmx512m", "-Xss512k", "-XX:MaxDirectMemorySize=256m",
             "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=200", "-XX:CICompilerCount=2",
             "-XX:+UseStringDeduplication", "-Djava.awt.headless=true",
             "-Djdk.attach.allowAttachSelf=true", "-Dcassandra-foreground=yes",
             "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.ring_delay_ms=10000",
             "-Dcassandra.superuser_setup_delay_ms=0", "-Dcassandra.consistent.rangemovement=false",
             "-Dcassandra.migration_task_wait_in_seconds=1"]

_live: weakref.WeakSet[CassandraCluster] = weakref.WeakSet()


class CassandraError(L1dbError):
    """The local Cassandra cluster could not be started or is not what was asked for."""


def cassandra_classpath() -> str:
    """Cassandra's classpath, resolved with Maven on first use and cached."""
    try:
        return resolve_classpath(f"cassandra-{CASSANDRA_VERSION}", ARTIFACTS)
    except JvmError as exc:
        raise CassandraError(f"Apache Cassandra: {exc}") from exc


class CassandraCluster:
    """N Cassandra nodes on 127.0.0.1 .. 127.0.0.N; ``data_dir`` None: a temporary
    directory removed at :meth:`stop`. :meth:`stop_node` / :meth:`start_node` take one node
    down and back (for failure tests); :meth:`kill` is SIGKILL of every node."""

    def __init__(self, *, nodes: int = 3, data_dir: Path | str | None = None,
                 native_port: int | None = None, storage_port: int | None = None,
                 heap: str = "512m") -> None:
        if not 1 <= nodes <= 9:
            raise CassandraError(f"--nodes {nodes}: a local cluster has 1 to 9 nodes")
        self.n_nodes = nodes
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._ports = (native_port, storage_port)
        self.native_port = 0
        self.storage_port = 0
        self.heap = heap
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.{i}" for i in range(1, self.n_nodes + 1)]

    @property
    def contact_points(self) -> str:
        """``host:port,...``: what a ``cassandra://`` URL names."""
        return ",".join(f"{h}:{self.native_port}" for h in self.hosts)

    def url(self, keyspace: str) -> str:
        return f"cassandra://{self.contact_points}/{keyspace}"

    # -- start ----------------------------------------------------------------------------
    def start(self, *, timeout: float = 900.0) -> CassandraCluster:
        """Start every node; return once each answers CQL and sees all the others up."""
        if self._procs:
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="alertbutler-cassandra-"))
        self._prepare_dir()
        _live.add(self)
        try:
            deadline = time.monotonic() + timeout
            self._spawn(1)  # the seed: the others gossip with it first
            self._wait_ports({1}, deadline)
            for node in range(2, self.n_nodes + 1):
                self._spawn(node)
            self.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop(grace=5.0)
            raise
        log.info("Apache Cassandra ready", extra={"contact_points": self.contact_points})
        return self

    def _prepare_dir(self) -> None:
        assert self.data_dir is not None
        root = self.data_dir
        if root.is_symlink():
            raise CassandraError(f"{root}: the Cassandra data directory must not be a "
                                 "symbolic link")
        if root.exists() and not root.is_dir():
            raise CassandraError(f"{root} is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        record_path = root / _RECORD
        record: dict[str, object] = {}
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
                known = int(record["nodes"])  # type: ignore[call-overload]
            except (ValueError, KeyError, TypeError) as exc:
                raise CassandraError(f"{record_path} is not an alertbutler Cassandra "
                                     f"record: {exc}") from exc
            if known != self.n_nodes:
                raise CassandraError(f"{root} holds a cluster of {known} nodes, not "
                                     f"{self.n_nodes}: start it with --nodes {known}")
        elif any(root.iterdir()):
            raise CassandraError(f"{root} is not a Cassandra cluster made by alertbutler (no "
                                 f"{_RECORD}) and is not empty: give an empty or new directory")
        fresh = not record
        native, storage = self._ports
        self.native_port = self._choose_port(native or _int(record.get("native_port")), ())
        self.storage_port = self._choose_port(storage or _int(record.get("storage_port")),
                                              (self.native_port,))
        record.update(version=CASSANDRA_VERSION, nodes=self.n_nodes,
                      native_port=self.native_port, storage_port=self.storage_port)
        for node in range(1, self.n_nodes + 1):
            home = root / f"node{node}"
            home.mkdir(exist_ok=True)
            (home / "cassandra.yaml").write_text(self._yaml(node, bootstrap=not fresh))
            (home / "logback.xml").write_text(_logback(home / "system.log"))
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    def _choose_port(self, wanted: int | None, avoid: tuple[int, ...]) -> int:
        if wanted and wanted not in avoid and all(port_free(h, wanted) for h in self.hosts):
            return wanted
        if wanted and wanted in self._ports:
            raise CassandraError(f"port {wanted} is taken on one of {', '.join(self.hosts)}")
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in avoid and all(port_free(h, port) for h in self.hosts):
                return port

    def _yaml(self, node: int, *, bootstrap: bool) -> str:
        assert self.data_dir is not None
        home = self.data_dir / f"node{node}"
        host = f"127.0.0.{node}"
        return "\n".join([
            f"cluster_name: {_CLUSTER_NAME}",
            f"num_tokens: {_TOKENS}",
            f"initial_token: {_tokens(node, self.n_nodes)}",
            "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
            f"data_file_directories: [{home / 'data'}]",
            f"commitlog_directory: {home / 'commitlog'}",
            f"saved_caches_directory: {home / 'saved_caches'}",
            f"hints_directory: {home / 'hints'}",
            f"cdc_raw_directory: {home / 'cdc_raw'}",
            "commitlog_sync: periodic",
            "commitlog_sync_period: 10000ms",
            "seed_provider:",
            "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
            "    parameters:",
            f'      - seeds: "127.0.0.1:{self.storage_port}"',
            f"listen_address: {host}",
            f"rpc_address: {host}",
            f"storage_port: {self.storage_port}",
            f"native_transport_port: {self.native_port}",
            "start_native_transport: true",
            "endpoint_snitch: SimpleSnitch",
            f"auto_bootstrap: {'true' if bootstrap else 'false'}",
            "concurrent_reads: 4",
            "concurrent_writes: 4",
            "concurrent_counter_writes: 2",
            "concurrent_materialized_view_writes: 2",
            "concurrent_compactors: 1",
            "memtable_heap_space: 96MiB",
            "memtable_offheap_space: 96MiB",
            "native_transport_max_threads: 16",
            "hinted_handoff_enabled: true",
            "max_hint_window: 3h",
            "hints_flush_period: 1000ms",
            "read_request_timeout: 20000ms",
            "write_request_timeout: 20000ms",
            "range_request_timeout: 30000ms",
            "request_timeout: 30000ms",
            "batch_size_warn_threshold: 512KiB",
            "batch_size_fail_threshold: 4MiB",
            "unlogged_batch_across_partitions_warn_threshold: 10000",
            "disk_failure_policy: stop",
            "commit_failure_policy: stop",
            "authenticator: AllowAllAuthenticator",
            "authorizer: AllowAllAuthorizer",
            "", ])

    def _spawn(self, node: int) -> None:
        assert self.data_dir is not None
        java = _java()
        classpath = cassandra_classpath()
        home = self.data_dir / f"node{node}"
        libs = Path(classpath.rstrip("*"))
        agent = sorted(libs.glob("jamm-*.jar"))
        cmd = [java, *_JAVA17, *_JVM_OPTS, f"-Xmx{self.heap}",
               *([f"-javaagent:{agent[0]}"] if agent else []),
               f"-Dcassandra.config=file://{home / 'cassandra.yaml'}",
               f"-Dcassandra.storagedir={home}", f"-Dcassandra.logdir={home}",
               f"-Dlogback.configurationFile={home / 'logback.xml'}",
               "-cp", classpath, "org.apache.cassandra.service.CassandraDaemon"]
        with open(home / "server.out", "ab") as out:
            self._procs[node] = spawn_owned(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=out, cwd=str(home))

    def wait_ready(self, *, timeout: float = 900.0) -> None:
        """Wait until every running node answers CQL and sees all nodes up."""
        deadline = time.monotonic() + timeout
        self._wait_ports(set(self._procs), deadline)
        self._wait_all_up(deadline)

    def _wait_ports(self, pending: set[int], deadline: float) -> None:
        pending = set(pending)
        while pending:
            for node in sorted(pending):
                proc = self._procs[node]
                if proc.poll() is not None:
                    raise CassandraError(f"Cassandra node {node} exited with code "
                                         f"{proc.returncode} during start: "
                                         f"{self._log_tail(node)}")
                if port_open(f"127.0.0.{node}", self.native_port):
                    pending.discard(node)
            if pending and time.monotonic() > deadline:
                raise CassandraError(f"Cassandra nodes {sorted(pending)} not answering in "
                                     f"time: {self._log_tail(min(pending))}")
            if pending:
                time.sleep(0.5)

    def _wait_all_up(self, deadline: float) -> None:
        """Every running node sees every running node NORMAL and ready for clients (its
        gossip view: what QUORUM writes rely on)."""
        from cassandra import DriverException
        from cassandra.cluster import (
            EXEC_PROFILE_DEFAULT,
            Cluster,
            ExecutionProfile,
            NoHostAvailable,
        )
        from cassandra.policies import WhiteListRoundRobinPolicy

        wanted = {f"127.0.0.{n}" for n in self._procs}
        for host in sorted(wanted):
            profile = ExecutionProfile(
                load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=60)
            while True:
                # a node that has just opened its port may not answer in time on a busy
                # machine: ask again until the deadline, not only once
                cluster = Cluster([host], port=self.native_port, protocol_version=5,
                                  execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                                  connect_timeout=60, control_connection_timeout=60)
                try:
                    session = cluster.connect()
                    ready = {str(r.address) for r in session.execute(
                        "SELECT address, status_with_port, rpc_ready FROM "
                        "system_views.gossip_info")
                        if str(r.status_with_port or "").startswith("NORMAL")
                        and r.rpc_ready == "true"}
                    problem = f"node {host} sees only {sorted(ready)} ready"
                    if wanted <= ready:
                        break
                except (NoHostAvailable, DriverException) as exc:  # timed out, too
                    problem = f"node {host} does not answer CQL: {exc}"
                finally:
                    cluster.shutdown()
                if time.monotonic() > deadline:
                    raise CassandraError(problem)
                time.sleep(0.5)

    def _log_tail(self, node: int) -> str:
        assert self.data_dir is not None
        lines: list[str] = []
        for name in ("server.out", "system.log"):
            with contextlib.suppress(OSError):
                lines += (self.data_dir / f"node{node}" / name).read_text(
                    errors="replace").strip().splitlines()[-10:]
        bad = [line for line in lines if "ERROR" in line or "Exception" in line]
        return " | ".join((bad or lines)[-5:]) or "no log output"

    # -- one node down and back -----------------------------------------------------------
    def stop_node(self, node: int, *, grace: float = 60.0) -> None:
        """Stop one node (SIGTERM: Cassandra drains; SIGKILL after ``grace``)."""
        proc = self._procs.pop(node, None)
        if proc is not None:
            stop_group(proc, grace=grace)

    def start_node(self, node: int, *, timeout: float = 600.0) -> None:
        """Start one stopped node again on its data; return once all nodes see it up."""
        if node in self._procs:
            return
        self._spawn(node)
        self.wait_ready(timeout=timeout)

    # -- stop -----------------------------------------------------------------------------
    def stop(self, *, grace: float = 30.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``grace``); idempotent."""
        procs, self._procs = self._procs, {}
        _live.discard(self)
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            stop_group(proc, grace=grace)
        if self._temporary and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        procs, self._procs = self._procs, {}
        _live.discard(self)
        for proc in procs.values():
            stop_group(proc, grace=0.0, sig=signal.SIGKILL)

    def is_running(self, node: int | None = None) -> bool:
        nodes = list(self._procs) if node is None else [node]
        return bool(nodes) and all(
            n in self._procs and self._procs[n].poll() is None for n in nodes)

    def __enter__(self) -> CassandraCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unavailable_reason() -> str | None:
    """Why a local Cassandra cluster cannot run here (no Java, jars neither cached nor
    resolvable, no Python driver), or None when it can."""
    try:
        import cassandra.cluster  # noqa: F401
    except ImportError:
        return ("the Python driver is missing: pip install 'alertbutler[cassandra]' "
                "(cassandra-driver)")
    try:
        _java()
        cassandra_classpath()
    except CassandraError as exc:
        return str(exc)
    return None


def _tokens(node: int, n_nodes: int) -> str:
    """Evenly spaced Murmur3 tokens, interleaved between nodes: a balanced ring from the
    start, without the token allocation that nodes starting together would repeat."""
    step = 2**64 // (_TOKENS * n_nodes)
    return ",".join(str(-(2**63) + (k * n_nodes + node - 1) * step) for k in range(_TOKENS))


def _java() -> str:
    try:
        return java_binary(17)
    except JvmError as exc:
        raise CassandraError(f"Apache Cassandra needs Java: {exc}") from exc


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None




def _logback(path: Path) -> str:
    return f"""<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{path}</file>
    <encoder><pattern>%-5level [%thread] %date %logger{{1}} %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="FILE"/></root>
  <logger name="org.apache.cassandra.service.StorageService" level="INFO"/>
  <logger name="org.apache.cassandra.hints" level="INFO"/>
</configuration>
"""


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        cluster.stop(grace=5.0)
