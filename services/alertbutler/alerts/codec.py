"""The wire format: Confluent framing around a schemaless Avro body.

    byte 0      magic byte, always 0
    bytes 1-4   schema id, big-endian unsigned
    bytes 5-    the record, Avro binary encoding, no container header

Encoding writes with the current version of a kind's schema: a writer generated from the
schema (:mod:`alertbutler.alerts._fastwrite`, several times faster on alerts) with fastavro's
``schemaless_writer`` as the reference and the fallback for anything the generated writer
does not handle exactly. Decoding picks the writer's schema by the id and resolves it to
the reader's version (by default the current version of the same kind), so a record written
with an older version reads as the newer one wherever Avro's resolution rules allow. When
writer and reader are the same version a generated reader (:mod:`._fastread`) reads it;
fastavro reads everything else and explains every error.

A :class:`Codec` owns one id space: by default the fixed ids of ``schemas/ids.toml``; with a
Schema Registry the ids on the wire may be the registry's, mapped to ours
(:mod:`alertbutler.alerts.registry`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, cast

from fastavro import schemaless_reader, schemaless_writer

from alertbutler.alerts._errors import (
    AlertFormatError,
    BadMagicByteError,
    SchemaViolationError,
    TruncatedMessageError,
    UnknownSchemaError,
)
from alertbutler.alerts._fastread import FastReadError, compile_reader
from alertbutler.alerts._fastwrite import Fallback, compile_writer
from alertbutler.alerts._validate import explain
from alertbutler.alerts.schemas import SchemaInfo, current_ids, known_schemas, schema_info

MAGIC = 0
HEADER = struct.Struct(">bI")
HEADER_SIZE = HEADER.size  # 5


class Decoded(NamedTuple):
    """A decoded message: the writer's (fixed) schema id, its kind and the record."""

    schema_id: int
    kind: str
    record: dict[str, Any]


