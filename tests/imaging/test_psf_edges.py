"""PSF stars near the edge: a star whose refined centre leaves no full stamp is skipped by
every step of the PSF estimate (a regression: the aperture correction once used it)."""

from __future__ import annotations

from alertbutler.deploy.feed import NightPlan
from alertbutler.imaging import process_exposure
from tests.imaging.conftest import inputs


def test_template_psf_with_a_star_whose_stamp_leaves_the_image() -> None:
    # The chaos test's night (6 visits x 2 detectors, seed 1): the warped template of visit 6,
    # detector 1 has such a star; processing failed with a numpy broadcast error.
    sim = NightPlan.default(n_visits=6, n_detectors=2).simulator()
    raw, calibs, templates = inputs(sim, sim.visits[5], 1)
    result = process_exposure(raw.data, raw.header, calibs, templates)
    assert len(result.sources) > 0
