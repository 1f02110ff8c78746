"""ISR: calibrations removed, saturation / defects / cosmic rays masked, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.imaging import IsrCalibs, IsrError, Mask, run_isr
from tests.imaging.conftest import inputs


@pytest.fixture(scope="module")
def isr_case(default_sim):
    raw, calibs, _ = inputs(default_sim, default_sim.visits[0], 1)
    return default_sim, raw, calibs, run_isr(raw.data, raw.header, calibs)


def test_flat_sky_after_isr(isr_case) -> None:
    sim, raw, _calibs, exp = isr_case
    v = raw.visit
    good = exp.mask == 0
    # the flat's vignetting (8%) and dust donuts are gone: block medians agree to < 1%
    blocks = [np.median(exp.image[y:y + 256, x:x + 256][good[y:y + 256, x:x + 256]])
              for y in range(0, 2048, 512) for x in range(0, 2048, 512)]
    sky = sim.sky_electrons(v)
    assert np.std(blocks) / sky < 0.02
    assert abs(np.median(blocks) / sky - 1) < 0.05
    # the variance matches the scatter of the sky
    resid = exp.image[good] - np.median(exp.image[good])
    robust = 1.4826 * np.median(np.abs(resid))
    assert robust**2 == pytest.approx(np.median(exp.variance[good]), rel=0.1)


def test_masks_defects_saturation_and_cosmic_rays(isr_case) -> None:
    sim, raw, _calibs, exp = isr_case
    cal = sim.calibs(1)
    assert np.all(exp.mask[cal.defects] & Mask.BAD)
    assert np.all(exp.mask[raw.data >= raw.header["SATURATE"]] & Mask.SAT)
    crs = (exp.mask & Mask.CR) != 0
    assert 10 < exp.metadata["n_cosmic_ray_pixels"] == crs.sum()
    # no real (PSF-shaped) source is taken for a cosmic ray
    t = raw.truth[raw.truth["on_detector"]]
    xi = np.rint(t["x"]).astype(int)
    yi = np.rint(t["y"]).astype(int)
    assert not crs[yi, xi].any()


def test_isr_refuses_bad_input(default_sim) -> None:
    raw, calibs, _ = inputs(default_sim, default_sim.visits[0], 0)
    header = raw.header.copy()
    del header["GAIN"]
    with pytest.raises(IsrError, match="GAIN"):
        run_isr(raw.data, header, calibs)
    small = IsrCalibs(bias=calibs.bias[:10], dark=calibs.dark, flat=calibs.flat,
                      defects=calibs.defects)
    with pytest.raises(IsrError, match="bias shape"):
        run_isr(raw.data, raw.header, small)
    bad = raw.header.copy()
    bad["EXPTIME"] = "thirty"
    with pytest.raises(IsrError, match="EXPTIME"):
        run_isr(raw.data, bad, calibs)
