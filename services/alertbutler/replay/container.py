"""Avro container files as a carrier of ready-made message bodies.

Replaying an archive must not decode and re-encode every alert: a full alert decodes at ~1,500
per second per core in fastavro, far below the 10,000/s a replay must reach. A record's bytes
inside a container block *are* its schemaless Avro encoding, so a message is the 5-byte
Confluent header plus a slice of the (decompressed) block. What is needed is where each record
ends:

* our recordings store an index in the file's metadata (``alertbutler.index``: the size, key
  and Kafka timestamp of every record, in order), so slicing costs nothing;
* a block of one record (ZTF's single-alert files, or large alerts) is the record itself;
* otherwise the boundaries come from decoding a projection of the record (only the fields
  needed for the key and the timestamp), which fastavro does about twice as fast as a full
  decode.

The writer below produces standard files (any Avro reader opens them) from bodies that were
already encoded, so a recording keeps the exact bytes the pipeline published.
"""

from __future__ import annotations

import functools
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import cramjam
import fastavro
from fastavro.schema import expand_schema, fingerprint, to_parsing_canonical_form

from alertbutler.replay.errors import CorruptFileError, TruncatedArchiveError

if TYPE_CHECKING:
    from fastavro.types import Schema as AvroSchema

MAGIC = b"Obj\x01"
INDEX_KEY = "alertbutler.index"
SCHEMA_ID_KEY = "alertbutler.schema_id"
#: Codecs the writer supports. Snappy (through cramjam, which fastavro also reads with) is
#: the default for recordings: alerts of noisy cutouts compress about 2x with it, and it
#: decompresses ~5x faster than deflate, which matters when a replay must reach 10,000/s.
WRITE_CODECS = ("null", "deflate", "snappy")


