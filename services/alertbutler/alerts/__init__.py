"""Alert packets: Avro schemas, schema ids, the wire format, cutouts and publishing.

Messages use the Confluent wire format (magic byte 0, a 4-byte big-endian schema id, an Avro
body). Alert records follow the names, types and nullability of Rubin's lsst.v11 alert
format, so the existing alert-broker ecosystem reads them; the ids are alertbutler's own
(``schemas/ids.toml``). Consumers of an alert topic see other kinds too (the
end-of-visit-detector marker) and tell them apart by :attr:`Decoded.kind`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from alertbutler.alerts._errors import (
    AlertFormatError,
    BadMagicByteError,
    CutoutError,
    DeliveryError,
    SchemaViolationError,
    TruncatedMessageError,
    UnknownSchemaError,
)
from alertbutler.alerts.codec import Codec, Decoded, split_header
from alertbutler.alerts.messages import (
    CONTROL_SUFFIX,
    control_topic,
    default_codec,
    encode_next_visit,
    encode_visit_detector_end,
    next_visit_record,
    visit_detector_end_record,
)
from alertbutler.alerts.schemas import SchemaInfo, known_schemas, load_schema, schema_info

#: Id of the alert schema writers use now (``schemas/ids.toml``; a test keeps them equal).
CURRENT_ALERT_SCHEMA_ID = 900102
NEXT_VISIT_SCHEMA_ID = 910100
VISIT_DETECTOR_END_SCHEMA_ID = 920101


def encode_alert(record: Mapping[str, Any]) -> bytes:
    """One alert record as a wire-format message (current alert schema, fixed ids)."""
    return default_codec().encode(record, "alert")


def encode_alerts(records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Many alert records as wire-format messages, in order."""
    return default_codec().encode_many(records, "alert")


def encode_message(record: Mapping[str, Any], kind: str | int) -> bytes:
    """A wire-format message of any kind (``"work_item"``, ``"next_visit"``, ...), current
    version of that kind, or of a given schema id or ``"kind:major.minor"``."""
    return default_codec().encode(record, kind)


def decode_message(data: bytes | bytearray | memoryview) -> Decoded:
    """Decode any alertbutler message, resolved to the current version of its kind."""
    return default_codec().decode(data)


def decode_alert(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode a message that must be an alert; other kinds raise ``AlertFormatError``."""
    return default_codec().decode_alert(data)


__all__ = [
    "CONTROL_SUFFIX",
    "CURRENT_ALERT_SCHEMA_ID",
    "NEXT_VISIT_SCHEMA_ID",
    "VISIT_DETECTOR_END_SCHEMA_ID",
    "AlertFormatError",
    "BadMagicByteError",
    "Codec",
    "CutoutError",
    "Decoded",
    "DeliveryError",
    "SchemaInfo",
    "SchemaViolationError",
    "TruncatedMessageError",
    "UnknownSchemaError",
    "control_topic",
    "decode_alert",
    "decode_message",
    "default_codec",
    "encode_alert",
    "encode_alerts",
    "encode_message",
    "encode_next_visit",
    "encode_visit_detector_end",
    "known_schemas",
    "load_schema",
    "next_visit_record",
    "schema_info",
    "split_header",
    "visit_detector_end_record",
]
