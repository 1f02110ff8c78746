"""The alert schema as the filter compiler sees it: typed field paths.

Built from an Avro record schema (a parsed ``.avsc``, named types resolved), so the filter
language follows whatever alert schema version is current without a table kept by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Filter-language type of each Avro primitive.
_PRIMITIVES: dict[str, str] = {
    "int": "number", "long": "number", "float": "number", "double": "number",
    "string": "string", "boolean": "boolean", "bytes": "bytes", "fixed": "bytes",
    "enum": "string",
}

Kind = Literal["number", "string", "boolean", "bytes", "record", "array"]


@dataclass(frozen=True)
class FieldType:
    """One field: its filter type, whether it may be null, its Avro type and children."""

    kind: Kind
    nullable: bool
    avro: str                       # the Avro type name ("float", "long", "record", ...)
    record: RecordType | None = None  # for records, and for arrays of records (the item)

    @property
    def integer(self) -> bool:
        return self.avro in ("int", "long")


@dataclass(frozen=True)
class RecordType:
    name: str
    fields: dict[str, FieldType] = field(default_factory=dict)


def record_type(schema: Mapping[str, Any]) -> RecordType:
    """The typed view of an Avro record schema (parsed by fastavro or plain JSON)."""
    named: dict[str, Any] = {}
    named.update(schema.get("__named_schemas", {}) or {})
    return _record(schema, named, schema.get("namespace", ""))


def _record(schema: Mapping[str, Any], named: dict[str, Any], namespace: str) -> RecordType:
    name = str(schema["name"])
    namespace = schema.get("namespace", namespace)
    full = name if "." in name else f"{namespace}.{name}" if namespace else name
    named[full] = schema
    named.setdefault(name.rsplit(".", 1)[-1], schema)
    out = RecordType(name.rsplit(".", 1)[-1])
    for fld in schema["fields"]:
        out.fields[fld["name"]] = _field(fld["type"], named, namespace)
    return out


def _field(avro: Any, named: dict[str, Any], namespace: str) -> FieldType:
    nullable = False
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        nullable = len(branches) < len(avro)
        if len(branches) != 1:  # a true union: only null tests make sense
            return FieldType("bytes", nullable, "union")
        avro = branches[0]
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return FieldType(_PRIMITIVES[avro], nullable, avro)  # type: ignore[arg-type]
        target = named.get(avro) or named.get(f"{namespace}.{avro}") \
            or named.get(avro.rsplit(".", 1)[-1])
        if target is None:
            raise ValueError(f"unknown named type {avro!r} in the alert schema")
        return _with_null(_field(target, named, namespace), nullable)
    kind = avro.get("type")
    if kind == "record":
        return FieldType("record", nullable, "record", _record(avro, named, namespace))
    if kind == "array":
        item = _field(avro["items"], named, namespace)
        return FieldType("array", nullable, "array", item.record)
    if kind in ("enum", "fixed"):
        named[avro["name"]] = avro
        return FieldType(_PRIMITIVES[kind], nullable, kind)  # type: ignore[arg-type]
    if isinstance(kind, str | list | dict):  # {"type": "long", "logicalType": ...}
        return _with_null(_field(kind, named, namespace), nullable)
    raise ValueError(f"unsupported Avro type {avro!r}")


def _with_null(ft: FieldType, nullable: bool) -> FieldType:
    return FieldType(ft.kind, ft.nullable or nullable, ft.avro, ft.record)


@functools.cache
def alert_record_type() -> RecordType:
    """The current alert schema's typed view (from the alerts library)."""
    from alertbutler.alerts import load_schema

    return record_type(load_schema("alert"))
