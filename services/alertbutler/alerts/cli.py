"""``alertbutler alerts dump FILE|TOPIC``: alerts as JSON lines, cutouts summarized.

A FILE is an Avro container file (an archive, or Rubin's sample alerts). A TOPIC is read from
``kafka.bootstrap_servers`` or from a URL ``kafka://host:port/topic``; messages are decoded
by schema id (the registry's, when ``schema_registry.url`` is set), and each line carries the
message's topic, partition, offset and kind. ``--start`` is an offset applied to every
partition (``--partition`` narrows them); reading never relies on the broker's ListOffsets.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlparse

from alertbutler.config import Config, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    dump = sub.add_parser(
        "dump", help="print alerts of a file or topic as JSON lines",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dump.add_argument("source", help="Avro container FILE, TOPIC name, or kafka://host:port/topic")
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
    from alertbutler.alerts.archive import is_container_file, read_alert_file
    from alertbutler.alerts.dump import dumps, jsonable

    if not os.path.isfile(args.source) or not is_container_file(args.source):
        raise ValueError(f"{args.source}: not an Avro container file (it should start "
                         "with 'Obj\\x01')")
    for n, record in enumerate(read_alert_file(args.source)):
        if args.limit is not None and n >= args.limit:
            break
        print(dumps(jsonable(record, cutouts=args.cutouts)))
    return 0


def _dump_topic(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.alerts import AlertFormatError
    from alertbutler.alerts.consume import iter_topic
    from alertbutler.alerts.dump import dumps, jsonable
    from alertbutler.alerts.registry import codec_for
    from alertbutler.kafka import confluent_settings

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
    codec = codec_for(config.schema_registry.url, config.schema_registry.client)
    bad = 0
    printed = 0
    for msg in iter_topic(bootstrap, topic, start=args.start, partitions=args.partition,
                          settings=settings):
        if args.limit is not None and printed >= args.limit:
            break
        where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                 "key": msg.key.decode(errors="replace") if msg.key is not None else None}
        try:
            decoded = codec.decode(msg.value)
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
