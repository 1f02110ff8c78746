"""``alerts replay``: ZTF-style archives, Rubin-format files and recordings into a real topic."""

from __future__ import annotations

import io
import itertools
import json
import struct
import uuid
from pathlib import Path

import fastavro
import pytest

from alertbutler.alerts import CURRENT_ALERT_SCHEMA_ID, decode_alert
from alertbutler.alerts.archive import write_alert_file
from alertbutler.alerts.fake import fake_alerts
from alertbutler.cli import main
from alertbutler.kafka import create_topics
from alertbutler.replay import (
    AlertSource,
    CorruptFileError,
    SchemaIds,
    TruncatedArchiveError,
    UnknownAlertSchemaError,
    load_sidecar,
    make_registry_client,
    producer_settings,
    stream_alerts,
)
from alertbutler.replay.schema_ids import LOCAL_ID_BASE
from alertbutler.replay.testing import (
    consume_all,
    write_ztf_archive,
    ztf_like_alerts,
    ztf_like_schema,
)

HEADER = struct.Struct(">bI")


def _topic(name: str, bootstrap: str, partitions: int = 1) -> str:
    topic = f"replay-{name}-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: partitions})
    return topic


def test_ztf_tarball_replays_in_order_with_keys(kafka_bootstrap: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    records = ztf_like_alerts(40, seed=3, n_objects=7)
    archive = write_ztf_archive(tmp_path / "ztf_public_20261125.tar.gz", records)
    topic = _topic("ztf", kafka_bootstrap)
    sidecar = tmp_path / "ids.json"
    code = main(["alerts", "replay", str(archive), "--topic", topic, "--bootstrap",
                 kafka_bootstrap, "--schema-file", str(sidecar), "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0, out
    summary = json.loads(out)
    assert summary["delivered"] == 40 and summary["source_kind"] == "ztf-tarball"
    assert summary["rate_per_s"] > 0

    got = consume_all(kafka_bootstrap, topic, 40)
    assert len(got) == 40
    schemas = load_sidecar(sidecar)
    (schema_id,) = {HEADER.unpack_from(m.value())[1] for m in got}
    assert schema_id >= LOCAL_ID_BASE and schema_id in schemas
    assert str(schema_id) in summary["schema_ids"]
    writer = fastavro.parse_schema(schemas[schema_id]["schema"])
    decoded = [fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), writer, None)
               for m in got]
    assert [d["candid"] for d in decoded] == [r["candid"] for r in records]  # order kept
    assert [m.key().decode() for m in got] == [r["objectId"] for r in records]
    assert decoded[5]["candidate"]["magpsf"] == pytest.approx(records[5]["candidate"]["magpsf"])
    assert decoded[5]["cutoutScience"]["stampData"] == records[5]["cutoutScience"]["stampData"]


def test_ztf_directory_with_a_schema_registry(kafka_bootstrap: str, tmp_path: Path) -> None:
    records = ztf_like_alerts(12, seed=4)
    directory = write_ztf_archive(tmp_path / "night", records, tarball=False)
    registry = make_registry_client("mock://replay-test")
    ids = SchemaIds(registry=registry)
    topic = _topic("ztf-registry", kafka_bootstrap, partitions=3)
    source = AlertSource(directory)
    summary = stream_alerts(source.messages(ids, topic), topic=topic,
                            settings=producer_settings(kafka_bootstrap))
    assert summary.delivered == 12
    got = consume_all(kafka_bootstrap, topic, 12)
    assert len(got) == 12
    for msg in got:
        _, schema_id = HEADER.unpack_from(msg.value())
        schema = json.loads(registry.get_schema(schema_id).schema_str)
        record = fastavro.schemaless_reader(io.BytesIO(msg.value()[5:]),
                                            fastavro.parse_schema(schema), None)
        assert msg.key().decode() == record["objectId"]
    # per-key order survives several partitions
    by_key: dict[str, list[int]] = {}
    for msg in sorted(got, key=lambda m: (m.partition(), m.offset())):
        schema = json.loads(registry.get_schema(HEADER.unpack_from(msg.value())[1]).schema_str)
        rec = fastavro.schemaless_reader(io.BytesIO(msg.value()[5:]),
                                         fastavro.parse_schema(schema), None)
        by_key.setdefault(rec["objectId"], []).append(rec["candid"])
    for candids in by_key.values():
        assert candids == sorted(candids)


def test_rubin_format_file_keeps_bytes_keys_and_ids(kafka_bootstrap: str,
                                                    tmp_path: Path) -> None:
    records = fake_alerts(25, seed=5, n_objects=6, cutout_size=None, n_history=3)
    path = tmp_path / "alerts.avro"
    write_alert_file(path, records)
    topic = _topic("rubin", kafka_bootstrap)
    ids = SchemaIds()
    summary = stream_alerts(AlertSource(path).messages(ids, topic), topic=topic,
                            settings=producer_settings(kafka_bootstrap), rate=5000)
    assert summary.delivered == 25 and dict(summary.schema_ids) == {CURRENT_ALERT_SCHEMA_ID: 25}
    got = consume_all(kafka_bootstrap, topic, 25)
    assert [decode_alert(m.value())["diaSourceId"] for m in got] == \
        [r["diaSourceId"] for r in records]
    assert [m.key() for m in got] == [str(r["diaSource"]["diaObjectId"]).encode()
                                      for r in records]


def test_rubin_sample_packet_gets_rubin_id(tmp_path: Path) -> None:
    packet = pytest.importorskip("lsst.alert.packet")
    sample = Path(packet.__file__).parent / "schema" / "11" / "1" / "sample_data" / \
        "fakeAlert.avro"
    if not sample.exists():
        pytest.skip("lsst-alert-packet has no 11.1 sample")
    messages = list(AlertSource(sample).messages(SchemaIds(), "t"))
    assert messages and {m.schema_id for m in messages} == {1101}
    with open(sample, "rb") as fh:
        first = next(iter(fastavro.reader(fh)))
    src = first["diaSource"]
    expected = next(v for v in (src.get("diaObjectId"), src.get("ssObjectId"),
                                first["diaSourceId"]) if v is not None)
    assert messages[0].key == str(expected).encode()  # the publisher's key rule


# ----------------------------------------------------------------------------- bad input
def test_truncated_tarball_names_the_file(kafka_bootstrap: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    archive = write_ztf_archive(tmp_path / "cut.tar.gz", ztf_like_alerts(30, seed=6))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TruncatedArchiveError, match="cut.tar.gz"):
        list(AlertSource(archive).messages(SchemaIds(), "t"))
    topic = _topic("cut", kafka_bootstrap)
    code = main(["alerts", "replay", str(archive), "--topic", topic, "--bootstrap",
                 kafka_bootstrap, "--schema-file", str(tmp_path / "ids.json"), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "cut.tar.gz" in captured.err and "truncated" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    # what was read before the damage was still delivered, and counted
    assert summary["delivered"] == summary["messages"]
    assert len(consume_all(kafka_bootstrap, topic, summary["delivered"],
                           timeout_s=10)) == summary["delivered"]


def test_unknown_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "weather", "namespace": "site",
              "fields": [{"name": "temperature", "type": "double"}]}
    path = tmp_path / "weather.avro"
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), [{"temperature": 12.5}])
    with pytest.raises(UnknownAlertSchemaError, match=r"weather\.avro.*site\.weather"):
        list(AlertSource(path).messages(SchemaIds(), "t"))


