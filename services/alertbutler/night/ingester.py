"""The L1 ingester of a night run in one process: an asyncio task on a thread of its own.

``alertbutler run`` and ``night replay`` keep their ingester beside the fan-out, in the
process that watches the night (``alertbutler up`` supervises ``alertbutler ingest``
instead). It takes every partition of the alert topic without a group join.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from alertbutler.config import Config

log = logging.getLogger(__name__)


class IngesterThread:
    """The ingester service on a thread; a failure is kept in :attr:`error` for the caller."""

    def __init__(self, config: Config, *, group: str | None = None) -> None:
        from alertbutler.ingest import Ingester, IngestSettings
        from alertbutler.kafka import aiokafka_settings, confluent_settings, group_id

        bootstrap = config.kafka.bootstrap_servers
        self.ingester = Ingester(IngestSettings(
            topics=(config.kafka.alert_topic,), db_url=config.l1db_url,
            group=group_id(config, group or config.ingest.group),
            dead_letter_topic=config.kafka.dead_letter_topic,
            aiokafka=aiokafka_settings(config, bootstrap),
            confluent=confluent_settings(config, bootstrap),
            max_batch_messages=config.ingest.max_batch_messages,
            max_batch_bytes=config.ingest.max_batch_bytes,
            max_batch_ms=config.ingest.max_batch_ms, assign_all=True))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="ingester", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.ingester.run())
        except BaseException as exc:
            self.error = exc
            log.exception("ingester failed")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.ingester.stop)
            self.thread.join(timeout=30)