# --------------------------------------------------------------------------- writing
def _long(value: int) -> bytes:
    """Avro's zig-zag varint encoding of a long."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


def write_container(path: str | os.PathLike[str], schema_text: str, bodies: Iterable[bytes], *,
                    metadata: Mapping[str, str] | None = None, codec: str = "snappy",
                    block_bytes: int = 1 << 20, sync: bytes | None = None) -> int:
    """Write already-encoded record bodies as a container file; returns the record count.

    ``sync`` (16 bytes) defaults to one derived from the schema and metadata, so the same
    input gives the same file byte for byte (recordings are compared by checksum).
    """
    if codec not in WRITE_CODECS:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(WRITE_CODECS)}")
    meta = {"avro.schema": schema_text, "avro.codec": codec, **(metadata or {})}
    if sync is None:
        seed = json.dumps(meta, sort_keys=True).encode()
        sync = zlib.crc32(seed).to_bytes(4, "big") * 4
    if len(sync) != 16:
        raise ValueError("the sync marker must be 16 bytes")
    count = 0
    with open(path, "wb") as fh:
        fh.write(MAGIC)
        fh.write(_long(len(meta)))
        for key, value in meta.items():
            fh.write(_bytes(key.encode()))
            fh.write(_bytes(value.encode()))
        fh.write(_long(0))
        fh.write(sync)
        block: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if not block:
                return
            data = b"".join(block)
            if codec == "deflate":
                packer = zlib.compressobj(6, zlib.DEFLATED, -15)
                data = packer.compress(data) + packer.flush()
            elif codec == "snappy":  # Avro: raw snappy, then the CRC-32 of the input
                crc = zlib.crc32(data).to_bytes(4, "big")
                data = bytes(cramjam.snappy.compress_raw(data)) + crc
            fh.write(_long(len(block)))
            fh.write(_long(len(data)))
            fh.write(data)
            fh.write(sync)
            block.clear()
            size = 0

        for body in bodies:
            block.append(bytes(body))
            size += len(body)
            count += 1
            if size >= block_bytes:
                flush()
        flush()
    return count


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Block:
    """The decompressed bytes of one block and the records it holds."""

    count: int
    data: bytes


class _Truncated(Exception):
    pass


class _Prefixed:
    """A file whose first byte was already read (to tell the end of file from a block)."""

    def __init__(self, first: bytes, fh: BinaryIO) -> None:
        self._first: bytes | None = first
        self._fh = fh

    def read(self, n: int) -> bytes:
        if self._first is not None and n > 0:
            first, self._first = self._first, None
            return first + (self._fh.read(n - 1) if n > 1 else b"")
        return self._fh.read(n)


class _Reader(Protocol):
    """What the block reader needs of a file: ``read``."""

    def read(self, n: int, /) -> bytes: ...


def _read_long(fh: _Reader) -> int:
    shift = result = 0
    while True:
        byte = fh.read(1)
        if not byte:
            raise _Truncated("the file ends inside a number")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 70:
            raise ValueError("a varint longer than 10 bytes")


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    if n < 0:
        raise ValueError(f"negative length {n}")
    data = fh.read(n)
    if len(data) != n:
        raise _Truncated(f"the file ends {n - len(data)} bytes early")
    return data


def _decompress(codec: str, data: bytes) -> bytes:
    if codec == "null":
        return data
    if codec == "deflate":
        return zlib.decompress(data, -15)
    if codec == "snappy":  # raw snappy, then a CRC-32 of the decompressed bytes
        out = bytes(cramjam.snappy.decompress_raw(data[:-4]))
        if zlib.crc32(out).to_bytes(4, "big") != data[-4:]:
            raise ValueError("snappy block fails its CRC-32 check")
        return out
    if codec == "zstandard":
        return bytes(cramjam.zstd.decompress(data))
    if codec == "bzip2":
        import bz2

        return bz2.decompress(data)
    if codec == "xz":
        import lzma

        return lzma.decompress(data)
    raise ValueError(f"unsupported Avro codec {codec!r}")


@functools.lru_cache(maxsize=64)
def parsed_schema(text: str) -> AvroSchema:
    """A writer schema parsed by fastavro, once per distinct schema text."""
    return fastavro.parse_schema(json.loads(text), named_schemas={})


class ContainerReader:
    """Header and blocks of one container file; every failure names ``name``.

    The header and block framing are read here rather than by fastavro, which would parse
    the writer schema for every file: a ZTF archive is thousands of one-alert files sharing
    one schema, parsed once (:func:`parsed_schema`).
    """

    def __init__(self, fh: BinaryIO, name: str) -> None:
        self.name = name
        self._fh = fh
        head = fh.read(4)
        if head != MAGIC:
            if len(head) < 4:
                raise TruncatedArchiveError(name, "file ends before the Avro container header")
            raise CorruptFileError(name, "not an Avro container file (no 'Obj\\x01' magic)")
        meta: dict[str, str] = {}
        try:
            while True:
                count = _read_long(fh)
                if count == 0:
                    break
                if count < 0:
                    _read_long(fh)  # a negative count is followed by the block's size
                    count = -count
                for _ in range(count):
                    key = _read_exact(fh, _read_long(fh)).decode("utf-8", "replace")
                    meta[key] = _read_exact(fh, _read_long(fh)).decode("utf-8", "replace")
            self._sync = _read_exact(fh, 16)
        except _Truncated as exc:
            raise TruncatedArchiveError(name, f"Avro container header is incomplete: {exc}") \
                from None
        except ValueError as exc:
            raise CorruptFileError(name, f"unreadable Avro container header: {exc}") from None
        self.metadata = meta
        self.codec = meta.get("avro.codec", "null")
        text = meta.get("avro.schema")
        try:
            if text is None:
                raise ValueError("no avro.schema")
            self.schema: dict[str, Any] = json.loads(text)
            self.parsed = parsed_schema(text)
        except Exception as exc:
            raise CorruptFileError(name, f"no readable writer schema in the header: {exc}") \
                from None
        self.schema_text = text

    def blocks(self) -> Iterator[Block]:
        fh = self._fh
        n = 0
        while True:
            first = fh.read(1)
            if not first:
                return
            try:
                rest = _read_long(_Prefixed(first, fh))
                size = _read_long(fh)
                data = _read_exact(fh, size)
                sync = _read_exact(fh, 16)
            except _Truncated as exc:
                raise TruncatedArchiveError(self.name, f"Avro container file is truncated in "
                                            f"block {n}: {exc}") from None
            except ValueError as exc:
                raise CorruptFileError(self.name, f"corrupt Avro block {n}: {exc}") from None
            if sync != self._sync:
                raise CorruptFileError(self.name, f"block {n} does not end with the file's "
                                       "sync marker (damaged or truncated)")
            try:
                data = _decompress(self.codec, data)
            except Exception as exc:  # zlib.error, cramjam errors, bad CRC
                raise CorruptFileError(self.name, f"corrupt Avro block {n} ({self.codec}): "
                                       f"{type(exc).__name__}: {exc}") from None
            n += 1
            yield Block(rest, data)

    def index(self) -> dict[str, list[Any]] | None:
        """Our per-record index (sizes, keys, timestamps), if the file carries one."""
        text = self.metadata.get(INDEX_KEY)
        if text is None:
            return None
        try:
            index = json.loads(text)
            sizes = index["sizes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(self.name, f"unreadable {INDEX_KEY} metadata: {exc}") \
                from None
        for name in ("keys", "timestamps_ms"):
            if len(index.get(name) or sizes) != len(sizes):
                raise CorruptFileError(self.name, f"{INDEX_KEY}: {name} and sizes differ "
                                       "in length")
        return index


def schema_fingerprint(schema: Mapping[str, Any] | str) -> int:
    """The CRC-64-AVRO fingerprint of a schema's parsing canonical form."""
    parsed = json.loads(schema) if isinstance(schema, str) else dict(schema)
    canonical = to_parsing_canonical_form(parsed)
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16)


