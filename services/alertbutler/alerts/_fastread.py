"""A specialised Avro binary reader, generated from a schema, for the hot path.

The mirror of :mod:`._fastwrite`: straight-line Python per record type, for messages whose
writer schema *is* the reader schema (the common case: both the current version). Schema
resolution between versions, logical types, and any message the generated code cannot read
(truncated, corrupt) are left to fastavro: :func:`compile_reader` returns None for schemas it
does not cover, and the reader raises :class:`FastReadError`, after which the caller reads
the message with fastavro, which either succeeds or raises its own precise error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from alertbutler.alerts._codegen import RecordCodeGen

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class FastReadError(Exception):
    """The generated reader cannot read this message; use fastavro."""


class _Unsupported(Exception):
    pass


def _varint(d: bytes, i: int) -> tuple[int, int]:
    """Decode a zig-zag varint at ``i``: (value, next position)."""
    b = d[i]
    n = b & 0x7F
    shift = 7
    i += 1
    while b & 0x80:
        b = d[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise FastReadError("varint too long")
    return (n >> 1) ^ -(n & 1), i


def _bad(*_: Any) -> None:
    raise FastReadError("invalid union branch or enum index")


class _Gen(RecordCodeGen):
    tmp_prefix, func_prefix, params = "x", "_r", "d, i"

    def record_body(self, schema: dict[str, Any]) -> list[str]:
        body: list[str] = []
        names = []
        for field in schema["fields"]:
            v = self.tmp()
            body.extend(self.read(field["type"], v))
            names.append(f"{field['name']!r}: {v}")
        body.append(f"return {{{', '.join(names)}}}, i")  # one dict display: fastest build
        return body

    def read(self, schema: Any, v: str) -> list[str]:
        """Lines that read one value of ``schema`` at ``i`` into ``v`` and advance ``i``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, v)
            return self.read(self.named[schema], v)
        if isinstance(schema, list):
            if len(schema) == 2 and schema[0] == "null" and schema[1] != "null":
                if schema[1] in ("float", "double"):
                    unpack, size = ("_uf", 4) if schema[1] == "float" else ("_ud", 8)
                    return ["c = d[i]", f"if c == 2: {v} = {unpack}(d, i + 1)[0]; i += {size + 1}",
                            f"elif c == 0: {v} = None; i += 1", "else: _bad()"]
                inner = self.read(schema[1], v)
                return ["c = d[i]", "i += 1", f"if c == 0: {v} = None", "elif c == 2:",
                        *("    " + line for line in inner), "else: _bad()"]
            raise _Unsupported(f"union {schema}")
        kind = schema["type"]
        if "logicalType" in schema:
            raise _Unsupported("logical types are converted by fastavro")
        if kind == "record":
            return [f"{v}, i = {self.record_func(schema)}(d, i)"]
        if kind == "array":
            item = self.tmp()
            inner = self.read(schema["items"], item)
            return [f"{v} = []",
                    "while True:",
                    "    n, i = _varint(d, i)",
                    "    if n == 0: break",
                    "    if n < 0:",
                    "        n = -n",
                    "        _, i = _varint(d, i)",
                    "    for _ in range(n):",
                    *("        " + line for line in inner),
                    f"        {v}.append({item})"]
        if kind == "enum":
            symbols = self.const(tuple(schema["symbols"]))
            return ["n, i = _varint(d, i)", f"if not 0 <= n < {len(schema['symbols'])}: _bad()",
                    f"{v} = {symbols}[n]"]
        if kind in _PRIMITIVES:
            return self.primitive(kind, v)
        raise _Unsupported(f"type {kind}")

    def primitive(self, kind: str, v: str) -> list[str]:
        if kind == "null":
            return [f"{v} = None"]
        if kind == "boolean":
            return [f"{v} = d[i] != 0", "i += 1"]
        if kind in ("int", "long"):
            return ["c = d[i]", f"if c < 128: {v} = (c >> 1) ^ -(c & 1); i += 1",
                    f"else: {v}, i = _varint(d, i)"]
        if kind == "float":
            return [f"{v} = _uf(d, i)[0]", "i += 4"]
        if kind == "double":
            return [f"{v} = _ud(d, i)[0]", "i += 8"]
        if kind in ("string", "bytes"):
            convert = ".decode()" if kind == "string" else ""
            return ["n, i = _varint(d, i)", "if n < 0 or i + n > len(d): _bad()",
                    f"{v} = d[i:i + n]{convert}", "i += n"]
        raise _Unsupported(kind)


def compile_reader(parsed: dict[str, Any]) -> Callable[[bytes, int], tuple[dict, int]] | None:
    """A function ``read(data, start) -> (record, end)`` for messages written with exactly
    this schema, or None when the schema uses something this module does not generate.
    ``data`` must be ``bytes`` (slices of it are the record's strings and bytes)."""
    if parsed.get("type") != "record":
        return None
    gen = _Gen(dict(parsed.get("__named_schemas", {})))
    try:
        top = gen.record_func(parsed)
    except _Unsupported:
        return None
    namespace: dict[str, Any] = {
        "_varint": _varint, "_bad": _bad, "_uf": struct.Struct("<f").unpack_from,
        "_ud": struct.Struct("<d").unpack_from, **gen.consts,
    }
    exec(compile("\n".join(gen.lines), f"<avro reader {parsed['name']}>", "exec"), namespace)
    reader = namespace[top]

    def read(data: bytes, start: int = 0) -> tuple[dict, int]:
        try:
            return reader(data, start)
        except FastReadError:
            raise
        except Exception as exc:  # IndexError / struct.error (truncated), UnicodeDecodeError
            raise FastReadError(str(exc)) from exc

    return read
