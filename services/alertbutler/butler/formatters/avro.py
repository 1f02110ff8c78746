"""Avro container files of record batches (fastavro): alert batches at rest."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from ..builtin_storage import RecordBatch
from .base import Formatter


class AvroFormatter(Formatter):
    format = "avro"
    extension = ".avro"
    in_memory = True

    def write(self, obj: RecordBatch, path: Path, storage_class: str) -> None:
        path.write_bytes(self.to_bytes(obj, storage_class))

    def to_bytes(self, obj: RecordBatch, storage_class: str) -> bytes:
        import fastavro

        buf = io.BytesIO()
        fastavro.writer(buf, fastavro.parse_schema(obj.schema), obj.records, codec="deflate")
        return buf.getvalue()

    def from_bytes(self, data: bytes, storage_class: str) -> RecordBatch:
        import fastavro

        reader = fastavro.reader(io.BytesIO(data))
        # fastavro types schemas and datums as any Avro value; a record batch holds records
        records = cast(list[dict[str, Any]], list(reader))
        return RecordBatch(cast(dict[str, Any], reader.writer_schema), records)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        return self.from_bytes(path.read_bytes(), storage_class)
