"""Wire format, encoding, decoding, schema evolution and bad input."""

from __future__ import annotations

import struct

import pytest

import alertbutler.alerts as alerts
from alertbutler.alerts import (
    AlertFormatError,
    BadMagicByteError,
    Codec,
    SchemaViolationError,
    TruncatedMessageError,
    UnknownSchemaError,
    decode_alert,
    decode_message,
    encode_alert,
    encode_alerts,
)
from alertbutler.alerts.fake import fake_alerts


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return fake_alerts(20, seed=3, cutout_size=32, cutout_pool=2)


def test_wire_header_and_round_trip(records: list[dict]) -> None:
    data = encode_alert(records[0])
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0 and schema_id == alerts.CURRENT_ALERT_SCHEMA_ID
    decoded = decode_message(data)
    assert decoded.kind == "alert" and decoded.schema_id == alerts.CURRENT_ALERT_SCHEMA_ID
    assert decoded.record == records[0]
    assert [decode_alert(m) for m in encode_alerts(records)] == records


def test_input_records_are_not_modified(records: list[dict]) -> None:
    before = repr(records[1])
    encode_alert(records[1])
    assert repr(records[1]) == before
    assert isinstance(records[1]["prvDiaSources"], list)


def test_older_version_reads_as_current(records: list[dict]) -> None:
    old = alerts.Codec().encode(records[0], "alert:1.0")
    assert struct.unpack(">I", old[1:5])[0] == 900100
    decoded = decode_message(old)
    assert decoded.schema_id == 900100 and decoded.kind == "alert"
    # Fields added in 1.1 come back with their defaults; everything else is unchanged.
    assert decoded.record["observation_reason"] is None
    assert decoded.record["diaSource"]["reliability"] is None
    assert decoded.record["diaSource"]["psfFlux"] == records[0]["diaSource"]["psfFlux"]
    assert decoded.record["cutoutScience"] == records[0]["cutoutScience"]
    # and read as the older version explicitly
    as_old = Codec().decode(encode_alert(records[0]), reader="alert:1.0")
    assert "observation_reason" not in as_old.record


def test_markers_and_next_visit_are_told_apart_by_id() -> None:
    marker = alerts.encode_visit_detector_end(visit=7, detector=3, partition=1, n_partitions=4,
                                              n_alerts=12, instrument="SimCam")
    decoded = decode_message(marker)
    assert decoded.kind == "visit_detector_end"
    assert decoded.schema_id == alerts.VISIT_DETECTOR_END_SCHEMA_ID
    assert decoded.record["n_alerts"] == 12 and decoded.record["n_alerts_total"] == 12
    with pytest.raises(AlertFormatError, match="not an alert"):
        decode_alert(marker)
    nv = alerts.next_visit_record(instrument="SimCam", group_id="2026-11-25T01:00:00.000",
                                  ra=150.1, dec=-30.2, camera_angle=12.0, filters="r",
                                  start_time=61000.1, nimages=2, survey="wfd",
                                  detectors=[0, 1, 2])
    decoded = decode_message(alerts.encode_next_visit(nv))
    assert decoded.kind == "next_visit" and decoded.record == nv


def test_missing_required_field_names_the_field(records: list[dict]) -> None:
    bad = dict(records[0], diaSource=dict(records[0]["diaSource"]))
    del bad["diaSource"]["psfNdata"]
    with pytest.raises(SchemaViolationError, match=r"missing required field 'diaSource\.psfNdata'"
                       ) as info:
        encode_alert(bad)
    assert info.value.field == "diaSource.psfNdata"


def test_wrong_type_names_the_field(records: list[dict]) -> None:
    bad = dict(records[0], diaSource=dict(records[0]["diaSource"], ra="twelve"))
    with pytest.raises(SchemaViolationError,
                       match=r"field 'diaSource\.ra' must be double, got str"):
        encode_alert(bad)
    bad = dict(records[0], prvDiaSources=[*records[0]["prvDiaSources"][:2], {"visit": 1}])
    with pytest.raises(SchemaViolationError, match=r"prvDiaSources\[2\]\.diaSourceId"):
        encode_alerts([records[1], bad])


def test_unknown_schema_id(records: list[dict]) -> None:
    data = bytearray(encode_alert(records[0]))
    data[1:5] = struct.pack(">I", 1101)  # Rubin's lsst.v11_1: not one of ours
    with pytest.raises(UnknownSchemaError, match="unknown schema id 1101") as info:
        decode_message(bytes(data))
    assert info.value.schema_id == 1101


def test_truncated_message(records: list[dict]) -> None:
    data = encode_alert(records[0])
    with pytest.raises(TruncatedMessageError, match="truncated"):
        decode_message(data[: len(data) // 2])
    with pytest.raises(TruncatedMessageError, match="shorter than the 5-byte"):
        decode_message(data[:3])
    with pytest.raises(TruncatedMessageError, match="empty"):
        decode_message(b"")


def test_wrong_magic_byte(records: list[dict]) -> None:
    data = b"\x01" + encode_alert(records[0])[1:]
    with pytest.raises(BadMagicByteError, match="wrong magic byte 1"):
        decode_message(data)


def test_trailing_garbage_is_refused(records: list[dict]) -> None:
    with pytest.raises(AlertFormatError, match="bytes left"):
        decode_message(encode_alert(records[0]) + b"\x00\x00")


def test_all_errors_are_value_errors() -> None:
    for cls in (BadMagicByteError, TruncatedMessageError, UnknownSchemaError,
                SchemaViolationError):
        assert issubclass(cls, AlertFormatError) and issubclass(cls, ValueError)
