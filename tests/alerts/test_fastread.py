"""The generated reader returns exactly what fastavro returns, or hands over to fastavro."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertbutler.alerts import AlertFormatError, Codec, TruncatedMessageError, load_schema
from alertbutler.alerts._fastread import compile_reader
from alertbutler.alerts.fake import fake_alerts

from .test_fastwrite import _reference, mutated_alert

SCHEMA = load_schema("alert")
SMALL = Codec().encode(fake_alerts(1, seed=4, n_history=1, cutout_size=None)[0])


def _fastavro_decode(message: bytes) -> dict | type[Exception]:
    try:
        buf = io.BytesIO(message[5:])
        record = fastavro.schemaless_reader(buf, SCHEMA, None)
        if buf.tell() != len(message) - 5:
            return AlertFormatError
        return record
    except Exception as exc:
        return type(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_alert())
def test_same_records_as_fastavro(record: dict) -> None:
    body = _reference(record)
    if body is None:
        return
    message = SMALL[:5] + body
    fast, end = compile_reader(SCHEMA)(message, 5)
    assert end == len(message)
    expected = _fastavro_decode(message)
    # compare through fastavro's encoding, which also equates NaNs bit for bit
    assert fast.keys() == expected.keys()
    assert _reference(fast) == _reference(expected) == body


@settings(max_examples=300, deadline=None)
@given(st.integers(5, len(SMALL) - 1), st.integers(0, 255))
def test_corrupted_messages_decode_as_fastavro_decides(position: int, value: int) -> None:
    message = bytearray(SMALL)
    message[position] = value
    expected = _fastavro_decode(bytes(message))
    if isinstance(expected, dict):
        # through fastavro's encoding: a corrupted float can be a NaN, which != itself
        got = Codec().decode(bytes(message)).record
        assert got.keys() == expected.keys() and _reference(got) == _reference(expected)
    else:
        with pytest.raises(AlertFormatError):
            Codec().decode(bytes(message))


def test_every_truncation_is_reported() -> None:
    codec = Codec()
    for cut in range(5, len(SMALL)):
        with pytest.raises(TruncatedMessageError):
            codec.decode(SMALL[:cut])


def test_memoryview_and_bytearray_inputs() -> None:
    codec = Codec()
    expected = codec.decode(SMALL).record
    assert codec.decode(memoryview(SMALL)).record == expected
    assert codec.decode(bytearray(SMALL)).record == expected