def test_corrupt_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.avro"
    garbage.write_bytes(b"this is not avro at all" * 10)
    with pytest.raises(CorruptFileError, match="garbage.avro"):
        list(AlertSource(garbage).messages(SchemaIds(), "t"))

    good = tmp_path / "good.avro"
    write_alert_file(good, fake_alerts(20, seed=7, cutout_size=None, n_history=2),
                     codec="deflate")
    data = bytearray(good.read_bytes())
    cut = tmp_path / "cut.avro"
    cut.write_bytes(bytes(data[: len(data) - 200]))
    with pytest.raises((TruncatedArchiveError, CorruptFileError), match="cut.avro"):
        list(AlertSource(cut).messages(SchemaIds(), "t"))

    flipped = tmp_path / "flipped.avro"
    data[-400:-336] = bytes(64)  # inside the last block, past the header
    flipped.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="flipped.avro"):
        list(AlertSource(flipped).messages(SchemaIds(), "t"))


def test_edited_schema_of_ours_is_unknown(tmp_path: Path) -> None:
    schema = ztf_like_schema()
    schema["name"], schema["namespace"] = "alert", "alertbutler.alert.v9_9"
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in ("objectId",)]
    path = tmp_path / "odd.avro"
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), [])
    with pytest.raises(UnknownAlertSchemaError, match="odd.avro"):
        list(AlertSource(path).messages(SchemaIds(), "t"))


def test_missing_source_and_no_kafka(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTBUTLER_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("ALERTBUTLER_CONFIG", raising=False)
    code = main(["alerts", "replay", str(tmp_path / "nope.tar"), "--topic", "x"])
    assert code == 2 and "--bootstrap" in capsys.readouterr().err
    code = main(["alerts", "replay", str(tmp_path / "nope.tar"), "--topic", "x",
                 "--bootstrap", "127.0.0.1:1", "--no-create-topic"])
    assert code == 1 and "nope.tar: no such file" in capsys.readouterr().err


def test_speed_scales_the_recorded_spacing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """--speed 20 on alerts 10 s apart: sent 0.5 s apart (Kafka CreateTime)."""
    records = ztf_like_alerts(8, seed=9, spacing_s=10.0, n_prv=2)
    archive = write_ztf_archive(tmp_path / "paced", records, tarball=False)
    topic = _topic("paced", kafka_bootstrap)
    settings = producer_settings(kafka_bootstrap, **{"linger.ms": 0})
    summary = stream_alerts(AlertSource(archive).messages(SchemaIds(), topic), topic=topic,
                            settings=settings, speed=20)
    assert summary.delivered == 8 and summary.pacing == "20 x recorded time"
    sent = [m.timestamp()[1] for m in consume_all(kafka_bootstrap, topic, 8)]
    gaps = [(b - a) / 1000.0 for a, b in itertools.pairwise(sent)]
    assert (sent[-1] - sent[0]) / 1000.0 == pytest.approx(7 * 0.5, rel=0.05), gaps
    for gap in gaps:  # one late message (a busy machine) moves two gaps
        assert gap == pytest.approx(0.5, rel=0.2), gaps


def test_every_rubin_sample_schema_is_taken(tmp_path: Path) -> None:
    """3.0-7.4 name an alert by alertId, not diaSourceId: taken, with Rubin's id (issue 16)."""
    pytest.importorskip("lsst.alert.packet")
    from alertbutler.alerts.writers import rubin_schema_dir, rubin_versions

    root = rubin_schema_dir()
    assert root is not None and len(rubin_versions()) >= 15
    for major, minor in rubin_versions():
        sample = root / str(major) / str(minor) / "sample_data" / "fakeAlert.avro"
        messages = list(AlertSource(sample).messages(SchemaIds(), "t"))
        assert [m.schema_id for m in messages] == [major * 100 + minor]
        assert messages[0].key  # diaObjectId, whatever the version
        assert messages[0].timestamp_ms is None or 0 <= messages[0].timestamp_ms < 2**45
