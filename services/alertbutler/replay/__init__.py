"""Replay: recorded nights re-run through the pipeline, and alert archives streamed into Kafka.

Three uses (``docs/replay.md``): a pipeline scientist replays a night to see exactly which
alerts a change altered (:mod:`~alertbutler.replay.compare`); an operator replays a night to
reproduce a failure; an alert-broker developer streams a recorded alert archive (ours,
ZTF-style or Rubin-format) into a topic at a chosen rate (:func:`stream_alerts`).
"""

from alertbutler.replay.clock import Pacer, RatePacer, ReplayClock
from alertbutler.replay.errors import (
    ChecksumMismatchError,
    CorruptFileError,
    MissingFileError,
    RecordingError,
    ReplayError,
    RunNameError,
    SourceError,
    StreamError,
    TruncatedArchiveError,
    UnknownAlertSchemaError,
)
from alertbutler.replay.recording import (
    Recording,
    RecordingWriter,
    ScheduledEvent,
    check_run_name,
    replay_run_name,
)
from alertbutler.replay.schema_ids import (
    AlertFormat,
    SchemaIds,
    WriterSchema,
    load_sidecar,
    make_registry_client,
)
from alertbutler.replay.sources import AlertSource, ArchivedAlert
from alertbutler.replay.stream import StreamSummary, producer_settings, stream_alerts

__all__ = [
    "AlertFormat",
    "AlertSource",
    "ArchivedAlert",
    "ChecksumMismatchError",
    "CorruptFileError",
    "MissingFileError",
    "Pacer",
    "RatePacer",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "ReplayClock",
    "ReplayError",
    "RunNameError",
    "ScheduledEvent",
    "SchemaIds",
    "SourceError",
    "StreamError",
    "StreamSummary",
    "TruncatedArchiveError",
    "UnknownAlertSchemaError",
    "WriterSchema",
    "check_run_name",
    "load_sidecar",
    "make_registry_client",
    "producer_settings",
    "replay_run_name",
    "stream_alerts",
]
