"""Queries by type, collections, data ID constraints, time range and sky region."""

from __future__ import annotations

import pytest

from alertbutler.butler import Butler, Circle, DataIdError, Timespan, healpix_of
from alertbutler.butler.testing import make_exposure


@pytest.fixture
def filled(butler: Butler) -> Butler:
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    for visit in (1000, 1001, 1002):  # at RA 150, 153, 156 (testing.visit_records)
        for det in range(4):
            butler.put({"v": visit, "d": det}, "metrics", instrument="SimCam", visit=visit,
                       detector=det)
    return butler


def test_by_data_id_constraints(filled: Butler) -> None:
    assert len(filled.query_datasets("metrics")) == 12
    refs = filled.query_datasets("metrics", where={"visit": 1001})
    assert sorted(r.data_id["detector"] for r in refs) == [0, 1, 2, 3]
    refs = filled.query_datasets("metrics", where={"visit": [1000, 1002], "detector": 3})
    assert sorted(r.data_id["visit"] for r in refs) == [1000, 1002]
    assert len(filled.query_datasets("metrics", where={"band": "r"})) == 12  # implied
    assert filled.query_datasets("metrics", where={"band": "g"}) == []
    with pytest.raises(DataIdError, match="needs an integer"):
        filled.query_datasets("metrics", where={"visit": "x"})
    with pytest.raises(DataIdError, match="unknown dimension 'tract'"):
        filled.query_datasets("metrics", where={"tract": 1})


def test_by_time_range(filled: Butler) -> None:
    # visit 1001 spans 03:00:40-03:01:10
    ts = Timespan.of("2026-11-20T03:00:45", "2026-11-20T03:00:50")
    assert {r.data_id["visit"] for r in filled.query_datasets("metrics", timespan=ts)} == {1001}
    wide = Timespan.of("2026-11-20T03:00:00", "2026-11-20T03:01:00")
    assert {r.data_id["visit"] for r in filled.query_datasets("metrics", timespan=wide)} == \
        {1000, 1001}
    recs = filled.query_dimension_records("visit", timespan=ts)
    assert [r.visit for r in recs] == [1001]


def test_by_sky_region(filled: Butler) -> None:
    near_1002 = Circle(157.0, 2.0, 0.5)
    assert {r.data_id["visit"] for r in filled.query_datasets("metrics", region=near_1002)} \
        == {1002}
    between = Circle(151.6, 2.0, 0.2)  # inside both 1000 (150) and 1001 (153) footprints
    assert {r.visit for r in filled.query_dimension_records("visit", region=between)} == \
        {1000, 1001}
    assert filled.query_datasets("metrics", region=Circle(10.0, -40.0, 1.0)) == []


def test_templates_by_healpix_region(butler: Butler) -> None:
    butler.register_dataset_type("template", ["healpix", "band"], "Exposure")
    pixels = {healpix_of(ra, 2.0) for ra in (148.0, 150.0, 170.0)}
    for pix in pixels:
        butler.put(make_exposure((4, 4)), "template", healpix=pix, band="r")
    refs = butler.query_datasets("template", region=Circle(150.0, 2.0, 2.5))
    assert {r.data_id["healpix"] for r in refs} == {healpix_of(148.0, 2.0),
                                                     healpix_of(150.0, 2.0)}


def test_dimension_records_sync_rules(butler: Butler) -> None:
    from alertbutler.butler import ConflictingDefinitionError

    det = {"instrument": "SimCam", "detector": 1, "full_name": "R00_S01", "nx": 64, "ny": 64}
    assert butler.insert_dimension_records("detector", [det]) == 0  # identical: no-op
    with pytest.raises(ConflictingDefinitionError, match="nx"):
        butler.insert_dimension_records("detector", [{**det, "nx": 65}])
    assert butler.insert_dimension_records("detector", [{**det, "nx": 65}], update=True) == 1
    assert butler.get_dimension_record("detector", det).nx == 65
    with pytest.raises(DataIdError, match="unexpected"):
        butler.insert_dimension_records("detector", [{**det, "colour": "red"}])
