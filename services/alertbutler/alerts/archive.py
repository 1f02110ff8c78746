"""Avro container files: the archive form of alerts (and the form Rubin ships samples in).

A container file carries its writer schema in its header, so a reader needs no id; reading
can still resolve the records to one of our schema versions (``reader="alert"``), which is
how alertbutler reads Rubin's own sample alerts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, cast

import fastavro

from alertbutler.alerts._errors import AlertFormatError
from alertbutler.alerts.codec import _complex_unions, _wrap
from alertbutler.alerts.schemas import schema_info

#: Block compression of archive files; ``deflate`` needs nothing beyond fastavro.
DEFAULT_CODEC = "deflate"


def write_alerts(fh: BinaryIO, records: Iterable[Mapping[str, Any]], *,
                 schema: int | str = "alert", codec: str = DEFAULT_CODEC,
                 metadata: Mapping[str, str] | None = None) -> int:
    """Write records as a container file to an open binary file; returns the count.
    ``metadata``: more header entries (``alertbutler.*`` keys), which Avro readers ignore."""
    info = schema_info(schema)
    wraps = _complex_unions(info.parsed)
    count = 0

    def counted() -> Iterator[Mapping[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield _wrap(record, wraps)

    header = {**(metadata or {}), "alertbutler.schema_id": str(info.id)}
    fastavro.writer(fh, info.parsed, counted(), codec=codec, metadata=header)
    return count


def write_alert_file(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]], *,
                     schema: int | str = "alert", codec: str = DEFAULT_CODEC,
                     metadata: Mapping[str, str] | None = None) -> int:
    """Write records to a new container file with one of our schemas; returns the count."""
    with open(path, "wb") as fh:
        return write_alerts(fh, records, schema=schema, codec=codec, metadata=metadata)


def read_alerts(fh: BinaryIO, *, reader: int | str | None = None,
                name: str = "<stream>") -> Iterator[dict[str, Any]]:
    """Records of a container file open for reading (see :func:`read_alert_file`)."""
    reader_schema = schema_info(reader).parsed if reader is not None else None
    try:
        # fastavro types a datum as any Avro value; alert schemas are records
        yield from cast(Iterator[dict[str, Any]],
                        fastavro.reader(fh, reader_schema=reader_schema))
    except (ValueError, EOFError, fastavro.read.SchemaResolutionError) as exc:
        raise AlertFormatError(f"{name}: not a readable Avro container file of alerts: "
                               f"{type(exc).__name__}: {exc}") from None


def read_alert_file(path: str | os.PathLike[str], *,
                    reader: int | str | None = None) -> Iterator[dict[str, Any]]:
    """Records of a container file, resolved to ``reader`` (one of our schemas) if given."""
    with open(path, "rb") as fh:
        yield from read_alerts(fh, reader=reader, name=str(path))


def is_container_file(path: str | os.PathLike[str]) -> bool:
    """True if the file starts with the Avro container magic ``Obj\\x01``."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"Obj\x01"
