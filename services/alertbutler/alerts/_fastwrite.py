"""A specialised Avro binary writer, generated from a schema, for the hot path.

fastavro's schemaless writer interprets the schema for every datum and picks union branches
by validating the datum against each branch; an alert (41 nested records, ~1,300 fields,
most of them ``["null", X]`` unions) costs ~1 ms that way. This module turns a parsed schema
into straight-line Python (one function per record type) that writes the same bytes several
times faster.

It covers what alertbutler's schemas use (primitives, ``["null", X]`` unions, records,
arrays, enums, plain ``long`` timestamps). Anything else in a schema makes :func:`compile_writer`
return None, and any datum the generated code does not handle exactly (a numpy scalar, a
datetime, a wrong type, a missing required field) raises :class:`Fallback`, after which the
caller writes the record with fastavro, which is the reference: the tests check that both
produce identical bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from alertbutler.alerts._codegen import RecordCodeGen

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_BIG = 4096  # bytes values this long are not copied into the growing buffer
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Fallback(Exception):
    """The generated writer cannot write this datum; use fastavro."""


class _Unsupported(Exception):
    pass


#: varint bytes of recently written longs: ids repeat within an alert (diaObjectId in every
#: history row) and across alerts (visits), and the varint loop is the costliest step.
_VARINTS: dict[int, bytes] = {}
_VARINTS_MAX = 200_000


def _varint(b: bytearray, n: int) -> None:
    """Append the zig-zag varint of a long ``n`` (checked: an int in the long range)."""
    if type(n) is int:
        e = _VARINTS.get(n)
        if e is not None:
            b += e
            return
    elif type(n) is not bool:
        raise Fallback
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise Fallback
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    e = bytes(out)
    if len(_VARINTS) >= _VARINTS_MAX:
        _VARINTS.clear()
    _VARINTS[int(n)] = e
    b += e


def _varint32(b: bytearray, n: int) -> None:
    """The same for an Avro ``int``: the range is 32 bits."""
    if (type(n) is not int and type(n) is not bool) or not _INT_MIN <= n <= _INT_MAX:
        raise Fallback
    _varint(b, n)


def _fail(*_: Any) -> None:
    raise Fallback


class _Gen(RecordCodeGen):
    tmp_prefix, func_prefix, params = "v", "_w", "r, b, p"

    def record_body(self, schema: dict[str, Any]) -> list[str]:
        body: list[str] = ["g = r.get", "a = b.append"]
        for field in schema["fields"]:
            v = self.tmp()
            if "default" in field:
                default = self.const(field["default"])
                body.append(f"{v} = g({field['name']!r}, {default})")
            else:
                body.append(f"{v} = g({field['name']!r})")
            body.extend(self.write(field["type"], v))
        return body

    def write(self, schema: Any, v: str) -> list[str]:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, v)
            return self.write(self.named[schema], v)
        if isinstance(schema, list):
            if len(schema) == 2 and schema[0] == "null" and schema[1] != "null":
                branch = schema[1]
                if branch == "boolean":
                    return [f"if {v} is None: a(0)", f"elif {v} is True: b += b'\\x02\\x01'",
                            f"elif {v} is False: b += b'\\x02\\x00'", "else: _fail()"]
                # fastavro picks a union branch by type, and a bool is no number there
                head = [f"if {v} is None: a(0)", f"elif {v} is True or {v} is False: _fail()"]
                if branch == "float":  # the commonest field: one pack for index and value
                    return [*head, f"else: b += _pnf(2, {v})"]
                if branch == "double":
                    return [*head, f"else: b += _pnd(2, {v})"]
                inner = self.write(branch, v)
                return [*head, "else:", "    a(2)", *("    " + line for line in inner)]
            raise _Unsupported(f"union {schema}")
        kind = schema["type"]
        if kind == "record":
            return [f"if type({v}) is not dict: _fail()", f"{self.record_func(schema)}({v}, b, p)"]
        if kind == "array":
            item = self.tmp()
            inner = self.write(schema["items"], item)
            return [f"if type({v}) is not list: _fail()",
                    f"if {v}:",
                    f"    _varint(b, len({v}))",
                    f"    for {item} in {v}:",
                    *("        " + line for line in inner),
                    "a(0)"]
        if kind == "enum":
            index = self.const({s: i for i, s in enumerate(schema["symbols"])})
            return [f"if {v} not in {index}: _fail()", f"_varint(b, {index}[{v}])"]
        if "logicalType" in schema and schema["type"] == "long":
            return self.primitive("long", v)  # datetimes fail the int check: fastavro
        if kind in _PRIMITIVES:
            return self.primitive(kind, v)
        raise _Unsupported(f"type {kind}")

    def primitive(self, kind: str, v: str) -> list[str]:
        # Type errors (a str where a number belongs, a float where an int does) raise in
        # the comparison, the shift or the pack; the caller turns them into Fallback.
        if kind == "null":
            return [f"if {v} is not None: _fail()"]
        if kind == "boolean":
            return [f"if {v} is True: a(1)", f"elif {v} is False: a(0)", "else: _fail()"]
        if kind == "long":
            return [f"if 0 <= {v} < 64: a({v} << 1)", f"else: _varint(b, {v})"]
        if kind == "int":
            return [f"if 0 <= {v} < 64: a({v} << 1)", f"else: _varint32(b, {v})"]
        if kind == "float":
            return [f"b += _pf({v})"]
        if kind == "double":
            return [f"b += _pd({v})"]
        if kind == "string":
            return [f"if type({v}) is not str: _fail()", f"e = {v}.encode()",
                    "_varint(b, len(e))", "b += e"]
        if kind == "bytes":  # big values (cutouts) join the output once, uncopied until then
            return [f"if type({v}) is not bytes: _fail()", f"_varint(b, len({v}))",
                    f"if len({v}) < {_BIG}: b += {v}",
                    f"else: p.append(bytes(b)); p.append({v}); b.clear()"]
        raise _Unsupported(kind)


def compile_writer(parsed: dict[str, Any]) -> Callable[[dict[str, Any], bytes], bytes] | None:
    """A function ``write(record, prefix) -> bytes`` returning ``prefix`` followed by the
    record's Avro binary encoding (raising :class:`Fallback` for data it does not handle),
    or None when the schema uses something this module does not generate."""
    if parsed.get("type") != "record":
        return None
    gen = _Gen(dict(parsed.get("__named_schemas", {})))
    try:
        top = gen.record_func(parsed)
    except _Unsupported:
        return None
    namespace: dict[str, Any] = {
        "_varint": _varint, "_varint32": _varint32, "_fail": _fail,
        "_pf": struct.Struct("<f").pack, "_pd": struct.Struct("<d").pack,
        "_pnf": struct.Struct("<Bf").pack, "_pnd": struct.Struct("<Bd").pack, **gen.consts,
    }
    exec(compile("\n".join(gen.lines), f"<avro writer {parsed['name']}>", "exec"), namespace)
    writer = namespace[top]

    def write(record: dict[str, Any], prefix: bytes = b"") -> bytes:
        if type(record) is not dict:
            raise Fallback
        buffer = bytearray(prefix)
        parts: list[bytes | bytearray] = []
        try:
            writer(record, buffer, parts)
        except Fallback:
            raise
        except Exception as exc:  # e.g. OverflowError packing a huge float: fastavro decides
            raise Fallback from exc
        if parts:
            parts.append(buffer)
            return b"".join(parts)
        return bytes(buffer)

    return write
