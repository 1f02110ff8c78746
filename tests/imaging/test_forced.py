"""Forced photometry at known positions recovers the injected difference flux."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.imaging import process_exposure
from tests.imaging.conftest import inputs


def test_forced_photometry_of_variables(default_sim) -> None:
    v = default_sim.visits[4]
    raw, calibs, templates = inputs(default_sim, v, 3)
    t = raw.truth[(raw.truth["kind"] == "variable") & raw.truth["on_detector"]]
    assert len(t) >= 3
    ids = np.asarray(t["object_id"])
    off = (np.array([v.ra + 1.0]), np.array([v.dec]))  # a DiaObject not on this detector
    res = process_exposure(raw.data, raw.header, calibs, templates,
                           known=(np.r_[ids, -1], np.r_[t["ra"], off[0]],
                                  np.r_[t["dec"], off[1]]))
    forced = res.forced
    assert forced.meta["flux_unit"] == "nJy"
    assert bool(forced["flag_off_image"][-1]) and np.isnan(forced["psf_flux"][-1])
    f = forced[:-1]
    pull = (f["psf_flux"] - t["diff_flux_njy"]) / f["psf_flux_err"]
    assert np.all(np.abs(pull) < 5)
    bright = np.abs(t["diff_snr"]) > 30
    if bright.any():
        assert np.median(f["psf_flux"][bright] / t["diff_flux_njy"][bright]) == pytest.approx(
            1.0, abs=0.03)
