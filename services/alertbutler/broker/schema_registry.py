"""A Confluent-compatible Schema Registry on loopback: Apicurio Registry, from Maven Central.

Confluent's own registry is not served by Maven Central and Karapace is not on PyPI here;
Apicurio Registry 2.x is published there as a runnable Quarkus application (one zip), keeps
its schemas in memory (H2) and serves the Confluent REST API under ``/apis/ccompat/v7``,
which confluent-kafka's ``SchemaRegistryClient`` and ``AvroDeserializer`` speak. The zip
is fetched once with Maven (:func:`alertbutler.jvm.resolve_unpacked`) and the JVM is a
child that dies with its owner (``procs``), like the Kafka broker. Memory only: a restart
forgets every schema.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from alertbutler.broker.apache import server_java
from alertbutler.broker.embedded import BrokerError, free_port
from alertbutler.jvm import JvmError, resolve_unpacked
from alertbutler.procs import ServerProcess, spawn_owned, stop_group

log = logging.getLogger(__name__)

APICURIO_VERSION = "2.6.13.Final"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:zip:all"
#: the Confluent-compatible API's root under the server
CCOMPAT_PATH = "/apis/ccompat/v7"


def registry_app() -> Path:
    """The Apicurio runner jar (fetched from Maven Central once, then cached)."""
    try:
        root = resolve_unpacked(f"apicurio-registry-{APICURIO_VERSION}", ARTIFACT)
    except JvmError as exc:
        raise BrokerError(f"the schema registry server is not available: {exc}") from exc
    jars = sorted(root.glob("apicurio-registry-app-*-runner.jar"))
    if not jars:
        raise BrokerError(f"{root} holds no apicurio-registry-app runner jar")
    return jars[0]


class SchemaRegistryServer(ServerProcess):
    """Apicurio Registry on ``127.0.0.1:<port>``; :attr:`url` is its Confluent API."""

    def __init__(self, *, port: int | None = None, log_file: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_file = log_file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{CCOMPAT_PATH}"

    def start(self, *, timeout: float = 180.0) -> SchemaRegistryServer:
        if self._proc is not None:
            return self
        java = server_java("the schema registry server")
        jar = registry_app()
        self._tmp = tempfile.TemporaryDirectory(prefix="alertbutler-registry-")
        out_path = self.log_file or Path(self._tmp.name) / "registry.log"
        out = open(out_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = [java, "-Xms64m", "-Xmx384m", f"-Dquarkus.http.port={self.port}",
               f"-Dquarkus.http.host={self.host}", "-Dquarkus.log.level=WARN",
               "-jar", str(jar)]
        try:
            self._proc = spawn_owned(cmd, stdout=out, stderr=out, cwd=self._tmp.name)
        finally:
            out.close()
        try:
            self._wait_ready(timeout, out_path)
        except BaseException:
            self.stop()
            raise
        log.info("schema registry ready", extra={"url": self.url, "pid": self.pid})
        return self

    def _wait_ready(self, timeout: float, out_path: Path) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                tail = out_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise BrokerError(f"the schema registry exited with code "
                                  f"{self._proc.returncode} during start: {' | '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:  # not listening yet
                last = exc
            time.sleep(0.2)
        raise BrokerError(f"the schema registry at {self.url} did not answer within "
                          f"{timeout:.0f} s: {last}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, grace=10.0)
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None
