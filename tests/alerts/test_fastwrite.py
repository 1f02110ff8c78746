"""The generated writer writes exactly what fastavro writes, or hands over to fastavro."""

from __future__ import annotations

import copy
import datetime
import io
import math

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertbutler.alerts import Codec, SchemaViolationError, known_schemas, load_schema
from alertbutler.alerts._fastwrite import compile_writer
from alertbutler.alerts.codec import _complex_unions, _wrap
from alertbutler.alerts.fake import fake_alerts

SCHEMA = load_schema("alert")
SOURCE_FIELDS = {f["name"]: f["type"] for f in SCHEMA["fields"][3]["type"]["fields"]}
BASE = fake_alerts(2, seed=5, n_history=2, cutout_size=None)


def _reference(record: dict, schema: dict = SCHEMA) -> bytes | None:
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, schema, _wrap(record, _complex_unions(schema)))
    except Exception:
        return None
    return buf.getvalue()


def _value(kind: str) -> st.SearchStrategy:
    numbers = {
        "long": st.integers(-(2**63), 2**63 - 1),
        "int": st.integers(-(2**31), 2**31 - 1),
        "float": st.floats(width=32),
        "double": st.floats(),
        "boolean": st.booleans(),
        "string": st.text(max_size=12),
    }[kind]
    wrong = st.sampled_from(["x", 1.5, 2**70, True, None, b"b", np.float32(1.0), np.int64(3)])
    return st.one_of(numbers, wrong)


@st.composite
def mutated_alert(draw: st.DrawFn) -> dict:
    record = copy.deepcopy(BASE[draw(st.integers(0, 1))])
    source = record["diaSource"]
    for name in draw(st.lists(st.sampled_from(sorted(SOURCE_FIELDS)), max_size=8)):
        ftype = SOURCE_FIELDS[name]
        kind = ftype[1] if isinstance(ftype, list) else ftype
        if draw(st.booleans()):
            source.pop(name, None)
        else:
            source[name] = draw(_value(kind))
    if draw(st.booleans()):
        record["prvDiaSources"] = draw(st.sampled_from([None, [], record["prvDiaSources"]]))
    if draw(st.booleans()):
        record["cutoutScience"] = draw(st.sampled_from([None, b"", b"\x00" * 300, "text"]))
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_alert())
def test_same_bytes_as_fastavro_or_the_same_refusal(record: dict) -> None:
    expected = _reference(record)
    codec = Codec()
    if expected is None:
        with pytest.raises(SchemaViolationError):
            codec.encode(record)
    else:
        assert codec.encode(record)[5:] == expected


def test_every_schema_compiles_and_matches_on_fake_data() -> None:
    assert all(compile_writer(info.parsed) is not None for info in known_schemas().values())
    records = fake_alerts(30, seed=8, n_history=3, cutout_size=30, cutout_pool=2)
    codec = Codec()
    for record, message in zip(records, codec.encode_many(records), strict=True):
        assert message[5:] == _reference(record)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.0, 1e-45, 3.4e38])
def test_special_floats(value: float) -> None:
    record = copy.deepcopy(BASE[0])
    record["diaSource"]["psfFlux"] = value
    record["diaSource"]["ra"] = value
    assert Codec().encode(record)[5:] == _reference(record)


def test_markers_with_datetimes_fall_back_to_fastavro() -> None:
    from alertbutler.alerts import visit_detector_end_record

    record = visit_detector_end_record(
        visit=1, detector=2, partition=0, n_partitions=1, n_alerts=0,
        sent_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    schema = load_schema("visit_detector_end")
    assert Codec().encode(record, "visit_detector_end")[5:] == _reference(record, schema)
