"""The in-memory types the algorithms pass along: an exposure, its mask planes, inputs.

An ``Exposure`` is image, variance and mask of one detector with its WCS, plus what the
stages learn about it (PSF, photometric calibration). Mask planes are bits of a uint16, as in
Rubin's afw Mask, so a stage can test "any of these" with one AND.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.wcs import WCS


class Mask:
    """Mask plane bits (numpy uint16 scalars, so ``mask |= Mask.SAT`` keeps the dtype)."""

    BAD = np.uint16(1)  # defects, dead or hot columns
    SAT = np.uint16(2)  # saturated, including bleed trails
    CR = np.uint16(4)  # cosmic ray
    EDGE = np.uint16(8)  # too close to the image border for a full PSF stamp
    NO_DATA = np.uint16(16)  # no template coverage
    SUSPECT = np.uint16(32)  # next to saturation: wings of a saturated star
    INTRP = np.uint16(64)  # value interpolated over a masked pixel

    @classmethod
    def planes(cls) -> dict[str, int]:
        return {k: int(v) for k, v in vars(cls).items() if k.isupper()}


#: planes that make a pixel unusable for detection and measurement
UNUSABLE = Mask.BAD | Mask.SAT | Mask.CR | Mask.NO_DATA | Mask.SUSPECT


@dataclass(kw_only=True)
class Exposure:
    """One detector's calibrated pixels. Image and variance are float32, mask is uint16."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    wcs: WCS
    band: str = ""
    #: nJy per image unit, when known (set by PSF matching for a difference image)
    photo_calib: float | None = None
    psf: Any = None  # alertbutler.imaging.psf.PsfModel once estimated
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def copy_with(self, **changes: Any) -> Exposure:
        return replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class IsrCalibs:
    """Master calibrations for one detector: bias (ADU), dark (ADU/s), flat, defects (bool)."""

    bias: np.ndarray
    dark: np.ndarray
    flat: np.ndarray
    defects: np.ndarray


@dataclass(frozen=True, kw_only=True)
class TemplateImage:
    """A template (patch) in calibrated flux (nJy) with variance and its own WCS."""

    image: np.ndarray
    variance: np.ndarray
    wcs: WCS
