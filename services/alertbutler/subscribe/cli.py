"""``alertbutler subscribe URL``: read a stream from any start, filter it, write what is kept.

With ``--group`` the subscription is resumable: an alert's offset is committed once its
batch has been written out, so a restart with the same group continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from alertbutler.config import Config
from alertbutler.subscribe.undecodable import ON_ERROR_HELP, on_error_arg


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "subscribe", help="subscribe to an alert stream with filters and start positions",
        description="Read kafka://host:port[,host:port]/topic[,topic] from a start position, "
        "keep the alerts a filter accepts, and write them out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="start: earliest | latest | committed | last:N | ISO time | mjd:61000.5\n"
               "output: jsonl (stdout) | jsonl:PATH | avro:PATH | parquet:PATH | topic:NAME\n"
               "example: alertbutler subscribe kafka://localhost:9092/alerts --start last:100 "
               "--filter \"diaSource.snr > 20 and band == 'r'\" --until-end")
    parser.add_argument("url", metavar="URL")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--filter", metavar="EXPR", help="keep alerts for which EXPR is true")
    which.add_argument("--filters", metavar="FILE",
                       help="YAML file of named filters (its 'filters' table): keep alerts "
                       "that any of them accepts")
    parser.add_argument("--start", default=None,
                        help="where to start (default: committed with --group, else earliest)")
    parser.add_argument("--archive", action="append", default=[], metavar="DIR",
                        help="a night archive serving the past before the topic (a night "
                        "directory of `alertbutler run`, its night/, the alerts.avro, or the "
                        "data directory; repeatable): with --start TIME or earliest, its "
                        "alerts first, then the topic from exactly where it ends")
    parser.add_argument("--end", default=None, help="stop at this time (or 'end')")
    parser.add_argument("--until-end", action="store_true",
                        help="stop at the end of the stream as it was at start")
    parser.add_argument("--group", default=None,
                        help="consumer group: commits progress, resumes where it stopped")
    parser.add_argument("--output", default="jsonl", metavar="FORMAT[:TARGET]")
    parser.add_argument("--limit", type=int, default=None, help="stop after N kept alerts")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop after this long without a new alert")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("--schema-file", metavar="PATH", default=None,
                        help="local schema ids of replayed archives (default: "
                        "<data_dir>/replay/local-schema-ids.json, where alerts replay "
                        "records them)")
    parser.add_argument("--on-error", default="stop", metavar="stop|skip|deadletter:FILE",
                        type=on_error_arg, help=ON_ERROR_HELP)
    parser.set_defaults(func=_run)


def _filters(args: argparse.Namespace) -> dict[str, str]:
    """Filter texts by name (empty: keep everything); compiled per stream schema later."""
    if args.filter is not None:  # "" is an empty filter (refused), not "no filter"
        return {"filter": args.filter}
    if args.filters:
        import yaml

        from alertbutler.subscribe.errors import FilterConfigError

        with open(args.filters) as fh:
            data = yaml.safe_load(fh)
        table = data.get("filters", data) if isinstance(data, dict) else None
        if not isinstance(table, dict) or not table:
            raise FilterConfigError(f"{args.filters}: expected a mapping of named filters")
        return {str(k): v["filter"] if isinstance(v, dict) else v for k, v in table.items()}
    return {}


def _output(spec: str, config: Config, bootstrap: str, writers: Any = None) -> Any:
    from alertbutler.kafka import confluent_settings, create_topics
    from alertbutler.subscribe.errors import SubscribeError
    from alertbutler.subscribe.outputs import (
        JsonlOutput,
        TopicOutput,
        file_output,
        make_producer,
    )

    kind, _, target = spec.partition(":")
    if kind == "jsonl" and not target:
        return JsonlOutput(None, stream=sys.stdout, writers=writers)
    if kind == "topic" and target:
        settings = confluent_settings(config, bootstrap)
        create_topics(bootstrap, {target: config.kafka.partitions},
                      settings={k: v for k, v in settings.items() if k != "bootstrap.servers"})
        return TopicOutput(make_producer(settings), target, who=settings)
    if kind in ("jsonl", "avro", "parquet") and target:
        suffix = {"jsonl": ".jsonl", "avro": ".avro", "parquet": ".parquet"}[kind]
        if not target.endswith(suffix):
            raise SubscribeError(f"--output {spec}: a {kind} file name ends with {suffix}")
        return file_output(target, writers)
    raise SubscribeError(f"--output {spec!r}: expected jsonl, jsonl:PATH, avro:PATH, "
                         "parquet:PATH or topic:NAME")


def _run(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from alertbutler.subscribe.backfill import Backfill
    from alertbutler.subscribe.outputs import TopicOutput
    from alertbutler.subscribe.selection import Selector, writers_for
    from alertbutler.subscribe.stream import alert_bytes_decoder, open_stream
    from alertbutler.subscribe.undecodable import Undecodable, offsets_before
    from alertbutler.subscribe.url import StreamURL

    writers = writers_for(config, Path(args.schema_file) if args.schema_file else None)
    selector = Selector(_filters(args), writers)
    selector.check()
    end = "end" if args.until_end else args.end
    if args.archive and end is not None:
        from alertbutler.subscribe.errors import SubscribeError

        raise SubscribeError("--archive serves a backfill (history, then live): it cannot be "
                             "combined with --end or --until-end")
    options: dict[str, Any] = dict(group=args.group, commit="after",
                                   decoder=alert_bytes_decoder(writers), config=config)
    # an endless subscription is a backfill: the history to the seam, then live from it
    stream: Any = (open_stream(args.url, start=args.start, end=end,
                               idle_timeout=args.idle_timeout, **options)
                   if end is not None else
                   Backfill(args.url, start=args.start, idle_timeout=args.idle_timeout,
                            archives=args.archive, **options))
    output = _output(args.output, config, StreamURL.parse(args.url).bootstrap, writers)
    status = _Status(enabled=not args.quiet and sys.stderr.isatty())
    undecodable = Undecodable(args.on_error, _report)
    kept_total = 0
    try:
        with stream, status:
            for batch in _batches(stream):
                selection = selector.select([a.value for a in batch])
                stop = undecodable.handle(batch, selection.bad)
                # kept by any filter, in reading order, before the message it stops at
                rows = np.unique(np.concatenate([*selection.kept.values(), []]).astype(int)) \
                    if selection.kept else np.zeros(0, dtype=int)
                if stop is not None:
                    rows = rows[rows < stop]
                if args.limit is not None:
                    rows = rows[: max(0, args.limit - kept_total)]
                kept_alerts = [batch[i] for i in rows]
                if isinstance(output, TopicOutput):
                    output.write(kept_alerts, [selection.keys[i] or batch[i].key or b""
                                               for i in rows])
                else:
                    output.write(kept_alerts)
                output.flush()
                kept_total += len(kept_alerts)
                status.update(stream.received, kept_total, stream.lag)
                if stop is not None:
                    # what came before it was written: commit that, and nothing past it
                    part = stream.stream if isinstance(stream, Backfill) else stream
                    if args.group and args.limit is None and part is not None:
                        part.commit(offsets_before(batch, stop))
                    raise undecodable.error(batch, selection.bad)
                if args.limit is not None and kept_total >= args.limit:
                    break  # this batch stays uncommitted: at-least-once on resume
    finally:
        output.close()
        undecodable.close()
    if undecodable.count:
        done = "kept in " + str(args.on_error.path) if args.on_error.path else "skipped"
        print(f"alertbutler subscribe: read {stream.received:,}, kept {kept_total:,}, "
              f"undecodable {undecodable.count:,} ({done})", file=sys.stderr)
    return 0


def _batches(stream: Any) -> Any:
    """Batches of a bounded stream, or of a backfill's history and then its live part."""
    from alertbutler.subscribe.backfill import Backfill

    if isinstance(stream, Backfill):
        return (batch for _, batch in stream.batches(max_alerts=1000) if batch)
    return stream.batches(max_alerts=1000)


def _report(alert: Any, reason: str, done: str) -> None:
    print(f"alertbutler subscribe: {alert.topic}[{alert.partition}] offset {alert.offset} "
          f"cannot be decoded ({reason}): {done}", file=sys.stderr)


class _Status:
    """One live line on a terminal: alerts read, kept, rate and lag."""

    def __init__(self, enabled: bool, console: Any = None) -> None:
        self.enabled = enabled
        self.console = console
        self.started = time.monotonic()
        self._live: Any = None

    def __enter__(self) -> _Status:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=self.console or Console(stderr=True),
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def update(self, read: int, kept: int, lag: int) -> None:
        if self._live is None:
            return
        rate = read / max(time.monotonic() - self.started, 1e-9)
        self._live.update(f"read {read:,}  kept {kept:,}  {rate:,.0f} alerts/s  lag {lag:,}")

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
