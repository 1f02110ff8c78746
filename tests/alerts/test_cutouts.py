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
