"""The compiled columnar decoder gives the same columns as decoding records with fastavro."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.alerts import CURRENT_ALERT_SCHEMA_ID, encode_alerts, encode_visit_detector_end
from alertbutler.subscribe.batch import BatchDecoder
from alertbutler.subscribe.columnar import ColumnarDecoder
from alertbutler.subscribe.filters import Columns, FilterSet, compile_filter
from alertbutler.subscribe.testing import sample_filters, varied_alerts

EXTRA = [
    "diaObject is null", "prvDiaSources is null", "cutoutDifference is not null",
    "ssSource is null", "diaSource.isDipole == false", "observation_reason == 'x'",
    "count(prvDiaForcedSources where psfFlux > 0 and band == 'r') > 1",
    "diaSource.diaSourceId > 0 and diaObject.diaObjectId > 0",
]


@pytest.fixture(scope="module")
def batch() -> tuple[list[dict], list[bytes]]:
    alerts = varied_alerts(400, seed=9, rubin_size=True)
    alerts[3]["observation_reason"] = "a reason longer than eight bytes"
    return alerts, encode_alerts(alerts)


def _same(a, b) -> bool:
    null_a = a.null if a.null is not None else np.zeros(len(a.data), bool)
    null_b = b.null if b.null is not None else np.zeros(len(b.data), bool)
    return np.array_equal(null_a, null_b) and np.array_equal(
        np.asarray(a.data)[~null_a], np.asarray(b.data)[~null_b])


def test_columns_equal_record_path(batch) -> None:
    alerts, messages = batch
    fs = FilterSet([compile_filter(s.text, name=s.name) for s in sample_filters(44, seed=2)]
                   + [compile_filter(t) for t in EXTRA])
    expected = Columns.from_records(alerts, fs.columns)
    cols, bad = ColumnarDecoder.for_schema_id(CURRENT_ALERT_SCHEMA_ID, fs.columns).decode(
        messages)
    assert bad is None
    kinds = {spec.key: spec.kind for spec in fs.columns}
    for key, value in expected.values.items():
        if kinds[key] == "bytes":  # presence only: the null masks are what is read
            assert np.array_equal(np.asarray(value.null if value.null is not None else []),
                                  np.asarray(cols.values[key].null
                                             if cols.values[key].null is not None else [])), key
            continue
        assert _same(value, cols.values[key]), key
    for key, seg in expected.segments.items():
        assert np.array_equal(seg, cols.segments[key]), key
    kept_a, kept_b = fs.keep(expected), fs.keep(cols)
    assert all(np.array_equal(kept_a[k], kept_b[k]) for k in kept_a)


def test_bad_messages_are_named(batch) -> None:
    alerts, messages = batch
    specs = compile_filter("count(prvDiaSources where band == 'g') > 1").columns
    decoder = ColumnarDecoder.for_schema_id(CURRENT_ALERT_SCHEMA_ID, specs)
    truncated = [*messages[:5], messages[5][:-100], *messages[6:10]]
    cols, bad = decoder.decode(truncated)
    assert bad == 5 and cols.n == 5
    padded = [*messages[:2], messages[2] + b"\x00"]
    assert decoder.decode(padded)[1] == 2
    # the batch decoder falls back to fastavro: the bad one is reported, the rest kept
    marker = encode_visit_detector_end(visit=1, detector=1, partition=0, n_partitions=1,
                                       n_alerts=1)
    result = BatchDecoder(specs).decode([*messages[:4], marker, messages[4][:50]])
    assert list(result.rows) == [0, 1, 2, 3]
    assert [i for i, _ in result.bad] == [5]
    assert result.keys == [str(a["diaSourceId"]).encode() for a in alerts[:4]]


def test_history_longer_than_guessed() -> None:
    alerts = varied_alerts(3, seed=1, n_history=20)
    for a in alerts:
        a["prvDiaSources"] = [dict(alerts[0]["diaSource"]) for _ in range(500)]
    messages = encode_alerts(alerts)
    specs = compile_filter("count(prvDiaSources) > 1").columns
    cols, bad = ColumnarDecoder.for_schema_id(CURRENT_ALERT_SCHEMA_ID, specs).decode(messages)
    assert bad is None and len(cols.segments[("prvDiaSources", "*")]) == 1500
