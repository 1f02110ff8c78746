"""CALIBRATION collections: certify, decertify, overlap refusal, lookup by time; composite
assembly of a raw with the WCS and PSF certified for its exposure's time."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.butler import (
    Butler,
    CalibrationOverlapError,
    CollectionType,
    CollectionTypeError,
    DatasetNotFoundError,
    Exposure,
    Timespan,
)
from alertbutler.butler.testing import make_wcs

DET = {"instrument": "SimCam", "detector": 1}
DAY1 = Timespan.of("2026-11-19T00:00:00", "2026-11-20T00:00:00")
DAY2 = Timespan.of("2026-11-20T00:00:00", "2026-11-21T00:00:00")


@pytest.fixture
def bias(butler: Butler) -> Butler:
    butler.register_dataset_type("bias", ["detector"], "Image", is_calibration=True)
    return butler


def test_certify_and_find_by_time(bias: Butler) -> None:
    r1 = bias.put(np.full((4, 4), 1, np.float32), "bias", DET, run="calib/1")
    r2 = bias.put(np.full((4, 4), 2, np.float32), "bias", DET, run="calib/2")
    bias.certify("calib", [r1], DAY1)
    bias.certify("calib", [r2], DAY2)
    at = "2026-11-20T03:00:00"
    assert bias.find_dataset("bias", DET, collections="calib", timespan=at) == r2
    assert bias.get("bias", DET, collections="calib", timespan="2026-11-19T12:00:00")[0, 0] == 1
    assert bias.find_dataset("bias", DET, collections="calib",
                             timespan="2026-11-22T00:00:00") is None
    # boundaries are half-open: the end of DAY1 is in DAY2
    assert bias.find_dataset("bias", DET, collections="calib",
                             timespan=DAY1.end) == r2
    certs = bias.certifications("calib")
    assert [(c.ref.id, c.timespan) for c in certs] == [(r1.id, DAY1), (r2.id, DAY2)]


def test_overlapping_certification_is_refused(bias: Butler) -> None:
    r1 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/1")
    r2 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/2")
    bias.certify("calib", [r1], DAY1)
    half = Timespan.of("2026-11-19T12:00:00", "2026-11-20T12:00:00")
    with pytest.raises(CalibrationOverlapError, match="bias .*overlaps the existing"):
        bias.certify("calib", [r2], half)
    with pytest.raises(CalibrationOverlapError):
        bias.certify("calib", [r2], Timespan(None, None))
    # another detector does not clash
    r3 = bias.put(np.zeros((2, 2), np.float32), "bias", {**DET, "detector": 2}, run="calib/2")
    bias.certify("calib", [r3], half)


def test_decertify_splits_ranges(bias: Butler) -> None:
    r1 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/1")
    whole = Timespan.of("2026-11-19T00:00:00", "2026-11-21T00:00:00")
    bias.certify("calib", [r1], whole)
    hole = Timespan.of("2026-11-19T12:00:00", "2026-11-20T12:00:00")
    assert bias.decertify("calib", "bias", hole) == 1
    spans = [c.timespan for c in bias.certifications("calib")]
    assert spans == [Timespan(whole.begin, hole.begin), Timespan(hole.end, whole.end)]
    assert bias.find_dataset("bias", DET, collections="calib",
                             timespan="2026-11-20T00:00:00") is None


def test_certify_needs_calibration_collection_and_type(bias: Butler) -> None:
    r1 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/1")
    with pytest.raises(CollectionTypeError, match="exists with type RUN, not CALIBRATION"):
        bias.certify("calib/1", [r1], DAY1)
    bias.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    m = bias.put({}, "metrics", {**DET, "visit": 1000})
    with pytest.raises(CollectionTypeError, match="not a calibration"):
        bias.certify("calib", [m], DAY1)


def test_raw_assembled_with_latest_certified_wcs_and_psf(butler: Butler) -> None:
    butler.register_dataset_type("raw", ["exposure", "detector"], "RawExposure")
    butler.register_dataset_type("fitted_wcs", ["detector"], "Wcs", is_calibration=True)
    butler.register_dataset_type("psf_model", ["detector"], "Psf", is_calibration=True)
    did = {"instrument": "SimCam", "exposure": 1001, "detector": 1}
    butler.put(Exposure(image=np.ones((8, 8), np.float32)), "raw", did, run="raw")
    old, new = make_wcs(ra=10.0), make_wcs(ra=150.0)
    w_old = butler.put(old, "fitted_wcs", DET, run="calib/a")
    w_new = butler.put(new, "fitted_wcs", DET, run="calib/b")
    psf = np.outer(np.hanning(5), np.hanning(5)).astype(np.float32)
    p = butler.put(psf / psf.sum(), "psf_model", DET, run="calib/b")
    # exposure 1001 is at 2026-11-20T03:00:40..03:01:10 (testing.visit_records)
    butler.certify("calib", [w_old], Timespan.of("2026-11-01", "2026-11-20T03:00:00"))
    butler.certify("calib", [w_new, p], Timespan.of("2026-11-20T03:00:00", None))
    exp = butler.get("raw", did, collections="raw", calib_collections="calib",
                     assemble={"wcs": "fitted_wcs", "psf": "psf_model"})
    assert exp.image.shape == (8, 8)
    assert exp.wcs.wcs.crval[0] == pytest.approx(150.0)
    np.testing.assert_allclose(exp.psf.sum(), 1.0, rtol=1e-6)
    # a time with no certified PSF is a clear error
    butler.decertify("calib", "psf_model", Timespan.of("2026-11-20T03:00:00", None))
    with pytest.raises(DatasetNotFoundError, match="no psf_model .* to assemble raw.psf"):
        butler.get("raw", did, collections="raw", calib_collections="calib",
                   assemble={"psf": "psf_model"})


def test_query_returns_every_certified_dataset_of_a_data_id(bias: Butler) -> None:
    r1 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/1")
    r2 = bias.put(np.zeros((2, 2), np.float32), "bias", DET, run="calib/2")
    bias.certify("calib", [r1], DAY1)
    bias.certify("calib", [r2], DAY2)
    assert {r.id for r in bias.query_datasets("bias", "calib")} == {r1.id, r2.id}
    at_day2 = bias.query_datasets("bias", "calib", timespan=Timespan.at(DAY2.begin))
    assert [r.id for r in at_day2] == [r2.id]


def test_concurrent_overlapping_certifications_let_exactly_one_in(bias: Butler) -> None:
    """Two connections certify overlapping ranges at once: one wins, one gets the error."""
    import threading

    refs = [bias.put(np.zeros((2, 2), np.float32), "bias", DET, run=f"calib/{i}")
            for i in range(2)]
    bias.register_collection("calib", CollectionType.CALIBRATION)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def certify(i: int) -> None:
        barrier.wait()
        try:
            bias.certify("calib", [refs[i]], Timespan.of(f"2026-11-1{i}", None))
            outcomes.append("ok")
        except CalibrationOverlapError:
            outcomes.append("overlap")

    threads = [threading.Thread(target=certify, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok", "overlap"]
    assert len(bias.certifications("calib")) == 1
