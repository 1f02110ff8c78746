"""The butler formatter that archives alert datasets as Avro container files.

Registered for format ``"avro"`` and the storage classes ``AlertBatch`` and ``AlertPacket``,
so a file datastore configured with ``formats={"AlertBatch": "avro"}`` (chained after the
publish datastore) keeps a copy of every alert dataset in the same alert schema the stream
uses, readable by any Avro tool and by ``alertbutler alerts dump FILE``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alertbutler.alerts.archive import (
    DEFAULT_CODEC,
    read_alert_file,
    read_alerts,
    write_alert_file,
    write_alerts,
)
from alertbutler.butler.formatters import FORMATTERS, Formatter


class AlertAvroFormatter(Formatter):
    """AlertBatch (list of alert records) or AlertPacket (one record) <-> Avro container."""

    format = "avro"
    extension = ".avro"
    in_memory = False

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        records = [obj] if storage_class == "AlertPacket" else obj
        write_alert_file(path, records, codec=DEFAULT_CODEC)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        records = list(read_alert_file(path, reader="alert"))
        return records[0] if storage_class == "AlertPacket" else records

    def to_bytes(self, obj: Any, storage_class: str) -> bytes:
        buf = io.BytesIO()
        write_alerts(buf, [obj] if storage_class == "AlertPacket" else obj)
        return buf.getvalue()

    def from_bytes(self, data: bytes, storage_class: str) -> Any:
        records = list(read_alerts(io.BytesIO(data), reader="alert"))
        return records[0] if storage_class == "AlertPacket" else records


def register_formatters() -> None:
    """Add the formatter to the butler's formatter table (idempotent)."""
    FORMATTERS.register(AlertAvroFormatter(), ("AlertBatch", "AlertPacket"))


register_formatters()
