"""Decode a batch of wire-format alerts straight into the filter columns (numba).

Avro is sequential: to reach ``diaObject.nDiaSources`` a reader must walk every field
before it. fastavro walks them one Python-level dispatch at a time (~250 us for a Rubin
alert even when told to skip nearly everything). Here the writer schema and the columns the
filters need are compiled once into a flat program of skip and read instructions, and one
numba-compiled loop runs that program over every message of a batch, writing numbers into
numpy columns and recording where strings are. Nothing is built for skipped fields, and no
Python object is made per alert.

Only ``[null, T]`` unions, records, arrays, enums, fixed and primitives are compiled (what
alert schemas use); a schema with anything else makes :func:`compile_program` raise
:class:`Unsupported`, and callers fall back to the fastavro projection decoder. A message
whose bytes do not fit the program (truncated, corrupt, another schema) is reported by
index, so the caller can decode it alone and get the codec's precise error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from alertbutler.subscribe.filters.columns import Columns, Value
from alertbutler.subscribe.filters.nodes import ColumnSpec

# opcodes; every instruction is 5 int64: op, a, b, c, d
END, SKIP_VARINT, SKIP_N, SKIP_LEN, READ_LONG, READ_FLOAT, READ_DOUBLE, READ_BOOL, \
    READ_STRING, UNION_NULL, SET_NULL, JUMP, ARRAY_BEGIN, ARRAY_NEXT = range(14)
WIDTH = 5
#: mean message size up to which a batch is copied into one buffer and decoded in one call
_JOIN_BYTES_PER_MESSAGE = 8192
#: named types nest at most this deep (a recursive schema is refused, not followed)
MAX_DEPTH = 32


class Unsupported(Exception):
    """The schema uses a construct the program compiler does not handle."""


@dataclass
class _Column:
    spec: ColumnSpec
    index: int        # row in the value arrays (strings: start in ints[index], length in
    scope: int        # ints[index + 1]); scope -1 = one per message, else the array id
    avro: str


@dataclass
class Program:
    code: np.ndarray
    columns: dict[tuple[str, ...], _Column]
    arrays: dict[tuple[str, ...], int]   # array key (name, "*") -> array id
    n_rows: int                          # rows of the value arrays


def compile_program(writer: dict[str, Any], specs: Iterable[ColumnSpec]) -> Program:
    """Compile the writer schema (plain JSON) for the columns ``specs`` ask for."""
    wanted = {s.key: s for s in specs}
    builder = _Builder(writer, wanted)
    builder.emit(writer, (), -1)
    builder.op(END)
    missing = [k for k in wanted if k not in builder.columns and k not in builder.arrays]
    if missing:
        raise Unsupported(f"columns not found in the writer schema: {missing}")
    return Program(np.array(builder.code, dtype=np.int64).reshape(-1, WIDTH),
                   builder.columns, builder.arrays, builder.n_rows)


class _Builder:
    def __init__(self, writer: dict[str, Any], wanted: dict[tuple[str, ...], ColumnSpec]
                 ) -> None:
        self.wanted = wanted
        self.code: list[int] = []
        self.columns: dict[tuple[str, ...], _Column] = {}
        self.arrays: dict[tuple[str, ...], int] = {}
        self.n_rows = 0
        self.named: dict[str, Any] = {}
        self._collect(writer, writer.get("namespace", ""))

    def _collect(self, schema: Any, ns: str) -> None:
        if isinstance(schema, list):
            for b in schema:
                self._collect(b, ns)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "enum", "fixed"):
                ns = schema.get("namespace", ns)
                name = schema["name"]
                full = name if "." in name or not ns else f"{ns}.{name}"
                self.named[full] = (schema, ns)
                self.named.setdefault(name.rsplit(".", 1)[-1], (schema, ns))
                for f in schema.get("fields", ()):
                    self._collect(f["type"], ns)
            elif kind == "array":
                self._collect(schema["items"], ns)
            elif kind == "map":
                self._collect(schema["values"], ns)

    def pc(self) -> int:
        return len(self.code) // WIDTH

    def op(self, code: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> int:
        at = self.pc()
        if code == SKIP_N and at and self.code[-WIDTH] == SKIP_N:  # merge fixed skips
            self.code[-WIDTH + 1] += a
            return at - 1
        self.code.extend((code, a, b, c, d))
        return at

    def patch(self, at: int, slot: int, value: int) -> None:
        self.code[at * WIDTH + slot] = value

    def column(self, key: tuple[str, ...], avro: str, scope: int) -> int | None:
        spec = self.wanted.get(key)
        if spec is None:
            return None
        col = self.columns.get(key)
        if col is None:
            col = _Column(spec, self.n_rows, scope, avro)
            self.n_rows += 3 if avro == "string" else 1
            self.columns[key] = col
        return col.index

    def emit(self, schema: Any, path: tuple[str, ...], scope: int) -> None:
        if len(path) > MAX_DEPTH:
            raise Unsupported(f"schema nests deeper than {MAX_DEPTH} levels at {path[:4]}...")
        if isinstance(schema, str) and schema not in _PRIMITIVE_OPS:
            target = self.named.get(schema)
            if target is None:
                raise Unsupported(f"unknown named type {schema!r}")
            schema = target[0]
        if isinstance(schema, list):
            self._union(schema, path, scope)
            return
        if isinstance(schema, dict):
            kind = schema["type"]
            if kind == "record":
                for f in schema["fields"]:
                    self.emit(f["type"], (*path, f["name"]), scope)
                return
            if kind == "array":
                self._array(schema, path, scope)
                return
            if kind == "enum":
                if path in self.wanted:
                    raise Unsupported("enum fields cannot be read as columns")
                self.op(SKIP_VARINT)
                return
            if kind == "fixed":
                self.op(SKIP_N, int(schema["size"]))
                return
            if kind == "map":
                raise Unsupported("maps are not compiled")
            self.emit(kind, path, scope)  # {"type": "long", "logicalType": ...}
            return
        read_op, skip = _PRIMITIVE_OPS[schema]
        col = self.column(path, schema, scope)
        if col is None or read_op is None:
            if skip is not None:
                self.op(*skip)
            return
        if read_op == READ_STRING:
            self.op(READ_STRING, col, scope)
        else:
            self.op(read_op, col, scope)

    def _union(self, branches: list[Any], path: tuple[str, ...], scope: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported(f"union {branches!r} at {'.'.join(path)}")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        presence = self.column(path, "bytes", scope) if path in self.wanted and \
            self.wanted[path].kind == "bytes" else None
        at = self.op(UNION_NULL, null_index, 0, -1 if presence is None else presence, scope)
        if presence is not None:  # only presence is read: walk the value without reading it
            saved = self.wanted.pop(path)
            self.emit(other, path, scope)
            self.wanted[path] = saved
        else:
            self.emit(other, path, scope)
        jump = self.op(JUMP)
        self.patch(at, 2, self.pc())
        for key, col in self.columns.items():  # the null branch marks what it holds as null
            if key[: len(path)] == path and col.scope == scope and key != path:
                self.op(SET_NULL, col.index, scope)
        self.patch(jump, 1, self.pc())

    def _array(self, schema: dict[str, Any], path: tuple[str, ...], scope: int) -> None:
        key = (*path, "*")
        needed = any(k[: len(key)] == key for k in self.wanted)
        if needed and scope != -1:
            raise Unsupported("arrays inside arrays are not read")
        aid = -1
        if needed:
            aid = self.arrays.setdefault(key, len(self.arrays))
        begin = self.op(ARRAY_BEGIN, aid, 0)
        self.emit(schema["items"], key, aid if needed else scope)
        self.op(ARRAY_NEXT, aid, begin + 1)
        self.patch(begin, 2, self.pc())


_PRIMITIVE_OPS: dict[str, tuple[int | None, tuple[int, ...] | None]] = {
    "null": (None, None),
    "boolean": (READ_BOOL, (SKIP_N, 1)),
    "int": (READ_LONG, (SKIP_VARINT,)),
    "long": (READ_LONG, (SKIP_VARINT,)),
    "float": (READ_FLOAT, (SKIP_N, 4)),
    "double": (READ_DOUBLE, (SKIP_N, 8)),
    "string": (READ_STRING, (SKIP_LEN,)),
    "bytes": (None, (SKIP_LEN,)),
}


@numba.njit(cache=True, nogil=True)
def _varint(buf: np.ndarray, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            return 0, -1
        b = buf[pos]
        pos += 1
        result |= int((np.int64(b) & 0x7F) << shift)
        if b < 0x80:
            break
        shift += 7
    # zig-zag with a LOGICAL shift: an arithmetic one smears the top bit of encodings at or
    # above 2^63 (values beyond +-2^62, such as Rubin's diaSourceIds) into the sign
    return ((result >> 1) & 0x7FFFFFFFFFFFFFFF) ^ -(result & 1), pos


@numba.njit(cache=True, nogil=True)
def _run_one(buf, i, code, fvals, ivals, nulls, segments, counts, cap, state):
    """Run the program over message ``i`` (its bytes in ``buf``, 5-byte header first).

    Returns 0 when the message fits the program, 1 when it does not, 2 when an array
    outgrew ``cap`` (the caller retries the batch with more room).
    """
    pos = 5
    end = buf.shape[0]
    pc = 0
    depth = 0
    # state: [0:16] pc after each open array, [16:32] entries left, [32:] current row per id
    while True:
        op = code[pc, 0]
        if op == 0:  # END
            break
        a = code[pc, 1]
        b = code[pc, 2]
        if op == 1:  # SKIP_VARINT
            _, pos = _varint(buf, pos, end)
            if pos < 0:
                return 1
            pc += 1
        elif op == 2:  # SKIP_N
            pos += a
            if pos > end:
                return 1
            pc += 1
        elif op == 3:  # SKIP_LEN
            n, pos = _varint(buf, pos, end)
            if pos < 0 or n < 0:
                return 1
            pos += n
            if pos > end:
                return 1
            pc += 1
        elif op <= 8:  # READ_*: a = value row, b = scope (-1: per message, else array id)
            row = i if b < 0 else state[32 + b]
            if op == 4:
                v, pos = _varint(buf, pos, end)
                if pos < 0:
                    return 1
                ivals[a, row] = v
            elif op == 5:
                if pos + 4 > end:
                    return 1
                fvals[a, row] = buf[pos:pos + 4].view(np.float32)[0]
                pos += 4
            elif op == 6:
                if pos + 8 > end:
                    return 1
                fvals[a, row] = buf[pos:pos + 8].view(np.float64)[0]
                pos += 8
            elif op == 7:
                if pos + 1 > end:
                    return 1
                ivals[a, row] = buf[pos]
                pos += 1
            else:  # READ_STRING: start, length and the first 8 bytes packed
                n, pos = _varint(buf, pos, end)
                if pos < 0 or n < 0 or pos + n > end:
                    return 1
                ivals[a, row] = pos
                ivals[a + 1, row] = n
                packed = np.int64(0)
                for k in range(min(n, 8)):
                    packed |= np.int64(buf[pos + k]) << (8 * k)
                ivals[a + 2, row] = packed
                pos += n
            nulls[a, row] = 0
            pc += 1
        elif op == 9:  # UNION_NULL a=null index, b=null branch pc, c=presence row, d=scope
            idx, pos = _varint(buf, pos, end)
            if pos < 0 or idx < 0 or idx > 1:
                return 1
            c = code[pc, 3]
            if c >= 0:
                d = code[pc, 4]
                row = i if d < 0 else state[32 + d]
                nulls[c, row] = 1 if idx == a else 0
            pc = b if idx == a else pc + 1
        elif op == 10:  # SET_NULL
            row = i if b < 0 else state[32 + b]
            nulls[a, row] = 1
            pc += 1
        elif op == 11:  # JUMP
            pc = a
        elif op == 12 or op == 13:  # ARRAY_BEGIN a=id b=end pc / ARRAY_NEXT a=id b=body pc
            if op == 13:
                state[16 + depth - 1] -= 1
                if state[16 + depth - 1] > 0:
                    if a >= 0:
                        row = counts[a]
                        if row >= cap:
                            return 2
                        counts[a] = row + 1
                        segments[a, row] = i
                        state[32 + a] = row
                    pc = b
                    continue
                body = b
            else:
                if depth >= 16:
                    return 1
                depth += 1
                body = pc + 1
                state[depth - 1] = b
            n, pos = _varint(buf, pos, end)
            if pos < 0:
                return 1
            if n < 0:  # a block with its byte size: the size is not needed
                n = -n
                _, pos = _varint(buf, pos, end)
                if pos < 0:
                    return 1
            if n == 0:
                pc = state[depth - 1] if op == 12 else pc + 1
                depth -= 1
                continue
            state[16 + depth - 1] = n
            if a >= 0:
                row = counts[a]
                if row >= cap:
                    return 2
                counts[a] = row + 1
                segments[a, row] = i
                state[32 + a] = row
            pc = body
        else:
            return 1
    return 0 if pos == end else 1


@numba.njit(cache=True, nogil=True)
def _run_all(joined, bounds, code, fvals, ivals, nulls, segments, counts, cap, state):
    """Run the program over every message of a batch (message ``i`` is
    ``joined[bounds[i]:bounds[i + 1]]``): one call per batch, no Python step per message.
    Returns the first non-zero status of :func:`_run_one` and its message, or (0, -1)."""
    for i in range(bounds.shape[0] - 1):
        status = _run_one(joined[bounds[i]:bounds[i + 1]], i, code, fvals, ivals, nulls,
                          segments, counts, cap, state)
        if status:
            return status, i
    return 0, -1


class ColumnarDecoder:
    """Decode batches of one alert schema into :class:`Columns` for ``specs``."""

    def __init__(self, writer_json: dict[str, Any], specs: Iterable[ColumnSpec]) -> None:
        specs = list(specs)
        top = {f.get("name") for f in writer_json.get("fields", ())}
        if "diaSourceId" in top and not any(s.key == ("diaSourceId",) for s in specs):
            specs.append(ColumnSpec(("diaSourceId",), "number", True))
        self.specs = specs
        self.program = compile_program(writer_json, specs)
        #: array entries per message to make room for: the last batch's most, with a margin
        #: (the value arrays are rows x room: guessing 24 for 2-entry histories made every
        #: batch fill ten times the memory it used)
        self._per_message = 24.0

    @classmethod
    def for_schema_id(cls, schema_id: int, specs: Iterable[ColumnSpec]) -> ColumnarDecoder:
        from alertbutler.alerts import schema_info

        return cls(json.loads(schema_info(schema_id).text), specs)

    def decode(self, messages: Sequence[bytes]) -> tuple[Columns, int | None]:
        """Columns for wire-format messages of this decoder's schema.

        Returns the columns of every message before the first bad one, and that message's
        index (None when all decoded). A batch of small messages is walked by one compiled
        call; large ones are read in place, one call each.
        """
        n = len(messages)
        prog = self.program
        rows = max(1, prog.n_rows)
        n_arrays = len(prog.arrays)
        cap = max(64, int(n * self._per_message))
        code = prog.code
        # Small messages: one buffer for the batch and where each message starts, so the
        # compiled loop walks them all in one call (a copy, cheap next to a call per message).
        # Large ones (cutouts, skipped unread): copying them costs more than a call each.
        lengths = np.fromiter(map(len, messages), np.int64, n)
        joined = None
        if n and lengths.sum() <= _JOIN_BYTES_PER_MESSAGE * n:
            joined = np.frombuffer(b"".join(messages), np.uint8)
            bounds = np.zeros(n + 1, np.int64)
            np.cumsum(lengths, out=bounds[1:])
        while True:
            width = max(n, cap if n_arrays else 1, 1)
            # left unset (untouched pages cost nothing): what was not read is null in
            # ``nulls`` and cleared in _columns
            fvals = np.empty((rows, width))
            ivals = np.empty((rows, width), np.int64)
            nulls = np.ones((rows, width), np.uint8)
            segments = np.zeros((max(1, n_arrays), cap), np.int64)
            counts = np.zeros(max(1, n_arrays), np.int64)
            state = np.zeros(32 + max(1, n_arrays), np.int64)
            if joined is not None:
                status, at = _run_all(joined, bounds, code, fvals, ivals, nulls, segments,
                                      counts, cap, state)
            else:
                status, at = 0, -1
                for i, message in enumerate(messages):
                    status = _run_one(np.frombuffer(message, np.uint8), i, code, fvals, ivals,
                                      nulls, segments, counts, cap, state)
                    if status:
                        at = i
                        break
            grow = status == 2
            bad: int | None = int(at) if status == 1 else None
            if not grow:
                break
            cap *= 4  # histories longer than guessed: decode again with room
        if n_arrays and bad is None and n:
            self._per_message = max(1.0, float(counts.max()) / n * 1.25)
        good = n if bad is None else bad
        return self._columns(messages, good, fvals, ivals, nulls, segments, counts), bad

    def _columns(self, messages: Sequence[bytes], n: int, fvals: np.ndarray,
                 ivals: np.ndarray, nulls: np.ndarray, segments: np.ndarray,
                 counts: np.ndarray) -> Columns:
        prog = self.program
        values: dict[tuple[str, ...], Value] = {}
        segs: dict[tuple[str, ...], np.ndarray] = {}
        for key, aid in prog.arrays.items():
            seg = segments[aid, : counts[aid]]
            segs[key] = seg[seg < n] if n < len(messages) else seg
        for key, col in prog.columns.items():
            scoped = col.scope >= 0
            length = len(segs[key[: key.index("*") + 1]]) if scoped else n
            null = nulls[col.index, :length].astype(bool)
            null_or_none = null if null.any() else None
            kind = col.spec.kind
            if kind == "number":
                if col.avro in ("int", "long"):
                    data = ivals[col.index, :length].copy()
                    if null_or_none is not None:
                        data[null] = 0
                    values[key] = Value(data, null_or_none)
                else:
                    data = fvals[col.index, :length].copy()
                    if null_or_none is not None:
                        data[null] = np.nan
                    nan = np.isnan(data)
                    values[key] = Value(data, nan if nan.any() else None)
            elif kind == "boolean":
                data = ivals[col.index, :length] != 0
                if null_or_none is not None:
                    data[null] = False
                values[key] = Value(data, null_or_none)
            elif kind == "string":
                owner = segs[key[: key.index("*") + 1]] if scoped else np.arange(length)
                values[key] = Value(_strings(messages, owner, ivals[col.index:col.index + 3,
                                                                    :length], null),
                                    null_or_none)
            else:  # presence only
                values[key] = Value(np.zeros(length, dtype=bool), null_or_none)
        return Columns(n, values, segs)


def _strings(messages: Sequence[bytes], owner: np.ndarray, rows: np.ndarray,
             null: np.ndarray) -> np.ndarray:
    """Object array of strings: short ones (<= 8 bytes: bands, flags) decoded once per
    distinct value from their packed bytes, longer ones sliced from their message."""
    starts, lengths, packed = rows
    out = np.empty(len(starts), dtype=object)
    short = (lengths <= 8) & ~null
    if short.any():
        pairs = packed[short] * 16 + lengths[short]  # wraps for 8-byte text: still distinct
        uniq, inverse = np.unique(pairs, return_inverse=True)
        texts = np.empty(len(uniq), dtype=object)
        sample = np.flatnonzero(short)
        first = np.zeros(len(uniq), dtype=np.int64)
        first[inverse[::-1]] = sample[::-1]
        for j, row in enumerate(first):
            raw = int(packed[row]).to_bytes(8, "little", signed=True)[: int(lengths[row])]
            texts[j] = raw.decode("utf-8", "replace")
        out[short] = texts[inverse]
    for row in np.flatnonzero((lengths > 8) & ~null):
        message = messages[int(owner[row])]
        start = int(starts[row])
        out[row] = bytes(message[start:start + int(lengths[row])]).decode("utf-8", "replace")
    return out
