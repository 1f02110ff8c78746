"""Template warping: the affine two-pass resampler against the general spline path."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.imaging import TemplateImage, warp_templates
from alertbutler.imaging.warp import AffineMapping, _warp_general
from alertbutler.sim.render import point_sources, psf_mog, render


def _star_field(shape, wcs, rng, n=200):
    x = rng.uniform(20, shape[1] - 20, n)
    y = rng.uniform(20, shape[0] - 20, n)
    flux = rng.uniform(1e3, 1e5, n)
    img = render(shape, x, y, flux, *point_sources(n, psf_mog(3.0)), noise=1.0)
    ra, dec = wcs.all_pix2world(x, y, 0)
    return img.astype(np.float32), ra, dec, flux


def test_affine_warp_matches_general_path(default_sim) -> None:
    cam = default_sim.camera
    v = default_sim.visits[3]
    science_wcs = cam.detector_wcs(0, v.ra, v.dec, v.rotation_deg)
    tract = default_sim.tract(v.field)
    patch = default_sim.patches_for(v, 0)[4]
    twcs = tract.patch_wcs(patch)
    rng = np.random.default_rng(0)
    img, ra, dec, flux = _star_field(tract.patch_shape, twcs, rng)
    sx, sy = science_wcs.all_world2pix(ra, dec, 0)
    truth = render((cam.ny, cam.nx), sx, sy, flux, *point_sources(len(sx), psf_mog(3.0)),
                   noise=1.0)
    tmpl = TemplateImage(image=img, variance=np.ones_like(img), wcs=twcs)
    shape = (cam.ny, cam.nx)
    mapping = AffineMapping(science_wcs, twcs, shape)
    assert mapping.usable and mapping.residual < 1e-3
    fast, _, cov_fast = warp_templates([tmpl], science_wcs, shape, border=0)
    slow, _, cov_slow = _warp_general(img, tmpl.variance, np.ones(img.shape, bool), twcs,
                                      science_wcs, shape)
    both = cov_fast & cov_slow
    assert both.sum() > 500_000
    # against the same stars rendered directly on the science grid (FWHM 3 pixels, barely
    # sampled): Keys' cubic convolution is as good as the cubic spline
    err_fast = np.abs(fast[both] - truth[both]).max()
    err_slow = np.abs(slow[both] - truth[both]).max()
    print("max error / peak: fast", err_fast / img.max(), "spline", err_slow / img.max())
    assert err_fast < 0.05 * img.max()
    assert err_fast < 1.5 * err_slow
    # flux is conserved
    assert fast[both].sum() == pytest.approx(truth[both].sum(), rel=2e-3)


def test_patches_mosaic_without_seams(default_sim) -> None:
    v = default_sim.visits[0]
    patches = [default_sim.template(v.field, v.band, p) for p in default_sim.patches_for(v, 2)]
    templates = [TemplateImage(image=p.image, variance=p.variance, wcs=p.wcs) for p in patches]
    wcs = default_sim.camera.detector_wcs(2, v.ra, v.dec, v.rotation_deg)
    image, variance, covered = warp_templates(templates, wcs, (2048, 2048))
    assert covered.all()
    assert np.all(variance > 0)
    # the noise is the same everywhere, seams included
    rows = image[:, 1000:1010]
    assert np.isfinite(rows).all()


def test_no_overlap_is_an_error(default_sim) -> None:
    from alertbutler.imaging import WarpError

    v = default_sim.visits[0]
    p = default_sim.template(v.field, v.band, 0)
    wcs = default_sim.camera.detector_wcs(0, v.ra + 5.0, v.dec, 0.0)
    with pytest.raises(WarpError):
        warp_templates([TemplateImage(image=p.image, variance=p.variance, wcs=p.wcs)], wcs,
                       (2048, 2048))