def split_header(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Check the framing and return (schema id on the wire, Avro body)."""
    if data is None or len(data) == 0:
        raise TruncatedMessageError("empty message: expected a 5-byte header and an Avro body")
    view = memoryview(data)
    if view[0] != MAGIC:
        raise BadMagicByteError(
            f"wrong magic byte {view[0]} (0x{view[0]:02x}): not Confluent wire format, which "
            "starts with 0")
    if len(view) < HEADER_SIZE:
        raise TruncatedMessageError(
            f"message of {len(view)} bytes is shorter than the 5-byte wire-format header")
    _, schema_id = HEADER.unpack_from(view)
    return schema_id, view[HEADER_SIZE:]


class Codec:
    """Encode and decode messages of every alertbutler kind in one id space.

    ``to_wire`` maps our fixed ids to the ids written on the wire (identity by default);
    ``lookup`` is asked for a wire id seen in a message but not in the map (a registry
    fetch), and returns our fixed id or None.
    """

    def __init__(self, to_wire: Mapping[int, int] | None = None,
                 lookup: Callable[[int], int | None] | None = None) -> None:
        self._schemas = known_schemas()
        self._to_wire = {sid: (to_wire or {}).get(sid, sid) for sid in self._schemas}
        self._from_wire = {wire: sid for sid, wire in self._to_wire.items()}
        for sid in self._schemas:  # messages written with the fixed ids stay readable
            self._from_wire.setdefault(sid, sid)
        self._lookup = lookup
        self._headers = {sid: HEADER.pack(MAGIC, wire) for sid, wire in self._to_wire.items()}
        self._current = current_ids()
        self._resolution: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._wraps = {sid: _complex_unions(info.parsed) for sid, info in self._schemas.items()}
        self._fast: dict[int, Any] = {}
        self._fast_readers: dict[int, Any] = {}

    # ----------------------------------------------------------------- encoding
    def wire_id(self, schema: int | str) -> int:
        """The id written on the wire for a schema (id, kind or kind:version)."""
        return self._to_wire[self._info(schema).id]

    def encode(self, record: Mapping[str, Any], schema: int | str = "alert") -> bytes:
        """One message: header plus the record written with ``schema`` (default: current alert)."""
        info = self._info(schema)
        return self._encode(info, self._headers[info.id], self._writer(info), record, None)

    def encode_many(self, records: Iterable[Mapping[str, Any]],
                    schema: int | str = "alert") -> list[bytes]:
        """Many messages of one schema; the schema lookup is paid once."""
        info = self._info(schema)
        header, writer, encode = self._headers[info.id], self._writer(info), self._encode
        return [encode(info, header, writer, record, i) for i, record in enumerate(records)]

    def _writer(self, info: SchemaInfo) -> Any:
        """The generated writer of a schema (:mod:`._fastwrite`), compiled on first use."""
        if info.id not in self._fast:
            self._fast[info.id] = compile_writer(info.parsed)
        return self._fast[info.id]

    def _encode(self, info: SchemaInfo, header: bytes, writer: Any,
                record: Mapping[str, Any], index: int | None) -> bytes:
        if writer is not None:
            try:
                return writer(record, header)
            except Fallback:
                pass  # fastavro is the reference: it writes what it accepts or says why not
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, info.parsed, _wrap(record, self._wraps[info.id]))
        except Exception as exc:
            raise _violation(info, record, exc, index=index) from None
        return out.getvalue()

    # ----------------------------------------------------------------- decoding
    def schema_of(self, data: bytes | bytearray | memoryview) -> SchemaInfo:
        """The writer schema of a message, from its header alone."""
        wire_id, _ = split_header(data)
        return self._schemas[self._fixed_id(wire_id)]

    def decode(self, data: bytes | bytearray | memoryview,
               reader: int | str | None = None) -> Decoded:
        """Decode one message, resolving the writer's schema to ``reader`` (default: the
        current version of the writer's kind)."""
        wire_id, body = split_header(data)
        writer = self._schemas[self._fixed_id(wire_id)]
        reader_id = self._current[writer.kind] if reader is None else self._info(reader).id
        if reader_id == writer.id:  # no resolution: the generated reader, if it can
            fast = self._fast_readers.get(writer.id, False)
            if fast is False:
                fast = self._fast_readers[writer.id] = compile_reader(writer.parsed)
            if fast is not None:
                raw = data if type(data) is bytes else bytes(data)
                try:
                    record, end = fast(raw, HEADER_SIZE)
                    if end == len(raw):
                        return Decoded(writer.id, writer.kind, record)
                except FastReadError:
                    pass  # fastavro reads it, or says precisely what is wrong
        key = (writer.id, reader_id)
        pair = self._resolution.get(key)
        if pair is None:
            target = self._schemas[reader_id]
            pair = (writer.parsed, None if reader_id == writer.id else target.parsed)
            self._resolution[key] = pair
        buf = io.BytesIO(body)
        try:
            record = schemaless_reader(buf, pair[0], pair[1])
        except (EOFError, IndexError):  # fastavro reads past the end in either form
            raise TruncatedMessageError(
                f"message truncated: its Avro body ({len(body)} bytes) ends inside a "
                f"{writer.kind} {writer.version_text} record (schema id {writer.id})") from None
        except Exception as exc:
            raise AlertFormatError(
                f"cannot decode a {writer.kind} {writer.version_text} record (schema id "
                f"{writer.id}): {type(exc).__name__}: {exc}") from None
        left = len(body) - buf.tell()
        if left:
            raise AlertFormatError(
                f"{left} bytes left after the {writer.kind} record (schema id {writer.id}): "
                "the message is corrupt or was written with another schema")
        # fastavro types a datum as any Avro value; every schema here is a record
        return Decoded(writer.id, writer.kind, cast(dict[str, Any], record))

    def decode_alert(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Decode a message that must be an alert."""
        decoded = self.decode(data)
        if decoded.kind != "alert":
            raise AlertFormatError(
                f"message is a {decoded.kind} (schema id {decoded.schema_id}), not an alert")
        return decoded.record

    # ----------------------------------------------------------------- ids
    def _info(self, schema: int | str) -> SchemaInfo:
        if isinstance(schema, int) and schema in self._schemas:
            return self._schemas[schema]
        return schema_info(schema)

    def _fixed_id(self, wire_id: int) -> int:
        fixed = self._from_wire.get(wire_id)
        if fixed is None and self._lookup is not None:
            fixed = self._lookup(wire_id)
            if fixed is not None:
                self._from_wire[wire_id] = fixed
        if fixed is None:
            raise UnknownSchemaError(
                f"unknown schema id {wire_id} in the message header (known ids: "
                f"{', '.join(map(str, sorted(self._from_wire)))})", schema_id=wire_id)
        return fixed


def _complex_unions(parsed: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Top-level fields typed ``["null", <record or array>]``, with the branch's name.

    fastavro picks a union branch by validating the datum against each branch, which for an
    array of 20 records costs as much as writing it; naming the branch (fastavro's tuple
    notation) skips that and doubles the speed of alert serialization.
    """
    wraps = []
    for fld in parsed.get("fields", ()):
        branches = fld["type"] if isinstance(fld["type"], list) else []
        complex_ = [b for b in branches if isinstance(b, dict) or (
            isinstance(b, str) and b not in ("null", "boolean", "int", "long", "float",
                                             "double", "bytes", "string"))]
        if len(branches) == 2 and "null" in branches and len(complex_) == 1:
            branch = complex_[0]
            if isinstance(branch, dict):
                name = branch["name"] if branch["type"] in ("record", "enum", "fixed") \
                    else branch["type"]
            else:
                name = branch
            wraps.append((fld["name"], name))
    return tuple(wraps)


def _wrap(record: Mapping[str, Any], wraps: tuple[tuple[str, str], ...]) -> Mapping[str, Any]:
    if not wraps:
        return record
    out = dict(record)
    for name, branch in wraps:
        value = out.get(name)
        if value is not None and not isinstance(value, tuple):
            out[name] = (branch, value)
    return out


def _violation(info: SchemaInfo, record: Any, exc: Exception,
               index: int | None = None) -> AlertFormatError:
    where = f"record {index}: " if index is not None else ""
    problem = explain(info.parsed, record, info.parsed.get("__named_schemas", {}))
    if problem is None:  # the writer failed for a reason the checker does not model
        problem = f"{type(exc).__name__}: {exc}"
        return SchemaViolationError(
            f"{where}{info.kind} {info.version_text} (schema id {info.id}): {problem}")
    field = problem.split("'")[1] if "'" in problem else None
    return SchemaViolationError(
        f"{where}{info.kind} {info.version_text} (schema id {info.id}): {problem}", field=field)
