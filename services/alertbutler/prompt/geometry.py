"""Camera geometry for the fan-out and preload: which detectors exist and where each looks.

Read from the imaging library's focal-plane descriptions
(:data:`alertbutler.imaging.geometry.FOCAL_PLANES`), the same ones the simulator renders
with; production code never needs the simulator. A real deployment would read the same facts
from the instrument's dimension records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from alertbutler.imaging.geometry import FOCAL_PLANES, FocalPlane
from alertbutler.prompt.fanout import FootprintHistory


@dataclass(frozen=True)
class CameraGeometry:
    """Detectors of one camera and the sky position of each detector's centre."""

    camera: FocalPlane

    @classmethod
    def named(cls, name: str, n_detectors: int | None = None,
              size: int | None = None) -> CameraGeometry:
        """A known camera, optionally with another number or size (pixels) of detectors."""
        try:
            camera = FOCAL_PLANES[name.lower()]
        except KeyError:
            raise ValueError(f"unknown camera {name!r} (known: {', '.join(FOCAL_PLANES)})"
                             ) from None
        if n_detectors is not None:
            camera = dataclasses.replace(camera, n_detectors=n_detectors)
        if size is not None:
            camera = dataclasses.replace(camera, nx=size, ny=size)
        return cls(camera)

    @property
    def instrument(self) -> str:
        return self.camera.name

    @property
    def detectors(self) -> range:
        return self.camera.detectors

    def detector_centre(self, ra: float, dec: float, angle: float,
                        detector: int) -> tuple[float, float]:
        return self.camera.detector_centre(detector, ra, dec, angle)

    def history(self) -> FootprintHistory:
        scale = self.camera.pixel_scale / 3600.0
        return FootprintHistory(
            fov_radius_deg=self.camera.field_radius_px * scale,
            detector_radius_deg=0.5 * math.hypot(self.camera.nx, self.camera.ny) * scale,
            detector_centre=self.detector_centre)
