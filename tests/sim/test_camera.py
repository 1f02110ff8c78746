"""The camera: detector layout on the focal plane and each detector's WCS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from alertbutler.sim import Camera, SimError


def test_detectors_tile_the_focal_plane_without_overlap() -> None:
    cam = Camera()
    centres = []
    for det in cam.detectors:
        wcs = cam.detector_wcs(det, 150.0, -30.0, 0.0)
        ra, dec = wcs.all_pix2world([cam.nx / 2], [cam.ny / 2], 0)
        centres.append(SkyCoord(ra[0], dec[0], unit="deg"))
    seps = [a.separation(b).arcsec for i, a in enumerate(centres) for b in centres[i + 1:]]
    # neighbours are one detector plus the gap apart, never on top of each other
    assert min(seps) == pytest.approx((cam.nx + cam.gap) * cam.pixel_scale, rel=1e-3)


def test_pixel_scale_and_rotation() -> None:
    cam = Camera()
    wcs = cam.detector_wcs(0, 10.0, 20.0, 30.0)
    scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
    assert scale == pytest.approx(0.2, rel=1e-9)
    a = SkyCoord(*wcs.all_pix2world([0, 0], [0, 100], 0), unit="deg")
    # +y at rotation 30 deg points 30 deg east of north
    assert a[0].position_angle(a[1]).deg == pytest.approx(30.0, abs=0.05)


def test_boresight_is_the_tangent_point() -> None:
    cam = Camera()
    for det in cam.detectors:
        wcs = cam.detector_wcs(det, 150.0, -30.0, 12.0)
        assert list(wcs.wcs.crval) == [150.0, -30.0]


def test_lsst_like_option_and_errors() -> None:
    cam = Camera.lsst_like(n_detectors=2)
    assert (cam.nx, cam.ny) == (4096, 4096)
    with pytest.raises(SimError, match="unknown detector 5"):
        cam.detector_wcs(5, 0.0, 0.0, 0.0)
    with pytest.raises(SimError, match="at least one detector"):
        Camera(n_detectors=0)
