"""Cutouts: FITS planes, WCS, sizes."""

from __future__ import annotations

import numpy as np
import pytest

from alertbutler.alerts import CutoutError
from alertbutler.alerts.cutouts import (
    MASK_BITS,
    cut,
    local_wcs,
    make_cutout,
    read_cutout,
    summarize_cutout,
)


@pytest.mark.parametrize("size", [30, 64, 100])
def test_planes_and_wcs_round_trip(size: int) -> None:
    rng = np.random.default_rng(size)
    flux = rng.normal(0, 10, (size, size)).astype(np.float32)
    var = np.full((size, size), 100.0, np.float32)
    mask = np.zeros((size, size), np.uint8)
    mask[3, 4] = 1 << MASK_BITS["CR"]
    data = make_cutout(flux, var, mask, wcs=local_wcs(150.0, -30.0, size))
    assert data[:6] == b"SIMPLE" and len(data) % 2880 == 0
    got = read_cutout(data)
    assert (got.flux == flux).all() and (got.variance == var).all()
    assert (got.mask == mask).all()
    ra, dec = got.wcs.pixel_to_world_values((size - 1) / 2, (size - 1) / 2)
    assert ra == pytest.approx(150.0) and dec == pytest.approx(-30.0)
    summary = summarize_cutout(data)
    assert summary["shape"] == [size, size] and summary["masked_pixels"] == 1


@pytest.mark.parametrize("size", [29, 101, 0])
def test_sizes_outside_30_to_100_are_refused(size: int) -> None:
    with pytest.raises(CutoutError, match="from 30 to 100"):
        make_cutout(np.zeros((size, size)), np.zeros((size, size)), wcs=local_wcs(0, 0, 30))


def test_cut_from_image_edge_is_marked_no_data() -> None:
    image = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    var = np.ones_like(image)
    wcs = local_wcs(10.0, 5.0, 300)
    data = cut(image, var, None, x=2.0, y=100.0, size=40, wcs=wcs)
    got = read_cutout(data)
    assert np.isnan(got.flux[:, 0]).all()  # left of the image
    assert got.mask[0, 0] == 1 << MASK_BITS["NO_DATA"]
    assert got.flux[20, 20] == image[100, 2]
    # the stamp's WCS places its pixels where the image's WCS does
    assert np.allclose(got.wcs.pixel_to_world_values(20, 20), wcs.pixel_to_world_values(2, 100))


def test_not_a_fits_file() -> None:
    with pytest.raises(CutoutError, match="not an alert cutout"):
        read_cutout(b"hello")


@pytest.mark.parametrize(("size", "ra", "dec", "rot"), [
    (30, 0.0001, -89.9, 0.0), (64, 359.99999, 0.5, 33.3), (100, 150.123456789, 45.0, -120.0)])
def test_fast_layout_equals_astropy_layout(size: int, ra: float, dec: float,
                                           rot: float) -> None:
    import io

    from astropy.io import fits
    from astropy.nddata import CCDData

    from alertbutler.alerts.cutouts import _make_with_astropy

    rng = np.random.default_rng(size)
    flux = rng.normal(0, 10, (size, size)).astype(np.float32)
    var = rng.uniform(1, 2, (size, size)).astype(np.float32)
    mask = rng.integers(0, 255, (size, size)).astype(np.uint8)
    wcs = local_wcs(ra, dec, size, rotation_deg=rot)
    fast = make_cutout(flux, var, mask, wcs=wcs)
    reference = _make_with_astropy(flux, var, mask, wcs)
    assert len(fast) == len(reference)
    with fits.open(io.BytesIO(fast)) as hdus:
        hdus.verify("exception")
        assert [h.name for h in hdus] == ["PRIMARY", "MASK", "UNCERT"]
        assert hdus["MASK"].header["MSKBIT3"] == "CR"
    a, b = read_cutout(fast), read_cutout(reference)
    assert (a.flux == b.flux).all() and (a.variance == b.variance).all()
    assert (a.mask == b.mask).all()
    grid = np.array([[x, y] for x in (0, size / 2, size - 1) for y in (0, size - 1)])
    assert np.allclose(a.wcs.all_pix2world(grid, 0), b.wcs.all_pix2world(grid, 0),
                       rtol=0, atol=1e-11)
    ccd = CCDData.read(io.BytesIO(fast), format="fits")
    assert str(ccd.unit) == "nJy" and (ccd.uncertainty.array == var).all()


def test_wcs_with_distortion_goes_through_astropy() -> None:
    from astropy.wcs import Sip

    wcs = local_wcs(10.0, 10.0, 40)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a = np.zeros((3, 3))
    a[2, 0] = 1e-6
    wcs.sip = Sip(a, np.zeros((3, 3)), None, None, wcs.wcs.crpix)
    data = make_cutout(np.ones((40, 40)), np.ones((40, 40)), wcs=wcs)
    assert read_cutout(data).wcs.sip is not None
