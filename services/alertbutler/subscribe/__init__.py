"""Consumer subscriptions: read an alert stream from any start position, filter it, forward it.

``open_stream(url, start=..., end=..., group=...)`` gives an :class:`AlertStream`, a context
manager that is an iterator and an async iterator of :class:`StreamAlert`, with batch reads.
``compile_filter(text)`` turns a filter expression into a checked, vectorized
:class:`Filter`; the filter service (``alertbutler filter serve``) runs many at once.
"""

from alertbutler.subscribe.errors import (
    FilterConfigError,
    FilterError,
    StartPositionError,
    StreamURLError,
    SubscribeError,
)
from alertbutler.subscribe.positions import (
    AtTime,
    Committed,
    Earliest,
    EndOfPartitions,
    LastN,
    Latest,
    parse_end,
    parse_start,
)
from alertbutler.subscribe.stream import (
    AlertStream,
    StreamAlert,
    alert_bytes_decoder,
    default_decoder,
    open_stream,
    raw_decoder,
)
from alertbutler.subscribe.url import StreamURL

__all__ = [
    "AlertStream",
    "AtTime",
    "Committed",
    "Earliest",
    "EndOfPartitions",
    "FilterConfigError",
    "FilterError",
    "LastN",
    "Latest",
    "StartPositionError",
    "StreamAlert",
    "StreamURL",
    "StreamURLError",
    "SubscribeError",
    "alert_bytes_decoder",
    "default_decoder",
    "open_stream",
    "parse_end",
    "parse_start",
    "raw_decoder",
]
