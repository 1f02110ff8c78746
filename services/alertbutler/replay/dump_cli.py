"""``alertbutler alerts dump SOURCE|TOPIC``: alerts as JSON lines, cutouts summarized.

A SOURCE is anything ``alerts replay`` reads, through the same reader
(:class:`~alertbutler.replay.sources.AlertSource`): a night recording (directory or tarball),
a ZTF-style archive (tarball or directory of single-alert Avro files), or one Avro container
file (ours, or Rubin's of any schema version). A TOPIC is read from
``kafka.bootstrap_servers`` or from a URL ``kafka://host:port/topic``; messages are decoded
by schema id (ours, Rubin's ``major*100+minor`` from lsst-alert-packet, the local ids that
``alerts replay`` recorded, or the registry's when ``schema_registry.url`` is set), and each
line carries the message's topic, partition, offset and kind. ``--start`` is an offset
applied to every partition (``--partition`` narrows them); reading never relies on the
broker's ListOffsets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from alertbutler.config import Config, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    dump = sub.add_parser(
        "dump", help="print alerts of a file or topic as JSON lines",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dump.add_argument("source", help="recording, ZTF-style archive or Avro file; TOPIC name, "
                      "or kafka://host:port/topic")
    dump.add_argument("--limit", type=int, default=None, help="stop after N messages")
    dump.add_argument("--start", type=int, default=None,
                      help="topics: first offset to read in each partition (default: 0)")
    dump.add_argument("--partition", type=int, action="append", default=None,
                      help="topics: read only this partition (repeatable)")
    dump.add_argument("--cutouts", choices=("summary", "omit", "base64"), default="summary",
                      help="how to print cutouts (default: a short summary)")
    dump.add_argument("--kind", default=None,
                      help="topics: print only messages of this kind (alert, "
                           "visit_detector_end, ...)")
    dump.add_argument("--schema-file", metavar="PATH", default=None,
                      help="topics: local schema ids of replayed archives (default: "
                      "<data_dir>/replay/local-schema-ids.json)")
    dump.set_defaults(func=_dump)


def _dump(args: argparse.Namespace, config: Config) -> int:
    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    if args.start is not None and args.start < 0:
        raise ConfigError("--start must be an offset >= 0")
    if os.path.exists(args.source):
        return _dump_file(args)
    return _dump_topic(args, config)


def _dump_file(args: argparse.Namespace) -> int:
    import io

    from fastavro import parse_schema, schemaless_reader
    from fastavro.types import Schema as AvroSchema

    from alertbutler.alerts.dump import dumps, jsonable
    from alertbutler.replay.schema_ids import SchemaIds
    from alertbutler.replay.sources import AlertSource, is_tarball

    path = args.source
    if os.path.isfile(path) and not is_tarball(Path(path)):
        with open(path, "rb") as fh:
            if fh.read(4) != b"Obj\x01":
                raise ValueError(f"{path}: not an Avro container file (it should start "
                                 "with 'Obj\\x01'), a tarball or a directory")
    ids = SchemaIds()  # fixed and local ids of this reading only: nothing is registered
    parsed: dict[int, AvroSchema] = {}
    with AlertSource(path) as source:
        for n, message in enumerate(source.messages(ids, "dump")):
            if args.limit is not None and n >= args.limit:
                break
            writer = parsed.get(message.schema_id)
            if writer is None:
                writer = parsed[message.schema_id] = parse_schema(
                    json.loads(ids.used[message.schema_id].text), _write_hint=False)
            record = schemaless_reader(io.BytesIO(message.value[5:]), writer, None)
            print(dumps(jsonable(record, cutouts=args.cutouts)))
    return 0


def _dump_topic(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.alerts import AlertFormatError
    from alertbutler.alerts.dump import dumps, jsonable
    from alertbutler.alerts.registry import codec_for
    from alertbutler.kafka import confluent_settings
    from alertbutler.kafka.read import iter_topic

    source = args.source
    if source.startswith("kafka://"):
        url = urlparse(source)
        bootstrap, topic = url.netloc, url.path.lstrip("/")
        if not bootstrap or not topic:
            raise ConfigError(f"{source}: expected kafka://host:port/topic")
    else:
        bootstrap, topic = config.kafka.bootstrap_servers, source
        if not bootstrap:
            raise ConfigError(f"{source!r} is not a file, and kafka.bootstrap_servers is empty: "
                              "set it (ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS) or pass "
                              "kafka://host:port/topic")
    settings = confluent_settings(config, bootstrap)
    settings.pop("bootstrap.servers")
    from alertbutler.alerts.writers import writers_for

    codec = codec_for(config.schema_registry.url, config.schema_registry.client)
    writers = writers_for(config, Path(args.schema_file) if args.schema_file else None)
    bad = 0
    printed = 0
    for msg in iter_topic(bootstrap, topic, start=args.start, partitions=args.partition,
                          settings=settings):
        if args.limit is not None and printed >= args.limit:
            break
        where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                 "key": msg.key.decode(errors="replace") if msg.key is not None else None}
        try:
            decoded = _decode(codec, writers, msg.value)
        except AlertFormatError as exc:
            bad += 1
            print(f"alertbutler alerts dump: {msg.topic}[{msg.partition}]@{msg.offset}: {exc}",
                  file=sys.stderr)
            continue
        if args.kind and decoded.kind != args.kind:
            continue
        print(dumps({**where, "kind": decoded.kind, "schema_id": decoded.schema_id,
                     "record": jsonable(decoded.record, cutouts=args.cutouts)}))
        printed += 1
    return 1 if bad else 0


def _decode(codec: Any, writers: Any, value: bytes) -> Any:
    """Ours through the codec (registry ids mapped); Rubin's and replayed archives' by
    their own writer schema."""
    import io

    from fastavro import schemaless_reader

    from alertbutler.alerts import Decoded, UnknownSchemaError

    try:
        return codec.decode(value)
    except UnknownSchemaError as unknown:
        schema_id = int.from_bytes(value[1:5], "big")
        try:
            writer = writers.get(schema_id)
        except UnknownSchemaError:
            raise unknown from None
        try:
            record = schemaless_reader(io.BytesIO(value[5:]), writer.parsed, None)
        except Exception as exc:
            from alertbutler.alerts import AlertFormatError

            raise AlertFormatError(f"{writer.name} (schema id {schema_id}): does not decode: "
                                   f"{type(exc).__name__}: {exc}") from None
        # fastavro types a datum as any Avro value; an alert schema is a record
        return Decoded(schema_id, writer.kind, cast(dict[str, Any], record))
