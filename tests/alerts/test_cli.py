"""``alertbutler alerts dump`` on files and topics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertbutler.alerts import control_topic
from alertbutler.alerts.archive import write_alert_file
from alertbutler.alerts.fake import fake_alerts
from alertbutler.alerts.publish_datastore import PublishDatastore
from alertbutler.cli import main

from .conftest import make_ref


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTBUTLER_CONFIG", "ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS",
                 "ALERTBUTLER_SCHEMA_REGISTRY__URL"):
        monkeypatch.delenv(name, raising=False)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_dump_file_summarizes_cutouts(tmp_path: Path, capsys) -> None:
    alerts = fake_alerts(5, seed=2, n_history=2, cutout_size=30, cutout_pool=2)
    path = tmp_path / "a.avro"
    write_alert_file(path, alerts)
    assert main(["alerts", "dump", str(path), "--limit", "3"]) == 0
    lines = _lines(capsys)
    assert [r["diaSourceId"] for r in lines] == [a["diaSourceId"] for a in alerts[:3]]
    summary = lines[0]["cutoutScience"]
    assert summary["shape"] == [30, 30] and summary["bytes"] == len(alerts[0]["cutoutScience"])
    assert main(["alerts", "dump", str(path), "--cutouts", "omit"]) == 0
    assert all(r["cutoutDifference"] is None for r in _lines(capsys))


def test_dump_rubin_sample(capsys) -> None:
    packet = pytest.importorskip("lsst.alert.packet")
    sample = Path(packet.schema.get_schema_root()) / "11/1/sample_data/fakeAlert.avro"
    assert main(["alerts", "dump", str(sample)]) == 0
    assert _lines(capsys)[0]["diaSource"]["diaSourceId"]


def test_dump_topic_with_start_limit_and_kind(kafka_bootstrap, new_topic, capsys) -> None:
    topic = new_topic(1)
    store = PublishDatastore(bootstrap=kafka_bootstrap, topic_template=topic)
    alerts = fake_alerts(10, seed=3, n_history=1, cutout_size=None)
    store.put(alerts, make_ref(visit=5, detector=2))
    url = f"kafka://{kafka_bootstrap}/{topic}"
    assert main(["alerts", "dump", url]) == 0
    lines = _lines(capsys)
    assert [line["kind"] for line in lines] == ["alert"] * 10  # the marker is out of band
    assert [line["offset"] for line in lines] == list(range(10))
    assert lines[0]["record"]["diaSourceId"] == alerts[0]["diaSourceId"]
    assert main(["alerts", "dump", url, "--start", "4", "--limit", "2"]) == 0
    assert [line["offset"] for line in _lines(capsys)] == [4, 5]
    control = f"kafka://{kafka_bootstrap}/{control_topic(topic)}"
    assert main(["alerts", "dump", control, "--kind", "visit_detector_end"]) == 0
    (marker,) = _lines(capsys)
    assert marker["record"]["n_alerts"] == 10 and marker["record"]["visit"] == 5
    assert marker["record"]["last_offset"] == 9 and marker["record"]["topic"] == topic


def test_dump_errors(tmp_path: Path, capsys) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["alerts", "dump", str(text)]) == 1
    assert "not an Avro container file" in capsys.readouterr().err
    assert main(["alerts", "dump", "some-topic"]) == 2
    assert "kafka.bootstrap_servers is empty" in capsys.readouterr().err
