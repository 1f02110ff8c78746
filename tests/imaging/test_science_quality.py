"""Science quality against the ground truth, on the default night.

Processing all 48 detector-visits of the default night takes minutes on a shared 2-core
machine, so the test runs a representative subset through the same code path: every visit
(both fields, all three bands, all seeings), each on a different detector in turn.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import vstack

from alertbutler.imaging import Mask, process_exposure
from alertbutler.sim import match, score
from tests.imaging.conftest import inputs


@pytest.fixture(scope="module")
def night_results(default_sim):
    results = []
    for i, v in enumerate(default_sim.visits):
        det = i % default_sim.camera.n_detectors
        raw, calibs, templates = inputs(default_sim, v, det)
        res = process_exposure(raw.data, raw.header, calibs, templates)
        res.sources["visit"] = v.visit
        res.sources["detector"] = det
        results.append((raw, res))
    return results


@pytest.fixture(scope="module")
def night_score(night_results):
    sources = vstack([res.sources for _, res in night_results])
    truth = vstack([raw.truth for raw, _ in night_results])
    s = score(sources, truth, snr_min=10.0)
    print("science quality:", s.as_dict())
    return s


def test_completeness_of_snr10_transients_and_variables(night_score) -> None:
    assert night_score.n_truth > 200
    assert night_score.completeness >= 0.90


def test_purity(night_score) -> None:
    assert night_score.n_sources > 200
    assert night_score.purity >= 0.90


def test_astrometry(night_score) -> None:
    assert night_score.astrometric_rms_arcsec < 0.1


def test_photometry_unbiased(night_score) -> None:
    assert night_score.n_photometric > 100
    assert abs(night_score.photometric_ratio_median - 1.0) < 0.02


def test_artifacts_are_masked_not_detected(night_results) -> None:
    """No false detection sits on a cosmic ray, a bad column or a saturated bleed trail
    (a real source may: its reported position can fall on a masked pixel)."""
    for raw, res in night_results:
        s2t, _ = match(res.sources, raw.truth)
        s = res.sources[s2t < 0]
        xi = np.clip(np.rint(s["x"]).astype(int), 0, res.calexp.shape[1] - 1)
        yi = np.clip(np.rint(s["y"]).astype(int), 0, res.calexp.shape[0] - 1)
        on_artifact = (res.calexp.mask[yi, xi] & (Mask.CR | Mask.SAT | Mask.BAD)) != 0
        assert not on_artifact.any(), s[on_artifact]
        assert res.calexp.metadata["n_cosmic_ray_pixels"] > 0


def test_both_polarities_and_flags(night_results) -> None:
    sources = vstack([res.sources for _, res in night_results])
    truth = vstack([raw.truth for raw, _ in night_results])
    s2t, _ = match(sources, truth)
    real = s2t >= 0
    negative = np.asarray(sources["is_negative"])
    assert negative[real].sum() > 10, "fading variables give negative sources"
    assert np.all(np.sign(sources["psf_flux"][real])
                  == np.sign(truth["diff_flux_njy"][s2t[real]]))
    # movers trailing by several pixels are flagged as trails
    kinds = np.asarray(truth["kind"])[s2t[real]]
    trail = np.asarray(truth["trail_px"])[s2t[real]]
    long_trails = (kinds == "mover") & (trail > 4)
    if long_trails.any():
        assert np.asarray(sources["flag_trail"])[real][long_trails].mean() > 0.5


def test_errors_describe_the_scatter(night_results) -> None:
    """Measured - true difference flux, in units of the reported error, has unit scatter."""
    sources = vstack([res.sources for _, res in night_results])
    truth = vstack([raw.truth for raw, _ in night_results])
    s2t, _ = match(sources, truth)
    real = np.nonzero(s2t >= 0)[0]
    t = s2t[real]
    static = np.asarray(truth["kind"])[t] != "mover"
    pull = ((np.asarray(sources["psf_flux"])[real] - np.asarray(truth["diff_flux_njy"])[t])
            / np.asarray(sources["psf_flux_err"])[real])[static]
    robust = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert 0.7 < robust < 1.5


def test_stage_timings_are_reported(night_results) -> None:
    from alertbutler.imaging import STAGES

    for _, res in night_results:
        assert set(res.timings) == set(STAGES)
        assert all(t >= 0 for t in res.timings.values())
