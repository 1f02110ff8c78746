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

from alertbutler.imaging.geometry import TractGeometry

__all__ = ["TemplatePatch", "TractGeometry", "make_tract"]


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
