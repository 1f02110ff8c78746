"""Sky regions and the HEALPix spatial index of the L1 database.

Every row with a position carries ``pixelId``: its HEALPix *nested* pixel at order
:data:`PIXEL_ORDER` (~3.2 arcsec pixels). In the nested scheme a pixel ``p`` of a coarser
order ``k`` holds exactly the fine pixels ``[p << 2(K-k), (p+1) << 2(K-k))``, so a region is
searched as a few integer ranges on one B-tree index: cover the region with coarse pixels
(every pixel that overlaps it, even partly), turn them into fine-pixel ranges, then keep only
the rows whose exact position lies inside. The cover may include too much, never too little;
exact filtering works on unit vectors, so nothing special happens at RA 0/360 or the poles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy_healpix.core import healpix_cone_search, lonlat_to_healpix

#: HEALPix order of the ``pixelId`` stored on each row (nside 65536, ~3.2 arcsec pixels).
PIXEL_ORDER = 16

#: Coarse orders tried for a region's cover, from fine to coarse.
_MAX_COVER_ORDER = 14
_MIN_COVER_ORDER = 2


def pixel_ids(ra: np.ndarray | Sequence[float], dec: np.ndarray | Sequence[float]) -> np.ndarray:
    """``pixelId`` (nested, order :data:`PIXEL_ORDER`) of positions in degrees, as int64."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(lonlat_to_healpix(ra * u.deg, dec * u.deg, 1 << PIXEL_ORDER,
                                        order="nested"), dtype=np.int64)


def unit_vectors(ra: np.ndarray | Sequence[float], dec: np.ndarray | Sequence[float]
                 ) -> np.ndarray:
    """Unit vectors (N x 3) of positions in degrees."""
    ra_r = np.radians(np.asarray(ra, dtype=np.float64))
    dec_r = np.radians(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec_r)
    return np.stack([cos_dec * np.cos(ra_r), cos_dec * np.sin(ra_r), np.sin(dec_r)], axis=-1)


def _to_radec(vector: np.ndarray) -> tuple[float, float]:
    x, y, z = vector / np.linalg.norm(vector)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z))))


def _cover_order(radius_deg: float) -> int:
    """The finest order whose pixels are still no smaller than about a third of the radius,
    which keeps a cover to some tens of pixels whatever the region's size."""
    for order in range(_MAX_COVER_ORDER, _MIN_COVER_ORDER - 1, -1):
        # mean pixel size of this order, in degrees
        size = math.degrees(math.sqrt(4 * math.pi / (12 * 4**order)))
        if size >= radius_deg / 3:
            return order
    return _MIN_COVER_ORDER


def _ranges(pixels: np.ndarray, order: int) -> list[tuple[int, int]]:
    """Coarse nested pixels -> merged inclusive ranges of fine ``pixelId``."""
    shift = 2 * (PIXEL_ORDER - order)
    ranges: list[tuple[int, int]] = []
    for p in np.unique(np.asarray(pixels, dtype=np.int64)).tolist():
        lo, hi = p << shift, ((p + 1) << shift) - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def _cover(cone: Cone) -> list[tuple[int, int]]:
    """Every coarse pixel that overlaps the cone, even partly, as fine-pixel ranges."""
    order = _cover_order(cone.radius)
    pixels = healpix_cone_search(cone.ra * u.deg, cone.dec * u.deg, cone.radius * u.deg,
                                 1 << order, order="nested")
    return _ranges(pixels, order)


@dataclass(frozen=True, kw_only=True)
class Cone:
    """Every position within ``radius`` degrees of (``ra``, ``dec``)."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.dec <= 90.0) or not math.isfinite(self.ra):
            raise ValueError(f"cone centre ({self.ra}, {self.dec}) is not on the sky")
        if not (0.0 < self.radius < 90.0):
            raise ValueError(f"cone radius must be in (0, 90) degrees, got {self.radius}")

    def contains(self, ra: np.ndarray | Sequence[float], dec: np.ndarray | Sequence[float]
                 ) -> np.ndarray:
        """Boolean mask of the positions inside (exact, on unit vectors)."""
        centre = unit_vectors([self.ra], [self.dec])[0]
        return unit_vectors(ra, dec) @ centre >= math.cos(math.radians(self.radius))

    def pixel_ranges(self) -> list[tuple[int, int]]:
        """Inclusive ``pixelId`` ranges covering the region (a superset of it)."""
        return _cover(self)


@dataclass(frozen=True, kw_only=True)
class Polygon:
    """A convex spherical polygon, such as a detector's footprint: (ra, dec) corners in order.

    Edges are great-circle arcs; the corners may go clockwise or counter-clockwise.
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        corners = tuple((float(ra), float(dec)) for ra, dec in self.vertices)
        object.__setattr__(self, "vertices", corners)
        if len(corners) < 3:
            raise ValueError(f"a polygon needs at least 3 corners, got {len(corners)}")
        for ra, dec in corners:
            if not (-90.0 <= dec <= 90.0) or not math.isfinite(ra):
                raise ValueError(f"polygon corner ({ra}, {dec}) is not on the sky")
        normals = self._normals()
        if not np.all(np.isfinite(normals)):
            raise ValueError("polygon has repeated or opposite corners")
        # Convex and oriented: every corner lies on the inner side of every edge.
        points = unit_vectors(*zip(*corners, strict=True))
        sides = points @ normals.T
        if not np.all(sides >= -1e-12):
            raise ValueError("polygon corners are not a convex polygon in order")

    def _normals(self) -> np.ndarray:
        points = unit_vectors(*zip(*self.vertices, strict=True))
        normals = np.cross(points, np.roll(points, -1, axis=0))
        centre = points.sum(axis=0)
        if np.sum(normals @ centre) < 0:  # clockwise: flip so inside is positive
            normals = -normals
        return normals / np.linalg.norm(normals, axis=1, keepdims=True)

    def contains(self, ra: np.ndarray | Sequence[float], dec: np.ndarray | Sequence[float]
                 ) -> np.ndarray:
        """Boolean mask of the positions inside or on an edge (exact, on unit vectors)."""
        vectors = unit_vectors(ra, dec)
        if vectors.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        return np.all(vectors @ self._normals().T >= -1e-15, axis=1)

    def bounding_cone(self) -> Cone:
        """A cone around the polygon: a convex polygon lies in any cap holding its corners."""
        points = unit_vectors(*zip(*self.vertices, strict=True))
        centre = points.sum(axis=0)
        centre /= np.linalg.norm(centre)
        radius = math.degrees(math.acos(float(np.clip(np.min(points @ centre), -1.0, 1.0))))
        ra, dec = _to_radec(centre)
        return Cone(ra=ra, dec=dec, radius=min(radius * (1 + 1e-9) + 1e-9, 89.999))

    def pixel_ranges(self) -> list[tuple[int, int]]:
        """Inclusive ``pixelId`` ranges covering the region (a superset of it)."""
        return _cover(self.bounding_cone())


Region = Cone | Polygon
