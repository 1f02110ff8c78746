"""The ingester's columnar path gives exactly the rows of the record-by-record path, and
hands every message it cannot read to that path (which names the bad ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from alertbutler.alerts import decode_message, default_codec, encode_alerts
from alertbutler.alerts.fake import fake_alerts
from alertbutler.ingest import batch as batch_module
from alertbutler.ingest.batch import sort_batch
from alertbutler.ingest.columns import AlertRowDecoder
from alertbutler.l1db import RowBatch, rows_from_alerts


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 0
    headers: Any = ()


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names[:3]])


def assert_same_rows(got: RowBatch, want: RowBatch) -> None:
    for name in ("objects", "sources", "forced_sources", "ss_sources"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.num_rows == b.num_rows, name
        assert _sorted(a).equals(_sorted(b)), name


def _records(n: int = 40, **kw: Any) -> list[dict[str, Any]]:
    records = fake_alerts(n, seed=5, **kw)
    # shapes the fake does not make by itself: no object, no history, a solar-system source
    records[1] = {**records[1], "diaObject": None}
    records[2] = {**records[2], "prvDiaSources": None, "prvDiaForcedSources": []}
    ss = {"diaSourceId": records[3]["diaSource"]["diaSourceId"], "ssObjectId": 77,
          "designation": None, "eclLambda": 10.0, "eclBeta": -3.0, "galLon": 100.0,
          "galLat": 20.0, "elongation": 90.0, "phaseAngle": None, "topoRange": 1.5,
          "helioRange": 2.5}
    records[3] = {**records[3], "ssSource": ss}
    return records


@pytest.mark.parametrize("shape", [{"n_history": 3, "cutout_size": None},
                                   {"n_history": 25, "cutout_size": 32}])
def test_columnar_rows_equal_the_record_path(shape: dict[str, Any]) -> None:
    data = encode_alerts(_records(**shape))
    info = default_codec().schema_of(data[0])
    got = AlertRowDecoder(info.parsed).rows(data)
    assert got is not None
    want = rows_from_alerts(decode_message(d).record for d in data)
    assert got.ss_sources.num_rows == 1 and got.objects.num_rows == len(data) - 1
    assert_same_rows(got, want)


def test_every_alert_schema_version_gives_the_same_rows() -> None:
    records = fake_alerts(10, seed=8, n_history=2, cutout_size=None)
    codec = default_codec()
    current = encode_alerts(records)
    want = rows_from_alerts(decode_message(d).record for d in current)
    for version in ("alert:1.0", "alert:1.1"):
        data = [codec.encode(r, version) for r in records]
        sb = sort_batch([Msg("alerts", 0, i, d) for i, d in enumerate(data)])
        assert sb.n_alerts == len(records) and not sb.dead
        slow = rows_from_alerts(decode_message(d).record for d in data)
        assert_same_rows(sb.rows, slow)
        assert sb.rows.sources.num_rows == want.sources.num_rows


def test_a_corrupt_and_an_impossible_alert_are_dead_lettered_and_the_rest_stored() -> None:
    records = fake_alerts(30, seed=9, n_history=2, cutout_size=None)
    impossible = {**records[7], "diaSource": {**records[7]["diaSource"], "dec": 95.0}}
    data = encode_alerts([*records[:7], impossible, *records[8:]])
    data[12] = data[12][:40]  # truncated
    messages = [Msg("alerts", i % 2, i, d) for i, d in enumerate(data)]
    sb = sort_batch(messages)
    assert sorted(d.message.offset for d in sb.dead) == [7, 12]
    assert sb.n_alerts == 28
    good = [d for i, d in enumerate(data) if i not in (7, 12)]
    assert_same_rows(sb.rows, rows_from_alerts(decode_message(d).record for d in good))
    assert sb.next_offsets == {("alerts", 0): 29, ("alerts", 1): 30}


def test_without_the_compiled_decoder_the_record_path_stores_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_alerts(fake_alerts(20, seed=4, n_history=4, cutout_size=None))
    messages = [Msg("alerts", 0, i, d) for i, d in enumerate(data)]
    fast = sort_batch(messages)
    monkeypatch.setattr(batch_module, "_DECODERS", {})
    monkeypatch.setattr(batch_module, "_decoder_for", lambda codec, header: None)
    slow = sort_batch(messages)
    assert fast.n_alerts == slow.n_alerts == 20
    assert_same_rows(fast.rows, slow.rows)
