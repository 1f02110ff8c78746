"""``alertbutler topics create|list|delete`` against the configured Kafka."""

from __future__ import annotations

import argparse

from alertbutler.cli.args import partitions as args_partitions
from alertbutler.config import Config, ConfigError
from alertbutler.kafka import confluent_settings, create_topics, delete_topics, list_topics


def register(sub: argparse._SubParsersAction) -> None:
    create = sub.add_parser("create", help="create topics (existing ones are left alone)")
    create.add_argument("names", nargs="+")
    create.add_argument("--partitions", type=args_partitions, default=None,
                        help="partitions per topic (default: kafka.partitions)")
    create.set_defaults(func=_create)
    lister = sub.add_parser("list", help="list topics with their partition counts")
    lister.set_defaults(func=_list)
    delete = sub.add_parser("delete", help="delete topics")
    delete.add_argument("names", nargs="+")
    delete.set_defaults(func=_delete)


def _target(config: Config) -> tuple[str, dict[str, object]]:
    if not config.kafka.bootstrap_servers:
        raise ConfigError("kafka.bootstrap_servers is empty: topics need a running broker "
                          "(start one with 'alertbutler broker' and set "
                          "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS)")
    settings = confluent_settings(config)
    return str(settings.pop("bootstrap.servers")), settings


def _create(args: argparse.Namespace, config: Config) -> int:
    bootstrap, settings = _target(config)
    n = config.kafka.partitions if args.partitions is None else args.partitions
    for name, parts in create_topics(bootstrap, dict.fromkeys(args.names, n),
                                     settings=settings).items():
        print(f"{name}\t{parts}")
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    bootstrap, settings = _target(config)
    for name, parts in sorted(list_topics(bootstrap, settings=settings).items()):
        print(f"{name}\t{parts}")
    return 0


def _delete(args: argparse.Namespace, config: Config) -> int:
    bootstrap, settings = _target(config)
    delete_topics(bootstrap, args.names, settings=settings)
    return 0
