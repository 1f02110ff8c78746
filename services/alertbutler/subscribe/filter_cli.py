"""``alertbutler filter serve FILTERS.yaml`` and ``alertbutler filter check``."""

from __future__ import annotations

import argparse
import json
import sys

from alertbutler.config import Config
from alertbutler.subscribe.undecodable import ON_ERROR_HELP, on_error_arg


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="run the named filters of a YAML file, each to its own topic or file",
        description="Evaluate every filter of FILTERS.yaml in one pass over the stream. "
        "Offsets are committed only after every filtered topic acknowledged the batch; the "
        "file is reloaded when it changes (a filter that no longer compiles keeps its "
        "previous version).")
    serve.add_argument("file", metavar="FILTERS.yaml")
    serve.add_argument("--until-end", action="store_true",
                       help="stop at the end of the stream as it was when the service started")
    serve.add_argument("--start", default=None,
                       help="override the start (default: the group's committed offsets)")
    serve.add_argument("--reload-interval", type=float, default=0.25, metavar="SECONDS",
                       help="how often the file is checked (a stat(); default 0.25)")
    serve.add_argument("--on-error", default=None, metavar="stop|skip|deadletter:FILE",
                       type=on_error_arg, help=ON_ERROR_HELP + "; overrides the file's on_error")
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="serve Prometheus /metrics, /healthz and /readyz on this port")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check", help="compile the filters of a YAML file, or one "
                           "expression, and report every error with its position")
    what = check.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", metavar="FILTERS.yaml")
    what.add_argument("--expr", help="one filter expression")
    check.set_defaults(func=_check)


def _serve(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.metrics import Health, MetricsServer, ServiceMetrics
    from alertbutler.subscribe.service import FilterService, describe

    metrics, health = ServiceMetrics("filter"), Health()
    service = FilterService(args.file, config=config, until_end=args.until_end,
                            start=args.start, reload_interval=args.reload_interval,
                            on_error=args.on_error,
                            metrics=metrics, health=health)
    service.install_signal_handlers()
    server = (MetricsServer(metrics, health, port=args.metrics_port).start()
              if args.metrics_port is not None else None)
    try:
        stats = service.run()
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(describe(stats)))
    return 0


def _check(args: argparse.Namespace, config: Config) -> int:
    from alertbutler.alerts.writers import writers_for
    from alertbutler.subscribe.errors import FilterError
    from alertbutler.subscribe.selection import compile_any
    from alertbutler.subscribe.service import load_service_spec

    texts = {"expr": args.expr} if args.expr is not None else \
        {n: s.text for n, s in load_service_spec(args.file).filters.items()}
    writers = writers_for(config)  # ours, Rubin's, replayed archives' (ZTF) schemas
    bad = 0
    for name, text in texts.items():
        try:
            f, writer = compile_any(text, writers)
        except FilterError as exc:
            bad += 1
            print(f"{name}: {exc}", file=sys.stderr)
            lines = text.split("\n")  # as FilterError counts lines: a trailing one is there
            line = lines[exc.line - 1].rstrip("\r") if exc.line <= len(lines) else ""
            print(f"    {line}\n    {' ' * (exc.column - 1)}^", file=sys.stderr)
            continue
        fields = sorted(".".join(k for k in c.key if k != "*") for c in f.columns
                        if c.kind != "array")
        on = f" of {writer.name}" if writer is not None else ""
        print(f"{name}: ok (reads {', '.join(fields)}{on})")
    return 1 if bad else 0
