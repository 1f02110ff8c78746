"""Errors of the alerts package, in one place.

Every format problem is an ``AlertFormatError`` (a ``ValueError``: the bytes or the record are
bad, retrying will not help); the subclasses say which problem, and the messages name it (and
the field, when there is one) so an operator can act on a single log line.
"""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError
from alertbutler.kafka.produce import DeliveryError

__all__ = ["AlertFormatError", "BadMagicByteError", "CutoutError", "DeliveryError",
           "SchemaViolationError", "TruncatedMessageError",
           "UnknownSchemaError"]


class AlertFormatError(AlertbutlerError, ValueError):
    """A message or record does not follow alertbutler's alert formats."""


class UnknownSchemaError(AlertFormatError, LookupError):
    """A schema id (or name) that no known schema carries."""

    def __init__(self, message: str, *, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.schema_id = schema_id


class BadMagicByteError(AlertFormatError):
    """The first byte is not the Confluent wire format's magic byte 0."""


class TruncatedMessageError(AlertFormatError):
    """The message ends before its header or its Avro body is complete."""


class SchemaViolationError(AlertFormatError):
    """A record does not fit its schema: a required field is missing or has the wrong type."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CutoutError(AlertbutlerError, ValueError):
    """A cutout cannot be made or read (bad size, shapes that differ, not a FITS file)."""
