"""Deep templates: a tract per field cut into overlapping patches, rendered in nJy.

A tract is one TAN projection centred on the field, with the camera's pixel scale and north
up; patches are square pieces of it with an overlap margin, the way Rubin's skymap divides
the sky, so a detector's footprint is covered by a few patches whatever the visit's rotation
and dither. Templates hold the static sky (variables at their mean flux, no transients, no
movers), a sharper PSF than any visit, low noise, and no background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS


@dataclass(frozen=True, kw_only=True)
class TractGeometry:
    field: int
    ra: float
    dec: float
    pixel_scale: float  # arcsec / pixel
    patch_size: int  # inner size of a patch, pixels
    margin: int  # overlap added on each side of a patch
    n_side: int  # patches per side

    @property
    def _half(self) -> float:
        return 0.5 * self.n_side * self.patch_size

    def tract_wcs(self) -> WCS:
        scale = self.pixel_scale / 3600.0
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [self.ra, self.dec]
        wcs.wcs.crpix = [self._half + 1.0, self._half + 1.0]
        wcs.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]])
        wcs.wcs.radesys = "ICRS"
        wcs.wcs.cunit = ["deg", "deg"]
        return wcs

    @property
    def patch_shape(self) -> tuple[int, int]:
        side = self.patch_size + 2 * self.margin
        return side, side

    def patch_origin(self, patch: int) -> tuple[int, int]:
        """Tract pixel of the patch image's pixel (0, 0)."""
        if not 0 <= patch < self.n_side**2:
            raise ValueError(f"patch {patch} outside tract of {self.n_side**2} patches")
        i, j = patch % self.n_side, patch // self.n_side
        return i * self.patch_size - self.margin, j * self.patch_size - self.margin

    def patch_wcs(self, patch: int) -> WCS:
        wcs = self.tract_wcs()
        x0, y0 = self.patch_origin(patch)
        wcs.wcs.crpix = [self._half + 1.0 - x0, self._half + 1.0 - y0]
        return wcs

    def patches_covering(self, ra: np.ndarray, dec: np.ndarray) -> list[int]:
        """Patches whose inner area overlaps the polygon's bounding box (ra/dec corners)."""
        x, y = self.tract_wcs().all_world2pix(ra, dec, 0)
        i0 = max(math.floor(x.min() / self.patch_size), 0)
        i1 = min(math.floor(x.max() / self.patch_size), self.n_side - 1)
        j0 = max(math.floor(y.min() / self.patch_size), 0)
        j1 = min(math.floor(y.max() / self.patch_size), self.n_side - 1)
        return [j * self.n_side + i for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]


def make_tract(field: int, ra: float, dec: float, pixel_scale: float, radius_px: float,
               patch_size: int, margin: int) -> TractGeometry:
    n_side = max(1, math.ceil(2 * radius_px / patch_size))
    return TractGeometry(field=field, ra=ra, dec=dec, pixel_scale=pixel_scale,
                         patch_size=patch_size, margin=margin, n_side=n_side)


@dataclass(frozen=True)
class TemplatePatch:
    """One template patch: image and variance in nJy (per pixel), its WCS and identity."""

    field: int
    band: str
    patch: int
    image: np.ndarray
    variance: np.ndarray
    wcs: WCS
    psf_fwhm_arcsec: float
