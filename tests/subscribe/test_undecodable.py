"""A message a subscriber cannot decode is never lost silently (issue 16 #4): ``subscribe``
and the filter service stop at it and commit nothing past it, unless told to skip it or to
keep it in a dead-letter file."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as TP

from alertbutler.alerts import encode_alerts
from alertbutler.cli import main
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.subscribe import open_stream, raw_decoder
from alertbutler.subscribe.service import FilterService
from alertbutler.subscribe.testing import varied_alerts
from alertbutler.subscribe.undecodable import UndecodableError, parse_on_error

#: a wire-format message of a schema id nobody knows, and a truncated alert
UNKNOWN = b"\x00" + (4242).to_bytes(4, "big") + b"not an alert"


def _messages() -> tuple[list[bytes], list[int], list[dict]]:
    """11 good alerts with two undecodable messages among them (offsets 5 and 9)."""
    alerts = varied_alerts(11, seed=16)
    good = encode_alerts(alerts)
    truncated = good[0][: len(good[0]) // 2]
    values = [*good[:5], UNKNOWN, *good[5:8], truncated, *good[8:]]
    return values, [5, 9], alerts


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for v in values:
        producer.produce(topic, v, partition=0)
    assert producer.flush(30) == 0


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return consumer.committed([TP(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"undec-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {name: 1})
    _produce(kafka_bootstrap, name, _messages()[0])
    return name


def _ids(path: Path) -> list[int]:
    return [json.loads(line)["diaSourceId"] for line in path.read_text().splitlines()]


def test_subscribe_stops_skips_or_keeps_aside(kafka_bootstrap: str, topic: str,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    _, bad, alerts = _messages()
    url = f"kafka://{kafka_bootstrap}/{topic}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out.jsonl"
    base = ["subscribe", url, "--group", group, "--until-end", "--quiet",
            "--output", f"jsonl:{out}"]

    assert main(base) == 1
    err = capsys.readouterr().err
    assert f"{topic}[0] offset 5 cannot be decoded" in err and "UnknownSchemaError" in err
    assert _ids(out) == [a["diaSourceId"] for a in alerts[:5]]  # what came before it
    assert _committed(kafka_bootstrap, group, topic) == 5      # and nothing past it
    assert main(base) == 1  # resumed: stops at the same message again, loses nothing
    assert _committed(kafka_bootstrap, group, topic) == 5
    assert _ids(out) == [a["diaSourceId"] for a in alerts[:5]]

    assert main([*base, "--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    assert "offset 5 cannot be decoded" in err and "offset 9 cannot be decoded" in err
    assert "undecodable 2 (skipped)" in err
    assert _ids(out) == [a["diaSourceId"] for a in alerts]
    assert _committed(kafka_bootstrap, group, topic) == 13

    dead = tmp_path / "dead.jsonl"
    values = _messages()[0]
    assert main(["subscribe", url, "--until-end", "--quiet", "--output",
                 f"jsonl:{tmp_path / 'all.jsonl'}", "--on-error", f"deadletter:{dead}"]) == 0
    rows = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == \
        [(topic, 0, o) for o in bad]
    assert [base64.b64decode(r["value"]) for r in rows] == [values[o] for o in bad]
    assert f"kept in {dead}" in capsys.readouterr().err


def test_subscribe_on_error_is_a_usage_error_when_malformed(
        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["subscribe", "kafka://127.0.0.1:1/x", "--on-error", "ignore"])
    assert exc.value.code == 2
    assert "expected stop, skip or deadletter:FILE" in capsys.readouterr().err


def test_filter_service_stops_then_skips(kafka_bootstrap: str, topic: str,
                                         tmp_path: Path) -> None:
    _, _, alerts = _messages()
    group = f"svc-{uuid.uuid4().hex[:6]}"
    target = f"{topic}-all"
    spec = {"source": f"kafka://{kafka_bootstrap}/{topic}", "group": group,
            "batch_size": 100, "filters": {"all": {"filter": "diaSourceId > 0",
                                                   "topic": target}}}
    path = tmp_path / "filters.yaml"
    path.write_text(yaml.safe_dump(spec))
    config = load_config(env={})

    with pytest.raises(UndecodableError, match="offset 5 cannot be decoded"):
        FilterService(path, config=config, until_end=True).run()
    assert _committed(kafka_bootstrap, group, topic) == 5

    def forwarded() -> list[bytes]:
        with open_stream(f"kafka://{kafka_bootstrap}/{target}", end="end",
                         decoder=raw_decoder) as stream:
            return [a.value for a in stream]

    values = _messages()[0]
    assert forwarded() == values[:5]

    stats = FilterService(path, config=config, until_end=True,
                          on_error=parse_on_error("skip")).run()
    assert stats.undecodable == 2
    assert _committed(kafka_bootstrap, group, topic) == 13
    assert sorted(forwarded()) == sorted(encode_alerts(alerts))
