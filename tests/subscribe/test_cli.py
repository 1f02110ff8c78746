"""``alertbutler subscribe``: filters, outputs, resume by group; access settings."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from alertbutler.alerts import encode_alerts
from alertbutler.cli import main
from alertbutler.config import load_config
from alertbutler.kafka import create_topics
from alertbutler.subscribe import AlertStream, open_stream, raw_decoder
from alertbutler.subscribe.testing import varied_alerts

FILTER = "diaSource.snr > 10 and band in ['g', 'r']"


def _keep(alert: dict) -> bool:
    src = alert["diaSource"]
    return src["snr"] is not None and src["snr"] > 10 and src["band"] in ("g", "r")


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for i, v in enumerate(values):  # both partitions get half: "last:20" then means 40
        producer.produce(topic, v, partition=i % 2)
    assert producer.flush(30) == 0


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {name: 2})
    return name


def test_subscribe_filters_outputs_and_resumes(kafka_bootstrap: str, topic: str,
                                               tmp_path: Path) -> None:
    alerts = varied_alerts(300, seed=4)
    values = encode_alerts(alerts)
    _produce(kafka_bootstrap, topic, values[:200])
    url = f"kafka://{kafka_bootstrap}/{topic}"
    out = tmp_path / "kept.jsonl"
    group = f"cli-{uuid.uuid4().hex[:6]}"
    args = ["subscribe", url, "--filter", FILTER, "--group", group, "--until-end",
            "--output", f"jsonl:{out}", "--quiet"]
    assert main(args) == 0
    first = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(first) == sorted(a["diaSourceId"] for a in alerts[:200] if _keep(a))
    _produce(kafka_bootstrap, topic, values[200:])
    assert main(args) == 0  # resumes after what the group committed
    second = [json.loads(line)["diaSourceId"] for line in out.read_text().splitlines()]
    assert sorted(second) == sorted(a["diaSourceId"] for a in alerts if _keep(a))

    for kind in ("avro", "parquet"):
        path = tmp_path / f"all.{kind}"
        assert main(["subscribe", url, "--start", "last:20", "--until-end", "--output",
                     f"{kind}:{path}", "--quiet"]) == 0
        if kind == "avro":
            with open(path, "rb") as fh:
                rows = list(fastavro.reader(fh))
        else:
            rows = pq.read_table(path).to_pylist()
        assert len(rows) == 40
        assert {r["diaSourceId"] for r in rows} <= {a["diaSourceId"] for a in alerts}

    target = f"{topic}-kept"
    assert main(["subscribe", url, "--filter", FILTER, "--until-end", "--output",
                 f"topic:{target}", "--quiet"]) == 0
    with open_stream(f"kafka://{kafka_bootstrap}/{target}", end="end",
                     decoder=raw_decoder) as stream:
        forwarded = [a.value for a in stream]
    assert sorted(forwarded) == sorted(v for a, v in zip(alerts, values, strict=True)
                                       if _keep(a))


def test_subscribe_refuses_bad_filter(kafka_bootstrap: str, topic: str,
                                      capsys: pytest.CaptureFixture) -> None:
    url = f"kafka://{kafka_bootstrap}/{topic}"
    assert main(["subscribe", url, "--filter", "diaSource.snr >", "--quiet"]) == 1
    assert "line 1, column 16" in capsys.readouterr().err


def test_access_settings_pass_through_and_stay_secret(kafka_bootstrap: str, topic: str,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    secret = "s3cr3t-Pa55"
    config = load_config(env={}, overrides={"kafka": {"client": {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": secret,
        "ssl.ca.location": "/etc/ssl/ca.pem"}}})
    stream = AlertStream(f"kafka://{kafka_bootstrap}/{topic}", group="team", config=config)
    assert stream.group == "alice-team"
    settings = stream.consumer_settings()
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.password"] == secret and settings["group.id"] == "alice-team"
    assert secret not in repr(stream)
    # a PLAINTEXT open logs nothing secret either (the broker here has no SASL)
    plain = load_config(env={}, overrides={"kafka": {"client": {"sasl.username": "bob",
                                                                "sasl.password": secret}}})
    caplog.set_level(logging.DEBUG)
    with open_stream(f"kafka://{kafka_bootstrap}/{topic}", group="g", config=plain,
                     decoder=raw_decoder, end="end") as s:
        assert s.group == "bob-g"
        list(s)
    assert all(secret not in r.getMessage() and secret not in str(r.__dict__)
               for r in caplog.records)


def test_live_line_shows_rate_and_lag() -> None:
    import io

    from rich.console import Console

    from alertbutler.subscribe.cli import _Status

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=100)
    with _Status(enabled=True, console=console) as status:
        status.update(1234, 56, 789)
    text = buffer.getvalue()
    assert "read 1,234" in text and "kept 56" in text and "alerts/s" in text
    assert "lag 789" in text
