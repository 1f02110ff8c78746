"""The broker ``alertbutler up`` owns: started first, restarted after a crash, stopped last.

It is supervised like a service, but in-process (:func:`alertbutler.broker.make_broker`): the
services need its address before they start, and it must outlive them when they stop. A
broker that exits while the deployment runs is started again on the same port, so clients
reconnect by themselves to the address they know; Apache Kafka also on the same data
directory (``<root>/kafka``), so nothing acknowledged is lost. The embedded broker keeps
everything in memory: it comes back empty, its topics are re-created, and the ingester stops
at the offsets it stored beyond the new partitions' ends until an operator resets them
(``alertbutler ingest reset-offsets``; docs/operations.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from alertbutler.broker import Broker, BrokerError, make_broker

log = logging.getLogger(__name__)


class SupervisedBroker:
    """One broker of ``engine`` for a deployment; :meth:`poll` restarts it if it died."""

    def __init__(self, engine: str, *, data_dir: Path | None, log_file: Path,
                 on_restart: Callable[[str], None] = lambda bootstrap: None,
                 max_backoff: float = 10.0) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.log_file = log_file
        self.on_restart = on_restart
        self.max_backoff = max_backoff
        self.broker: Broker | None = None
        self.port: int | None = None
        self.restarts = 0
        self._failures = 0
        self._next_start = 0.0
        self._stopped = False

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    @property
    def pid(self) -> int | None:
        return self.broker.pid if self.broker is not None and self.broker.is_running() \
            else None

    def start(self) -> SupervisedBroker:
        self.broker = make_broker(self.engine, data_dir=self.data_dir, port=self.port,
                                  log_file=self.log_file).start()
        self.port = int(self.broker.bootstrap.rsplit(":", 1)[1])
        return self

    def is_running(self) -> bool:
        return self.broker is not None and self.broker.is_running()

    def poll(self) -> bool:
        """Start the broker again if it exited (with a back-off while starts fail); True
        when it was restarted now."""
        if self._stopped or self.is_running() or time.monotonic() < self._next_start:
            return False
        log.error("broker exited: starting it again", extra={
            "engine": self.engine, "port": self.port,
            "data_dir": str(self.data_dir) if self.data_dir else None})
        if self.broker is not None:
            self.broker.kill()  # reap it (and the process group) before the new one
        try:
            self.start()
        except BrokerError as exc:  # e.g. its port still held by the dying process
            self._failures += 1
            backoff = min(self.max_backoff, 0.5 * 2 ** min(self._failures, 5))
            self._next_start = time.monotonic() + backoff
            log.warning("broker restart failed: trying again", extra={
                "error": str(exc), "retry_in_s": backoff})
            return False
        self._failures = 0
        self.restarts += 1
        log.info("broker restarted", extra={"bootstrap": self.bootstrap,
                                            "restarts": self.restarts})
        self.on_restart(self.bootstrap)
        return True

    def kill(self) -> int | None:
        """SIGKILL the broker (crash tests); :meth:`poll` starts it again."""
        return self.broker.kill() if self.broker is not None else None

    def stop(self) -> None:
        self._stopped = True
        if self.broker is not None:
            self.broker.stop()
