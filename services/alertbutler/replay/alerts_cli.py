"""``alertbutler alerts replay``: stream a recorded alert archive into a Kafka topic."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alertbutler.cli import args as arg_types
from alertbutler.config import Config, ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from alertbutler.replay.schema_ids import SchemaIds
    from alertbutler.replay.stream import StreamSummary


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="stream a recorded alert archive into a topic",
        description=(
            "Stream an alert archive into a Kafka topic in its recorded order, keyed by "
            "object, in the Confluent wire format. SOURCE is a night recording (directory or "
            "tarball), a ZTF-style archive (tarball or directory of single-alert Avro files) "
            "or one Avro container file of Rubin-format alerts."))
    p.add_argument("source", metavar="SOURCE", help="recording, ZTF-style archive or Avro file")
    p.add_argument("--topic", required=True, help="topic to stream into (created if missing)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, metavar="N", help="alerts per second")
    pace.add_argument("--speed", type=float, metavar="X",
                      help="X times the recorded pace (by the recorded timestamps)")
    p.add_argument("--bootstrap", metavar="HOST:PORT",
                   help="Kafka to use (default: kafka.bootstrap_servers)")
    p.add_argument("--partitions", type=arg_types.partitions, default=None,
                   help="partitions if the topic is created (default: kafka.partitions)")
    p.add_argument("--no-create-topic", action="store_true",
                   help="do not create the topic (it must exist)")
    p.add_argument("--keep-timestamps", action="store_true",
                   help="give messages their recorded timestamps instead of the replay time")
    p.add_argument("--subject", help="Schema Registry subject for every schema "
                   "(default: ours / lsst-alerts-vX.Y-value / <topic>-value)")
    p.add_argument("--schema-file", type=Path, metavar="PATH",
                   help="sidecar of local schema ids (default: "
                        "<data_dir>/replay/local-schema-ids.json)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the broker's first answer before giving up "
                   "(default: 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console

    from alertbutler.kafka import create_topics, probe_broker
    from alertbutler.replay.errors import SourceError, StreamError
    from alertbutler.replay.schema_ids import SchemaIds, make_registry_client
    from alertbutler.replay.sources import AlertSource
    from alertbutler.replay.stream import StreamSummary, producer_settings, stream_alerts

    bootstrap = args.bootstrap or config.kafka.bootstrap_servers
    if not bootstrap:
        raise ConfigError("no Kafka to replay into: pass --bootstrap or set "
                          "kafka.bootstrap_servers (an embedded broker would vanish with "
                          "this command; start one with `alertbutler broker`)")
    if args.rate is not None and args.rate <= 0:
        raise ValueError("--rate must be > 0")
    if args.speed is not None and args.speed < 0:
        raise ValueError("--speed must be >= 0 (0: as fast as possible)")
    if not 0 < args.connect_timeout <= 3600:
        raise ValueError("--connect-timeout must be more than 0 and at most 3600 seconds")
    err = Console(stderr=True)
    registry = None
    if config.schema_registry.url:
        registry = make_registry_client(config.schema_registry.url,
                                        config.schema_registry.client)
    sidecar = args.schema_file or config.data_dir / "replay" / "local-schema-ids.json"
    ids = SchemaIds(registry=registry, subject=args.subject, sidecar=sidecar)
    summary = StreamSummary(args.topic)
    failure: Exception | None = None
    with AlertSource(args.source) as source:  # a missing or unreadable source is named first
        # a dead broker is said at once, not after the producer's whole delivery timeout
        probe_broker(bootstrap, settings=config.kafka.client, timeout=args.connect_timeout)
        if not args.no_create_topic:
            n = config.kafka.partitions if args.partitions is None else args.partitions
            create_topics(bootstrap, {args.topic: n}, settings=config.kafka.client)
        with _progress(err, f"replaying {source.info.kind}", source.info.total) as advance:
            try:
                stream_alerts(
                    source.messages(ids, args.topic), topic=args.topic,
                    settings=producer_settings(
                        bootstrap, client=config.kafka.client,
                        compression=config.kafka.compression,
                        **{"client.id": f"alertbutler-replay-{uuid.uuid4().hex[:6]}"}),
                    rate=args.rate, speed=args.speed, keep_timestamps=args.keep_timestamps,
                    progress=advance, summary=summary)
            except (SourceError, StreamError) as exc:
                failure = exc
    written = ids.write_sidecar()
    if args.json:
        data = summary.as_dict()
        data["source"] = str(source.info.path)
        data["source_kind"] = source.info.kind
        data["local_schema_file"] = str(written) if written else None
        data["error"] = str(failure) if failure else None
        print(json.dumps(data))
    else:
        _print_summary(summary, source.info.kind, str(source.info.path), ids, written)
    if failure is not None:
        print(f"alertbutler alerts replay: error: {failure}", file=sys.stderr)
        return 1
    return 0


class _progress:
    """A rich progress bar fed with the number of acknowledged alerts."""

    def __init__(self, console: Console | None, label: str, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.speed} /s"),
                                  TimeElapsedColumn(), console=console, transient=False)
        self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self._progress.start()
        return lambda done: self._progress.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _print_summary(summary: StreamSummary, kind: str, path: str, ids: SchemaIds,
                   written: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alerts replay", show_header=False)
    table.add_row("source", f"{path} ({kind})")
    table.add_row("topic", summary.topic)
    table.add_row("pacing", summary.pacing)
    table.add_row("alerts acknowledged", f"{summary.delivered} of {summary.messages}")
    table.add_row("bytes", f"{summary.bytes / 1e6:.1f} MB")
    table.add_row("time", f"{summary.seconds:.2f} s")
    table.add_row("achieved rate", f"{summary.rate_per_s:,.0f} alerts/s "
                  f"({summary.mb_per_s:.1f} MB/s)")
    if summary.behind_s > 0.5:
        table.add_row("fell behind schedule", f"up to {summary.behind_s:.1f} s")
    for schema_id, count in sorted(summary.schema_ids.items()):
        schema = ids.used.get(schema_id)
        name = f"{schema.name} ({schema.format})" if schema else "?"
        table.add_row(f"schema id {schema_id}", f"{count} alerts, {name}")
    if written:
        table.add_row("local schema ids", str(written))
    Console().print(table)
