"""Sky regions (circles) and their HEALPix pixel-range index.

A visit's footprint is stored as a centre and a radius, plus the nested HEALPix pixels it
touches as integer ranges: SQL narrows a region query with range overlaps (works the same on
SQLite and PostgreSQL, no spatial extension), and Python refines with exact great-circle
distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: the sky tiling used both for templates (the ``healpix`` dimension) and the region index
HEALPIX_NSIDE = 64
HEALPIX_ORDER = "nested"


@lru_cache(maxsize=4)
def _healpix(nside: int):  # astropy_healpix imported lazily: it is slow to import
    from astropy_healpix import HEALPix

    return HEALPix(nside=nside, order=HEALPIX_ORDER)


def angular_separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance (haversine, stable at small angles), all in degrees."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    s = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(s))))


@dataclass(frozen=True, slots=True)
class Circle:
    """A cone on the sky: centre (ICRS degrees) and radius (degrees)."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.dec <= 90.0) or not (0.0 <= self.radius <= 180.0):
            raise ValueError(f"invalid circle: {self}")

    def overlaps(self, other: Circle) -> bool:
        sep = angular_separation_deg(self.ra, self.dec, other.ra, other.dec)
        return sep <= self.radius + other.radius

    def contains(self, ra: float, dec: float) -> bool:
        return angular_separation_deg(self.ra, self.dec, ra, dec) <= self.radius

    def healpix_pixels(self, nside: int = HEALPIX_NSIDE) -> np.ndarray:
        """Nested pixels whose area may touch the circle (padded by one pixel's size)."""
        import astropy.units as u

        hp = _healpix(nside)
        pad = hp.pixel_resolution.to_value(u.deg)
        pixels = hp.cone_search_lonlat(self.ra * u.deg, self.dec * u.deg,
                                       (self.radius + pad) * u.deg)
        return np.unique(pixels.astype(np.int64))

    def pixel_ranges(self, nside: int = HEALPIX_NSIDE) -> list[tuple[int, int]]:
        """Half-open ``[begin, end)`` runs of consecutive nested pixels."""
        return ranges_of(self.healpix_pixels(nside))

    def to_json(self) -> list[float]:
        return [self.ra, self.dec, self.radius]


def ranges_of(pixels: np.ndarray) -> list[tuple[int, int]]:
    if len(pixels) == 0:
        return []
    pixels = np.unique(pixels)
    breaks = np.nonzero(np.diff(pixels) != 1)[0]
    starts = np.concatenate(([pixels[0]], pixels[breaks + 1]))
    ends = np.concatenate((pixels[breaks], [pixels[-1]])) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def healpix_of(ra: float, dec: float, nside: int = HEALPIX_NSIDE) -> int:
    """The nested pixel containing a position: the ``healpix`` data ID of a template."""
    import astropy.units as u

    return int(_healpix(nside).lonlat_to_healpix(ra * u.deg, dec * u.deg))


def healpix_center(pixel: int, nside: int = HEALPIX_NSIDE) -> tuple[float, float]:
    import astropy.units as u

    lon, lat = _healpix(nside).healpix_to_lonlat(pixel)
    return float(lon.to_value(u.deg)), float(lat.to_value(u.deg))


def healpix_circle(pixel: int, nside: int = HEALPIX_NSIDE) -> Circle:
    """A circle enclosing a pixel (centre plus the pixel's half-diagonal, generously)."""
    import astropy.units as u

    ra, dec = healpix_center(pixel, nside)
    return Circle(ra, dec, _healpix(nside).pixel_resolution.to_value(u.deg) * 1.0)
