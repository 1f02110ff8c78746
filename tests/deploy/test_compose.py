"""docker-compose.yml is valid Compose and names only real verbs with real options."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alertbutler.alerts import control_topic
from alertbutler.cli import VERBS, build_parser
from alertbutler.config import load_config
from alertbutler.deploy.topology import topology

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ALERTBUTLER_SERVICES = ("fanout", "worker", "ingest", "filter")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_passes_the_specification_validator() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_infrastructure() -> None:
    services = _compose()["services"]
    for name in ("kafka", "schema-registry", "postgres", "prometheus", "grafana", "init"):
        assert name in services, name
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    for name in ALERTBUTLER_SERVICES:
        assert "healthcheck" in services[name], name


def _argv(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


@pytest.mark.parametrize("name", ALERTBUTLER_SERVICES)
def test_every_compose_service_is_a_cli_verb_with_those_options(name: str) -> None:
    argv = _argv(_compose()["services"][name])
    assert argv[0] in VERBS
    args = build_parser(argv[0]).parse_args(argv)  # exits (fails) on an unknown option
    assert callable(args.func)


def test_same_topology_as_alertbutler_up() -> None:
    local = {spec.name: spec.argv for spec in topology(workers=2, filters=Path("f.yaml"))}
    services = _compose()["services"]
    assert set(local) == set(ALERTBUTLER_SERVICES)
    for name, argv in local.items():
        compose_argv = _argv(services[name])
        # the same verb and sub-verb; the compose file adds its metrics port and paths
        assert compose_argv[: len(argv) - (1 if name == "filter" else 0)] == \
            list(argv[: len(argv) - (1 if name == "filter" else 0)])


def test_dashboard_and_alert_rules_name_only_real_metrics() -> None:
    import json
    import re

    from alertbutler.metrics import ServiceMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    known = {f.name + suffix for f in ServiceMetrics("any").registry.collect()
             for suffix in suffixes[f.type]}
    rules = yaml.safe_load((ROOT / "docker" / "alert-rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((ROOT / "docker" / "grafana" / "dashboards" / "alertbutler.json")
                           .read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"alertbutler_[a-z_]+", e)}
    assert used and used <= known, used - known
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alert-rules.yml"]


def test_init_commands_parse_and_keep_next_visit_in_one_partition() -> None:
    init = _compose()["services"]["init"]
    assert init["entrypoint"] == ["sh", "-c"]
    commands = [shlex.split(part) for part in init["command"][0].split("&&")]
    created: dict[str, int] = {}
    for argv in commands:
        assert argv[0] == "alertbutler", argv
        args = build_parser(argv[1]).parse_args(argv[1:])
        assert callable(args.func), argv
        if argv[1:3] == ["topics", "create"]:
            created.update(dict.fromkeys(args.names, args.partitions))
    config = load_config(env={})
    k = config.kafka
    assert created[k.next_visit_topic] == 1
    assert created[k.work_topic] == created[k.alert_topic] == k.partitions
    assert created[control_topic(k.alert_topic)] == 1  # the end markers (docs/alerts.md)
    assert {k.dead_letter_topic, config.prompt.status_topic} <= set(created)
    assert ["alertbutler", "l1db", "create"] in commands
