"""The in-memory image types the butler knows: an exposure (pixels + planes + WCS + PSF)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: a pixel box ``(x_min, y_min, x_max, y_max)``, max exclusive, in the image's own pixels
Box = tuple[int, int, int, int]


def check_bbox(bbox: Any, shape: tuple[int, ...]) -> Box:
    """Validate a ``bbox`` read parameter against an image shape ``(ny, nx)``."""
    try:
        x0, y0, x1, y1 = (int(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be (x_min, y_min, x_max, y_max), got {bbox!r}") from None
    ny, nx = shape[-2:]
    if not (0 <= x0 < x1 <= nx and 0 <= y0 < y1 <= ny):
        raise ValueError(f"bbox {bbox!r} is empty or outside the image (nx={nx}, ny={ny})")
    return x0, y0, x1, y1


@dataclass
class Exposure:
    """Science pixels with variance and mask planes, a WCS, a PSF model and header metadata.

    ``wcs`` is an :class:`astropy.wcs.WCS` (or None); ``psf`` a normalised kernel image (or
    None); ``metadata`` the non-structural FITS header cards as a plain dict.
    """

    image: np.ndarray
    variance: np.ndarray | None = None
    mask: np.ndarray | None = None
    wcs: Any = None
    psf: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def subset(self, bbox: Any) -> Exposure:
        """A cutout; the WCS is shifted so sky positions stay right."""
        x0, y0, x1, y1 = check_bbox(bbox, self.image.shape)
        sl = (slice(y0, y1), slice(x0, x1))
        return replace(
            self, image=self.image[sl],
            variance=None if self.variance is None else self.variance[sl],
            mask=None if self.mask is None else self.mask[sl],
            wcs=None if self.wcs is None else self.wcs[y0:y1, x0:x1],
            metadata={**self.metadata, "LTV1": -x0, "LTV2": -y0})

    def with_components(self, components: Mapping[str, Any]) -> Exposure:
        """A copy with some components replaced (composite assembly: a certified WCS, PSF)."""
        unknown = set(components) - {"image", "variance", "mask", "wcs", "psf", "metadata"}
        if unknown:
            raise ValueError(f"Exposure has no component(s) {sorted(unknown)}")
        return replace(self, **components)

    @classmethod
    def empty(cls, shape: tuple[int, int] = (0, 0)) -> Exposure:
        """A correctly-shaped blank exposure: zero pixels, unit variance, empty mask."""
        return cls(image=np.zeros(shape, np.float32), variance=np.ones(shape, np.float32),
                   mask=np.zeros(shape, np.int32))
