"""Camera geometry for the fan-out: which detectors exist and where each one looks.

Built from the simulated camera's description (the only camera alertbutler knows today); a
real deployment would read the same facts from the instrument's dimension records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from alertbutler.prompt.fanout import FootprintHistory
from alertbutler.sim import Camera

CAMERAS: dict[str, Callable[..., Camera]] = {"simcam": Camera, "simcam4k": Camera.lsst_like}


@dataclass(frozen=True)
class CameraGeometry:
    """Detectors of one camera and the sky position of each detector's centre."""

    camera: Camera

    @classmethod
    def named(cls, name: str, n_detectors: int | None = None,
              size: int | None = None) -> CameraGeometry:
        """A known camera, optionally with another number or size (pixels) of detectors."""
        try:
            factory = CAMERAS[name.lower()]
        except KeyError:
            raise ValueError(f"unknown camera {name!r} (known: {', '.join(CAMERAS)})") from None
        camera = factory() if n_detectors is None else factory(n_detectors=n_detectors)
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
        wcs = self.camera.detector_wcs(detector, ra, dec, angle)
        cra, cdec = wcs.all_pix2world((self.camera.nx - 1) / 2, (self.camera.ny - 1) / 2, 0)
        return float(cra), float(cdec)

    def history(self) -> FootprintHistory:
        scale = self.camera.pixel_scale / 3600.0
        return FootprintHistory(
            fov_radius_deg=self.camera.field_radius_px * scale,
            detector_radius_deg=0.5 * math.hypot(self.camera.nx, self.camera.ny) * scale,
            detector_centre=self.detector_centre)
