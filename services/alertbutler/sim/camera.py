"""A simulated camera: the focal plane of :mod:`alertbutler.imaging.geometry` with electronics.

The geometry (detectors tiled around one tangent point, each with a TAN WCS) is the library's
:class:`~alertbutler.imaging.geometry.FocalPlane`, which production code reads too. Detector
electronics (gain, read noise, bias level, full well) are fixed per detector number so that
calibrations, raws and headers agree without any random state.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertbutler.imaging.geometry import FOCAL_PLANES, FocalPlane
from alertbutler.sim.errors import SimError


@dataclass(frozen=True, kw_only=True)
class Camera(FocalPlane):
    """Geometry and electronics of the simulated camera."""

    read_noise: float = 6.0
    full_well: float = 100_000.0
    adc_max: int = 65_535
    _error = SimError

    @classmethod
    def lsst_like(cls, n_detectors: int = 9) -> Camera:
        """4k x 4k detectors at 0.2 arcsec/pixel, like Rubin's science sensors."""
        plane = FOCAL_PLANES["simcam4k"]
        return cls(name=plane.name, n_detectors=n_detectors, nx=plane.nx, ny=plane.ny,
                   pixel_scale=plane.pixel_scale, gap=plane.gap)

    def check_detector(self, detector: int) -> None:
        if detector not in self.detectors:
            raise SimError(f"unknown detector {detector}: camera {self.name} has "
                           f"detectors 0..{self.n_detectors - 1}")

    def gain(self, detector: int) -> float:
        """Electrons per ADU; distinct per amplifier chain, as on a real camera."""
        return 1.55 + 0.03 * (detector % 5)

    def bias_level(self, detector: int) -> float:
        return 1000.0 + 17.0 * (detector % 7)

    def saturation_adu(self, detector: int) -> int:
        """Raw level above which ISR flags a pixel saturated (full well, ADC-limited)."""
        level = self.bias_level(detector) - 40.0 + 0.995 * self.full_well / self.gain(detector)
        return int(min(level, self.adc_max - 1))