# --------------------------------------------------------------------------- projection
def projection(schema: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A reader schema with only the fields on ``paths`` ("diaSource.midpointMjdTai").

    Resolving a writer's records to it skips every other field, so a decode yields the
    record's end and the few values needed for a message's key and timestamp.
    """
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return _prune(expand_schema(dict(schema)), tree)


def _prune(schema: Any, tree: Mapping[str, Any]) -> Any:
    if isinstance(schema, list):
        return [_prune(branch, tree) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "record":
        fields = [dict(f, type=_prune(f["type"], tree[f["name"]]))
                  for f in schema["fields"] if f["name"] in tree]
        out = {"type": "record", "name": schema["name"], "fields": fields}
        if "namespace" in schema:
            out["namespace"] = schema["namespace"]
        return out
    if schema.get("type") == "array":
        return dict(schema, items=_prune(schema["items"], tree))
    return schema


@functools.lru_cache(maxsize=64)
def _projection_schema(writer_text: str, paths: tuple[str, ...]) -> Any:
    return fastavro.parse_schema(projection(json.loads(writer_text), paths), named_schemas={})


class RecordSplitter:
    """Boundaries and projected values of the records in a block, by decoding a projection."""

    def __init__(self, writer_text: str, paths: Iterable[str], name: str) -> None:
        self.name = name
        self._writer = parsed_schema(writer_text)
        try:
            self._reader = _projection_schema(writer_text, tuple(paths))
        except Exception as exc:
            raise CorruptFileError(name, f"cannot project the writer schema: {exc}") from None

    def split(self, block: Block) -> Iterator[tuple[bytes, dict[str, Any]]]:
        data = block.data
        buf = io.BytesIO(data)
        start = 0
        for i in range(block.count):
            try:
                values = fastavro.schemaless_reader(buf, self._writer, self._reader)
            except Exception as exc:
                raise CorruptFileError(self.name, f"record {i} of a block does not decode: "
                                       f"{type(exc).__name__}: {exc}") from None
            end = buf.tell()
            yield data[start:end], values  # type: ignore[misc]
            start = end
        if start != len(data):
            raise CorruptFileError(self.name, f"{len(data) - start} bytes left after the "
                                   f"{block.count} records of a block")


def split_by_sizes(block: Block, sizes: list[int], name: str) -> list[bytes]:
    """Slice a block by the sizes of our index; a mismatch is a corrupt file."""
    if len(sizes) != block.count or sum(sizes) != len(block.data):
        raise CorruptFileError(name, f"{INDEX_KEY} does not match a block of {block.count} "
                               f"records and {len(block.data)} bytes")
    out, start = [], 0
    data = block.data
    for size in sizes:
        out.append(data[start:start + size])
        start += size
    return out
