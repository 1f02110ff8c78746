"""The packed id layout: round trips, ranges, and that ids sort by visit then detector."""

from __future__ import annotations

import pytest

from alertbutler.prompt.ids import (
    KIND_FORCED,
    KIND_SOURCE,
    MAX_DETECTOR,
    MAX_INDEX,
    MAX_VISIT,
    PackedId,
    dia_forced_source_id,
    dia_source_id,
    unpack_id,
)


@pytest.mark.parametrize("visit,detector,index", [
    (0, 0, 0), (1, 2, 3), (2026112500012, 188, 4000), (MAX_VISIT, MAX_DETECTOR, MAX_INDEX)])
def test_round_trip(visit: int, detector: int, index: int) -> None:
    sid = dia_source_id(visit, detector, index)
    fid = dia_forced_source_id(visit, detector, index)
    assert 0 <= sid < 2**63 and 0 <= fid < 2**63
    assert unpack_id(sid) == PackedId(visit, detector, KIND_SOURCE, index)
    assert unpack_id(fid) == PackedId(visit, detector, KIND_FORCED, index)
    assert sid != fid


def test_ids_are_unique_and_ordered() -> None:
    ids = [dia_source_id(v, d, i) for v in (2026112500001, 2026112500002)
           for d in range(4) for i in range(50)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


@pytest.mark.parametrize("kwargs,part", [
    ({"visit": MAX_VISIT + 1, "detector": 0, "index": 0}, "visit"),
    ({"visit": 1, "detector": MAX_DETECTOR + 1, "index": 0}, "detector"),
    ({"visit": 1, "detector": 0, "index": MAX_INDEX + 1}, "index"),
    ({"visit": -1, "detector": 0, "index": 0}, "visit"),
])
def test_out_of_range_parts_are_named(kwargs: dict[str, int], part: str) -> None:
    with pytest.raises(ValueError, match=part):
        dia_source_id(**kwargs)


def test_unpack_refuses_negative() -> None:
    with pytest.raises(ValueError):
        unpack_id(-5)
