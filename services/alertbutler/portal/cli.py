"""``alertbutler serve``: the portal (web pages and REST API) with uvicorn, on loopback."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from alertbutler.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve", help="serve the portal: object pages, cone search, night, live alerts, API",
        description="A read-only web portal and REST API (OpenAPI at /openapi.json, browsable "
        "at /docs) over the L1 database, a night directory written by `alertbutler run` and "
        "the live alert topic. Defaults: the data directory's night and L1 database "
        "(as `alertbutler run` leaves them), kafka.bootstrap_servers' alert topic for the "
        "live page, 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: loopback only)")
    parser.add_argument("--night", default=None, metavar="DIR",
                        help="a night directory (default: <data_dir>/mainjob)")
    parser.add_argument("--l1db", default=None, metavar="URL",
                        help="L1 database URL (default: the night's, else l1db.url)")
    parser.add_argument("--filters", default=None, metavar="FILE",
                        help="the filter service's file (`alertbutler filter serve FILE`): "
                        "filters saved through the portal take effect in that service")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from alertbutler.kafka import aiokafka_settings
    from alertbutler.portal import PortalSettings, create_app
    from alertbutler.prompt.ledger import LedgerError, night_root, read_ledger

    if not 0 < args.port < 65536:
        print(f"alertbutler serve: --port must be in 1..65535, got {args.port}",
              file=sys.stderr)
        return 2
    try:
        ipaddress.ip_address(args.host)
    except ValueError:
        print(f"alertbutler serve: --host must be an IP address, got {args.host!r}",
              file=sys.stderr)
        return 2
    root: Path | None = night_root(config.data_dir, args.night)
    l1db_url = args.l1db
    try:
        ledger = read_ledger(root)  # type: ignore[arg-type]
        l1db_url = l1db_url or ledger.l1db_url
    except LedgerError as exc:
        if args.night is not None:
            print(f"alertbutler serve: {exc}", file=sys.stderr)
            return 2
        root = None
    if l1db_url is None:
        l1db_url = config.l1db_url
    filters_file = None
    if args.filters is not None:
        from alertbutler.subscribe.errors import FilterConfigError
        from alertbutler.subscribe.service import load_service_spec

        filters_file = Path(args.filters).resolve()
        try:
            load_service_spec(filters_file)
        except FilterConfigError as exc:
            print(f"alertbutler serve: --filters: {exc}", file=sys.stderr)
            return 2
    loopback = ipaddress.ip_address(args.host).is_loopback
    bootstrap = config.kafka.bootstrap_servers
    settings = PortalSettings(
        l1db_url=l1db_url, night_root=root, bootstrap=bootstrap,
        alert_topic=config.kafka.alert_topic,
        aiokafka=aiokafka_settings(config) if bootstrap else {},
        confluent=dict(config.kafka.client),
        state_dir=(config.data_dir / "portal").resolve(), filters_file=filters_file,
        config=config,
        open_reads=loopback)
    if not loopback:
        print(f"alertbutler serve: warning: listening on {args.host}, beyond this machine: "
              "every request needs an API token (`alertbutler token create NAME`), sent "
              "in clear unless a TLS proxy stands in front", file=sys.stderr)
    print(f"portal: http://{args.host}:{args.port}/ (L1 database {l1db_url}; night "
          f"{root or 'none'}; live topic {config.kafka.alert_topic if bootstrap else 'none'})",
          flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0
