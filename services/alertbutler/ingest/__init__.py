"""The asynchronous L1 database ingester: alert topics -> L1 database, exactly once in effect.

    settings = IngestSettings(topics=("alerts",), db_url=url, group="alertbutler-ingest", ...)
    totals = await Ingester(settings).run()        # until .stop(), SIGTERM or SIGINT

See :mod:`alertbutler.ingest.service` for the commit protocol.
"""

from alertbutler.ingest.batch import DeadLetter, SortedBatch, sort_batch
from alertbutler.ingest.deadletter import DeadLetterError, DeadLetterProducer
from alertbutler.ingest.service import Ingester, IngestSettings, IngestTotals, run_ingester
from alertbutler.ingest.status import IngestStatus, PartitionLag, format_status, ingest_status

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterProducer",
    "IngestSettings",
    "IngestStatus",
    "IngestTotals",
    "Ingester",
    "PartitionLag",
    "SortedBatch",
    "format_status",
    "ingest_status",
    "run_ingester",
    "sort_batch",
]
