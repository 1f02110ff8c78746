"""A simulated camera: detectors tiled on a focal plane, each with a TAN WCS.

Every detector shares one tangent point (the boresight), so a visit's detectors form one
gnomonic projection, as a real focal plane does to first order. Detector electronics (gain,
read noise, bias level, full well) are fixed per detector number so that calibrations, raws
and headers agree without any random state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from alertbutler.sim.errors import SimError


@dataclass(frozen=True, kw_only=True)
class Camera:
    """Geometry and electronics of the simulated camera."""

    name: str = "SIMCAM"
    n_detectors: int = 4
    nx: int = 2048
    ny: int = 2048
    #: arcsec per pixel
    pixel_scale: float = 0.2
    #: pixels of dead space between neighbouring detectors
    gap: int = 100
    read_noise: float = 6.0
    full_well: float = 100_000.0
    adc_max: int = 65_535

    def __post_init__(self) -> None:
        if self.n_detectors < 1:
            raise SimError(f"camera needs at least one detector, got {self.n_detectors}")
        if min(self.nx, self.ny) < 256:
            raise SimError(f"detectors must be at least 256 x 256 pixels, "
                           f"got {self.nx} x {self.ny}")

    @classmethod
    def lsst_like(cls, n_detectors: int = 9) -> Camera:
        """4k x 4k detectors at 0.2 arcsec/pixel, like Rubin's science sensors."""
        return cls(name="SIMCAM4K", n_detectors=n_detectors, nx=4096, ny=4096, gap=150)

    @property
    def detectors(self) -> range:
        return range(self.n_detectors)

    @property
    def _grid(self) -> tuple[int, int]:
        ncol = math.ceil(math.sqrt(self.n_detectors))
        nrow = math.ceil(self.n_detectors / ncol)
        return ncol, nrow

    def detector_origin(self, detector: int) -> tuple[float, float]:
        """Focal-plane pixel position of the detector's pixel (0, 0), boresight at (0, 0)."""
        self.check_detector(detector)
        ncol, nrow = self._grid
        col, row = detector % ncol, detector // ncol
        width = ncol * self.nx + (ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        return (col * (self.nx + self.gap) - width / 2.0, row * (self.ny + self.gap) - height / 2.0)

    def check_detector(self, detector: int) -> None:
        if detector not in self.detectors:
            raise SimError(f"unknown detector {detector}: camera {self.name} has "
                           f"detectors 0..{self.n_detectors - 1}")

    @property
    def field_radius_px(self) -> float:
        """Distance from the boresight to the farthest detector corner, in pixels."""
        ncol, nrow = self._grid
        width = ncol * self.nx + (ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        return 0.5 * math.hypot(width, height)

    def gain(self, detector: int) -> float:
        """Electrons per ADU; distinct per amplifier chain, as on a real camera."""
        return 1.55 + 0.03 * (detector % 5)

    def bias_level(self, detector: int) -> float:
        return 1000.0 + 17.0 * (detector % 7)

    def saturation_adu(self, detector: int) -> int:
        """Raw level above which ISR flags a pixel saturated (full well, ADC-limited)."""
        level = self.bias_level(detector) - 40.0 + 0.995 * self.full_well / self.gain(detector)
        return int(min(level, self.adc_max - 1))

    def detector_wcs(self, detector: int, ra: float, dec: float, rotation_deg: float) -> WCS:
        """The detector's TAN WCS for a boresight (deg) and sky rotation angle (deg).

        The rotation turns the focal plane on the sky: at 0, +y points north and +x east on
        the left (the usual parity with east to the left on the sky).
        """
        x0, y0 = self.detector_origin(detector)
        scale = self.pixel_scale / 3600.0
        theta = math.radians(rotation_deg)
        c, s = math.cos(theta), math.sin(theta)
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [float(ra), float(dec)]
        # pixel (x0, y0) of the focal plane is detector pixel (0, 0): boresight at -x0, -y0
        wcs.wcs.crpix = [-x0 + 1.0, -y0 + 1.0]
        wcs.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]])
        wcs.wcs.radesys = "ICRS"
        wcs.wcs.cunit = ["deg", "deg"]
        return wcs

    def detector_corners(self, detector: int, ra: float, dec: float,
                         rotation_deg: float, margin: float = 0.0) -> np.ndarray:
        """(4, 2) ra/dec of the detector's corners, grown by ``margin`` pixels."""
        wcs = self.detector_wcs(detector, ra, dec, rotation_deg)
        x = np.array([-0.5 - margin, self.nx - 0.5 + margin, self.nx - 0.5 + margin, -0.5 - margin])
        y = np.array([-0.5 - margin, -0.5 - margin, self.ny - 0.5 + margin, self.ny - 0.5 + margin])
        sky = wcs.all_pix2world(x, y, 0)
        return np.column_stack(sky)
