"""The columnar decoder reads every Avro ``long`` and ``int`` exactly as fastavro does.

Rubin's diaSourceIds are above 2^62: a zig-zag decode with a signed shift gets them wrong,
so the whole int64 range is compared, with the zig-zag edge cases always included.
"""

from __future__ import annotations

import io
import struct

import fastavro
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alertbutler.subscribe.columnar import ColumnarDecoder
from alertbutler.subscribe.filters.nodes import ColumnSpec

SCHEMA = {
    "type": "record", "name": "alert", "namespace": "test",
    "fields": [
        {"name": "diaSourceId", "type": "long"},
        {"name": "small", "type": "int"},
        {"name": "maybe", "type": ["null", "long"]},
        {"name": "history", "type": {"type": "array", "items": {
            "type": "record", "name": "entry", "fields": [{"name": "id", "type": "long"}]}}},
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)
SPECS = [ColumnSpec(("diaSourceId",), "number", True), ColumnSpec(("small",), "number", True),
         ColumnSpec(("maybe",), "number", True), ColumnSpec(("history", "*"), "array"),
         ColumnSpec(("history", "*", "id"), "number", True)]
INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
EDGES = [-(2**63), -(2**63) + 1, -(2**62) - 1, -(2**62), -(2**62) + 1, -1, 0, 1,
         2**62 - 1, 2**62, 2**62 + 1, 2**63 - 2, 2**63 - 1]


def _wire(record: dict) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", 1))
    fastavro.schemaless_writer(out, PARSED, record)
    return out.getvalue()


def _decoded(records: list[dict]) -> list[dict]:
    back = []
    for message in map(_wire, records):
        back.append(fastavro.schemaless_reader(io.BytesIO(message[5:]), PARSED, None))
    return back


def _check(records: list[dict]) -> None:
    expected = _decoded(records)
    cols, bad = ColumnarDecoder(SCHEMA, SPECS).decode([_wire(r) for r in records])
    assert bad is None
    ids = cols.values[("diaSourceId",)].data
    assert [int(x) for x in ids] == [r["diaSourceId"] for r in expected]
    assert [int(x) for x in cols.values[("small",)].data] == [r["small"] for r in expected]
    maybe = cols.values[("maybe",)]
    null = maybe.null if maybe.null is not None else np.zeros(len(records), bool)
    assert [None if null[i] else int(maybe.data[i]) for i in range(len(records))] == \
        [r["maybe"] for r in expected]
    flat = [h["id"] for r in expected for h in r["history"]]
    assert [int(x) for x in cols.values[("history", "*", "id")].data] == flat


def test_zigzag_edges() -> None:
    _check([{"diaSourceId": v, "small": 0, "maybe": v, "history": [{"id": v}]}
            for v in EDGES])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(INT64, st.sampled_from(EDGES)), INT32,
                          st.one_of(st.none(), INT64),
                          st.lists(st.one_of(INT64, st.sampled_from(EDGES)), max_size=4)),
                min_size=1, max_size=8))
@example([(2**63 - 1, 2**31 - 1, -(2**63), [2**62]), (-(2**63), -(2**31), None, [])])
def test_whole_int64_range_matches_fastavro(rows: list) -> None:
    _check([{"diaSourceId": a, "small": b, "maybe": c, "history": [{"id": x} for x in h]}
            for a, b, c, h in rows])


def test_rubin_ids_above_2_62_filter_and_key_right() -> None:
    """The reported case: ``diaSourceId > 0`` over real alert packets with ids >= 2^62."""
    from alertbutler.alerts import encode_alerts
    from alertbutler.subscribe.batch import BatchDecoder
    from alertbutler.subscribe.filters import FilterSet, compile_filter
    from alertbutler.subscribe.testing import varied_alerts

    alerts = varied_alerts(len(EDGES), seed=5)
    for alert, value in zip(alerts, EDGES, strict=True):
        alert["diaSourceId"] = alert["diaSource"]["diaSourceId"] = value
    fs = FilterSet([compile_filter("diaSourceId > 0", name="positive"),
                    compile_filter("diaSource.diaSourceId >= 4611686018427387904",
                                   name="high")])
    decoded = BatchDecoder(fs.columns).decode(encode_alerts(alerts))
    assert decoded.keys == [str(v).encode() for v in EDGES]
    kept = fs.keep(decoded.columns)
    assert kept["positive"].tolist() == [v > 0 for v in EDGES]
    assert kept["high"].tolist() == [v >= 2**62 for v in EDGES]
