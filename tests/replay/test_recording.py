"""The recording format: manifest, verification, tarballs, and replaying its alerts."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import fastavro
import pytest

from alertbutler.alerts import CURRENT_ALERT_SCHEMA_ID, encode_alerts, schema_info
from alertbutler.alerts.fake import fake_alerts
from alertbutler.kafka import create_topics
from alertbutler.replay import (
    AlertSource,
    ChecksumMismatchError,
    MissingFileError,
    Recording,
    RecordingError,
    RecordingWriter,
    RunNameError,
    ScheduledEvent,
    SchemaIds,
    TruncatedArchiveError,
    check_run_name,
    producer_settings,
    replay_run_name,
    stream_alerts,
)
from alertbutler.replay.testing import consume_all

T0 = 1_795_000_000.0


def _make(root: Path, *, tarball: Path | None = None) -> tuple[Path, list[tuple]]:
    writer = RecordingWriter(root / "night")
    text = schema_info(CURRENT_ALERT_SCHEMA_ID).text
    sent: list[tuple] = []
    for k, visit in enumerate((1001, 1002)):
        records = fake_alerts(6, seed=20 + k, visit=visit, n_objects=4, cutout_size=30,
                              n_history=2, cutout_pool=1)
        messages = [(str(r["diaSource"]["diaObjectId"]).encode(), m,
                     int(T0 * 1000) + 1000 * k + i)
                    for i, (r, m) in enumerate(zip(records, encode_alerts(records),
                                                   strict=True))]
        writer.add_alerts(visit, CURRENT_ALERT_SCHEMA_ID, text, messages)
        sent.extend(messages)
        raw = root / f"raw{k}.fits"
        raw.write_bytes(bytes([k]) * 5760)
        rel = f"raws/simcam/{visit}/0.fits"
        writer.add_file(rel, raw)
        writer.schedule.append(ScheduledEvent(T0 + 40 * k, "next_visit", str(visit), index=k))
        writer.schedule.append(ScheduledEvent(T0 + 40 * k + 30, "raw", str(visit), detector=0,
                                              file=rel))
    writer.write_json("config/pipeline.json", {"detection_threshold": 5.0})
    calibs = root / "export"
    (calibs / "bias").mkdir(parents=True)
    (calibs / "bias" / "bias_det000.fits").write_bytes(b"\0" * 2880)
    writer.add_tree("calibs", calibs)
    path = writer.finish({"source": "test", "instrument": "simcam",
                          "runs": ["prompt/simcam/outputs"]}, tarball=tarball)
    return path, sent


def test_written_recording_verifies_and_lists_everything(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert {"alerts/visit-1001.avro", "raws/simcam/1002/0.fits",
            "calibs/bias/bias_det000.fits", "config/pipeline.json", "schedule.json"} <= \
        set(manifest["files"])
    with Recording.open(path) as rec:
        assert rec.alert_count == 12
        assert [e.kind for e in rec.schedule()] == ["next_visit", "raw"] * 2
        files = list(rec.alert_files())
        # the alert files are ordinary Avro container files of the alert schema
        with open(files[0], "rb") as fh:
            records = list(fastavro.reader(fh))
        assert [r["diaSourceId"] for r in records] == \
            [fake_alerts(6, seed=20, visit=1001, n_objects=4, cutout_size=None,
                         n_history=2)[i]["diaSourceId"] for i in range(6)]


def test_recording_replays_byte_identical_messages(kafka_bootstrap: str,
                                                   tmp_path: Path) -> None:
    path, sent = _make(tmp_path, tarball=tmp_path / "night.tar.gz")
    assert path.name == "night.tar.gz"
    topic = f"replay-rec-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 1})
    with AlertSource(path) as source:
        assert source.info.kind == "recording" and source.info.total == 12
        summary = stream_alerts(source.messages(SchemaIds(), topic), topic=topic,
                                settings=producer_settings(kafka_bootstrap),
                                keep_timestamps=True)
    assert summary.delivered == 12
    got = consume_all(kafka_bootstrap, topic, 12)
    assert [(m.key(), m.value(), m.timestamp()[1]) for m in got] == sent


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    raw = path / "raws/simcam/1002/0.fits"
    raw.unlink()  # hard-linked from the source: replace, do not edit in place
    raw.write_bytes(b"\1" * 5759 + b"\2")
    with pytest.raises(ChecksumMismatchError, match=r"raws/simcam/1002/0\.fits.*sha256"):
        Recording.open(path)
    raw.write_bytes(b"\1" * 100)
    with pytest.raises(ChecksumMismatchError, match="size 100"):
        Recording.open(path)


def test_missing_raw_names_the_raw(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    (path / "raws/simcam/1001/0.fits").unlink()
    with pytest.raises(MissingFileError, match=r"1001/0\.fits: raw listed"):
        Recording.open(path)
    with pytest.raises(MissingFileError):
        AlertSource(path)


def test_truncated_recording_tarball(tmp_path: Path) -> None:
    path, _ = _make(tmp_path, tarball=tmp_path / "night.tar")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedArchiveError, match="night.tar"):
        Recording.open(path)


def test_manifest_paths_cannot_leave_the_recording(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = {"size": 1, "sha256": "0"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingError, match="unsafe path"):
        Recording.open(path)


def test_wrong_format_and_existing_target(tmp_path: Path) -> None:
    path, _ = _make(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingError, match="version 99"):
        Recording.open(path)
    with pytest.raises(RecordingError, match="never overwritten"):
        RecordingWriter(path)
    shutil.rmtree(path)


def test_replay_runs_never_reuse_recorded_runs() -> None:
    recorded = ["prompt/simcam/outputs", "simcam/calib"]
    name = replay_run_name("prompt/simcam/outputs", "r1")
    assert check_run_name(name, recorded) == name
    for bad in ("prompt/simcam/outputs", "prompt/simcam/outputs/sub", "../x", "a b", ""):
        with pytest.raises(RunNameError):
            check_run_name(bad, recorded)
