"""Explain why a record does not fit its schema, naming the field.

Only called after fastavro's writer refused a record (the fast path never pays for it):
fastavro's own messages name a Python type, not the field, and a missing required field and
a wrong type deserve different words.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

_MISSING = object()

_PRIMITIVE_CHECKS: dict[str, Any] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63,
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bytes": lambda v: isinstance(v, bytes | bytearray | memoryview),
    "string": lambda v: isinstance(v, str),
}


def explain(schema: Any, value: Any, named: Mapping[str, Any], path: str = "") -> str | None:
    """The first problem of ``value`` against ``schema`` as a sentence, or None if it fits."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_CHECKS:
            return None if _PRIMITIVE_CHECKS[schema](value) else _wrong(path, schema, value)
        return explain(named[schema], value, named, path)
    if isinstance(schema, list):  # a union: fits if any branch fits
        if value is None and "null" in schema:
            return None
        problems = [explain(branch, value, named, path) for branch in schema if branch != "null"]
        if any(p is None for p in problems):
            return None
        if len(problems) == 1:
            return problems[0]
        return _wrong(path, " or ".join(_type_name(b) for b in schema), value)
    kind = schema["type"]
    if kind == "record":
        if not isinstance(value, Mapping):
            return _wrong(path, f"record {schema['name']}", value)
        for fld in schema["fields"]:
            sub = f"{path}.{fld['name']}" if path else fld["name"]
            item = value.get(fld["name"], _MISSING)
            if item is _MISSING or item is None:
                if _nullable(fld["type"], named) or "default" in fld:
                    continue
                return f"missing required field '{sub}' ({_type_name(fld['type'])})"
            problem = explain(fld["type"], item, named, sub)
            if problem:
                return problem
        return None
    if kind == "array":
        if not isinstance(value, list | tuple):
            return _wrong(path, "array", value)
        for i, item in enumerate(value):
            problem = explain(schema["items"], item, named, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if kind == "enum":
        if value not in schema["symbols"]:
            return f"field '{path}' must be one of {schema['symbols']}, got {value!r}"
        return None
    if kind == "map":
        if not isinstance(value, Mapping):
            return _wrong(path, "map", value)
        return None
    if schema.get("logicalType") == "timestamp-micros":
        if isinstance(value, datetime.datetime) or _PRIMITIVE_CHECKS["long"](value):
            return None
        return _wrong(path, "timestamp (datetime or microseconds)", value)
    return explain(kind, value, named, path)


def _nullable(schema: Any, named: Mapping[str, Any]) -> bool:
    return schema == "null" or (isinstance(schema, list) and "null" in schema)


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " or ".join(_type_name(s) for s in schema)
    return str(schema.get("name") or schema.get("logicalType") or schema["type"])


def _wrong(path: str, expected: str, value: Any) -> str:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    where = f"field '{path}'" if path else "record"
    return f"{where} must be {expected}, got {type(value).__name__} {shown}"
