"""Region covers never miss a position: checked against brute force on random skies,
including regions across RA 0/360 and around the poles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.path import Path as PlanarPath

from alertbutler.l1db import Cone, Polygon, pixel_ids
from alertbutler.l1db.spatial import unit_vectors
from alertbutler.l1db.testing import random_cap, random_sky

#: Centres that stress the index: RA wrap, both poles, a HEALPix face corner, anywhere.
SPECIAL_CENTRES = [(0.0, 0.0), (359.99, 10.0), (0.01, -30.0), (180.0, 89.99), (42.0, -89.95),
                   (45.0, 41.8103), (135.0, 0.0), (0.0, 90.0), (0.0, -90.0)]


def _in_ranges(ids: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    inside = np.zeros(len(ids), dtype=bool)
    for lo, hi in ranges:
        inside |= (ids >= lo) & (ids <= hi)
    return inside


def _separation_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Vincenty great-circle distance, independent of the unit-vector code under test."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    dra = r1 - r2
    num = np.hypot(np.cos(d1) * np.sin(dra),
                   np.cos(d2) * np.sin(d1) - np.sin(d2) * np.cos(d1) * np.cos(dra))
    den = np.sin(d2) * np.sin(d1) + np.cos(d2) * np.cos(d1) * np.cos(dra)
    return np.degrees(np.arctan2(num, den))


def _square(ra: float, dec: float, half: float, angle: float) -> Polygon:
    """A square footprint of half-width ``half`` degrees rotated by ``angle``, made in the
    tangent plane (so its edges are great circles) and projected back to the sky."""
    corners = []
    for k in range(4):
        a = math.radians(angle + 45 + 90 * k)
        xi, eta = math.tan(math.radians(half * math.sqrt(2))) * np.array([math.cos(a),
                                                                          math.sin(a)])
        corners.append(_deproject(ra, dec, xi, eta))
    return Polygon(vertices=tuple(corners))


def _deproject(ra0: float, dec0: float, xi: float, eta: float) -> tuple[float, float]:
    r0, d0 = math.radians(ra0), math.radians(dec0)
    rho = math.hypot(xi, eta)
    c = math.atan(rho)
    if rho == 0:
        return ra0, dec0
    dec = math.asin(math.cos(c) * math.sin(d0) + eta * math.sin(c) * math.cos(d0) / rho)
    ra = r0 + math.atan2(xi * math.sin(c),
                         rho * math.cos(d0) * math.cos(c) - eta * math.sin(d0) * math.sin(c))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def _gnomonic_inside(polygon: Polygon, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Brute force for polygons: great circles are straight lines in the gnomonic projection,
    so a planar point-in-polygon test (matplotlib) decides, independently of the code."""
    centre = polygon.bounding_cone()
    r0, d0 = math.radians(centre.ra), math.radians(centre.dec)
    r, d = np.radians(ra), np.radians(dec)
    cos_c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    front = cos_c > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.cos(d) * np.sin(r - r0) / cos_c
        eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - r0)) / cos_c
    cr, cd = np.radians(np.array(polygon.vertices)).T
    cc = np.sin(d0) * np.sin(cd) + np.cos(d0) * np.cos(cd) * np.cos(cr - r0)
    vx = np.cos(cd) * np.sin(cr - r0) / cc
    vy = (np.cos(d0) * np.sin(cd) - np.sin(d0) * np.cos(cd) * np.cos(cr - r0)) / cc
    path = PlanarPath(np.column_stack([vx, vy]))
    inside = np.zeros(len(ra), dtype=bool)
    inside[front] = path.contains_points(np.column_stack([xi[front], eta[front]]))
    return inside


@pytest.mark.parametrize("seed", range(4))
def test_cone_cover_and_exact_filter_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = SPECIAL_CENTRES + list(zip(*random_sky(rng, 20), strict=True))
    for ra0, dec0 in centres:
        radius = float(rng.choice([0.002, 0.05, 0.3, 1.75, 12.0]))
        cone = Cone(ra=ra0, dec=dec0, radius=radius)
        # dense points around the edge (just inside and just outside) plus a wider spread
        ra, dec = random_cap(rng, 20_000, ra0, dec0, radius * 1.5)
        sep = _separation_deg(ra, dec, ra0, dec0)
        truth = sep <= radius
        assert truth.any() and (~truth).any()
        ranges = cone.pixel_ranges()
        assert _in_ranges(pixel_ids(ra, dec), ranges)[truth].all(), (ra0, dec0, radius)
        clear = np.abs(sep - radius) > 1e-9  # float ties at the edge may go either way
        assert np.array_equal(cone.contains(ra, dec)[clear], truth[clear])


@pytest.mark.parametrize("seed", range(4))
def test_polygon_cover_and_exact_filter_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    centres = SPECIAL_CENTRES + list(zip(*random_sky(rng, 20), strict=True))
    for ra0, dec0 in centres:
        half = float(rng.choice([0.01, 0.11, 0.5, 3.0]))
        polygon = _square(ra0, dec0, half, float(rng.uniform(0, 90)))
        ra, dec = random_cap(rng, 20_000, ra0, dec0, half * 2.0)
        truth = _gnomonic_inside(polygon, ra, dec)
        assert truth.any() and (~truth).any()
        assert _in_ranges(pixel_ids(ra, dec), polygon.pixel_ranges())[truth].all()
        got = polygon.contains(ra, dec)
        # matplotlib's planar test and ours may differ for points within ~1e-12 of an edge
        normals_gap = np.min(np.abs(unit_vectors(ra, dec) @ polygon._normals().T), axis=1)
        clear = normals_gap > 1e-10
        assert np.array_equal(got[clear], truth[clear]), (ra0, dec0, half)


def test_polygon_orientation_does_not_matter() -> None:
    square = _square(0.0, 0.0, 0.5, 10.0)
    reverse = Polygon(vertices=tuple(reversed(square.vertices)))
    ra, dec = random_cap(np.random.default_rng(1), 5000, 0.0, 0.0, 1.0)
    assert np.array_equal(square.contains(ra, dec), reverse.contains(ra, dec))


@pytest.mark.parametrize("bad", [
    lambda: Cone(ra=10, dec=91, radius=1),
    lambda: Cone(ra=10, dec=0, radius=0),
    lambda: Polygon(vertices=((0, 0), (1, 0))),
    lambda: Polygon(vertices=((0, 0), (1, 1), (1, 0), (0, 1))),  # self-crossing
])
def test_impossible_regions_are_refused(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        bad()
