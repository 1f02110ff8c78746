"""Where pixels fall on the sky: a camera's focal plane and the sky map's tracts and patches.

Production code needs these descriptions to fan a visit out to its detectors (which earlier
visit-detectors overlap) and to find the template patches under a detector; the simulator
needs the same ones to render raws and templates that agree with them. So they live here, in
a library, and the simulator builds on them rather than the other way round.

A focal plane is a grid of identical detectors around the boresight, all sharing one tangent
point (one gnomonic projection per visit, as a real focal plane to first order). A tract is one
TAN projection, north up, cut into square patches with an overlap margin, as Rubin's sky map
divides the sky.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from astropy.wcs import WCS

from alertbutler.imaging.errors import ImagingError


class UnknownDetectorError(ImagingError):
    """A detector number the focal plane does not have."""


def _tan_wcs(ra: float, dec: float, crpix: tuple[float, float], cd: np.ndarray) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(ra), float(dec)]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


@dataclass(frozen=True, kw_only=True)
class FocalPlane:
    """Detectors of ``nx`` x ``ny`` pixels tiled on a grid, ``gap`` pixels apart."""

    name: str = "SIMCAM"
    n_detectors: int = 4
    nx: int = 2048
    ny: int = 2048
    #: arcsec per pixel
    pixel_scale: float = 0.2
    #: pixels of dead space between neighbouring detectors
    gap: int = 100
    #: what a bad size raises (a subclass raises its own package's error)
    _error: ClassVar[type[Exception]] = ImagingError

    def __post_init__(self) -> None:
        if self.n_detectors < 1:
            raise self._error(f"camera needs at least one detector, got {self.n_detectors}")
        if min(self.nx, self.ny) < 256:
            raise self._error(f"detectors must be at least 256 x 256 pixels, "
                              f"got {self.nx} x {self.ny}")

    @property
    def detectors(self) -> range:
        return range(self.n_detectors)

    @property
    def _grid(self) -> tuple[int, int]:
        ncol = math.ceil(math.sqrt(self.n_detectors))
        nrow = math.ceil(self.n_detectors / ncol)
        return ncol, nrow

    def check_detector(self, detector: int) -> None:
        if detector not in self.detectors:
            raise UnknownDetectorError(f"unknown detector {detector}: camera {self.name} has "
                                       f"detectors 0..{self.n_detectors - 1}")

    def detector_origin(self, detector: int) -> tuple[float, float]:
        """Focal-plane pixel position of the detector's pixel (0, 0), boresight at (0, 0)."""
        self.check_detector(detector)
        ncol, nrow = self._grid
        col, row = detector % ncol, detector // ncol
        width = ncol * self.nx + (ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        return (col * (self.nx + self.gap) - width / 2.0, row * (self.ny + self.gap) - height / 2.0)

    @property
    def field_radius_px(self) -> float:
        """Distance from the boresight to the farthest detector corner, in pixels."""
        ncol, nrow = self._grid
        width = ncol * self.nx + (ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        return 0.5 * math.hypot(width, height)

    def detector_wcs(self, detector: int, ra: float, dec: float, rotation_deg: float) -> WCS:
        """The detector's TAN WCS for a boresight (deg) and sky rotation angle (deg).

        The rotation turns the focal plane on the sky: at 0, +y points north and +x east on
        the left (the usual parity with east to the left on the sky).
        """
        x0, y0 = self.detector_origin(detector)
        scale = self.pixel_scale / 3600.0
        theta = math.radians(rotation_deg)
        c, s = math.cos(theta), math.sin(theta)
        # pixel (x0, y0) of the focal plane is detector pixel (0, 0): boresight at -x0, -y0
        return _tan_wcs(ra, dec, (-x0 + 1.0, -y0 + 1.0),
                        np.array([[-scale * c, scale * s], [scale * s, scale * c]]))

    def detector_corners(self, detector: int, ra: float, dec: float,
                         rotation_deg: float, margin: float = 0.0) -> np.ndarray:
        """(4, 2) ra/dec of the detector's corners, grown by ``margin`` pixels."""
        wcs = self.detector_wcs(detector, ra, dec, rotation_deg)
        x = np.array([-0.5 - margin, self.nx - 0.5 + margin, self.nx - 0.5 + margin, -0.5 - margin])
        y = np.array([-0.5 - margin, -0.5 - margin, self.ny - 0.5 + margin, self.ny - 0.5 + margin])
        sky = wcs.all_pix2world(x, y, 0)
        return np.column_stack(sky)

    def detector_centre(self, detector: int, ra: float, dec: float,
                        rotation_deg: float) -> tuple[float, float]:
        """Sky position (deg) of the detector's centre."""
        wcs = self.detector_wcs(detector, ra, dec, rotation_deg)
        cra, cdec = wcs.all_pix2world((self.nx - 1) / 2, (self.ny - 1) / 2, 0)
        return float(cra), float(cdec)


#: the cameras alertbutler knows by name: the simulated camera and its 4k-detector variant
FOCAL_PLANES: dict[str, FocalPlane] = {
    "simcam": FocalPlane(),
    "simcam4k": FocalPlane(name="SIMCAM4K", n_detectors=9, nx=4096, ny=4096, gap=150),
}


@dataclass(frozen=True, kw_only=True)
class TractGeometry:
    """One tract of the sky map: its projection and how it is cut into patches."""

    field: int
    ra: float
    dec: float
    pixel_scale: float  # arcsec / pixel
    patch_size: int  # inner size of a patch, pixels
    margin: int  # overlap added on each side of a patch
    n_side: int  # patches per side

    @classmethod
    def from_record(cls, record: Mapping[str, float | int]) -> TractGeometry:
        """From one entry of the central repo's ``skyMap`` dataset."""
        return cls(field=int(record["tract"]), ra=float(record["ra"]),
                   dec=float(record["dec"]), pixel_scale=float(record["pixel_scale"]),
                   patch_size=int(record["patch_size"]), margin=int(record["margin"]),
                   n_side=int(record["n_side"]))

    def to_record(self) -> dict[str, float | int]:
        """The entry of the central repo's ``skyMap`` dataset."""
        return {"tract": int(self.field), "ra": float(self.ra), "dec": float(self.dec),
                "pixel_scale": float(self.pixel_scale), "patch_size": int(self.patch_size),
                "margin": int(self.margin), "n_side": int(self.n_side)}

    @property
    def _half(self) -> float:
        return 0.5 * self.n_side * self.patch_size

    @property
    def size(self) -> int:
        """Pixels per side of the whole tract (patch margins aside)."""
        return self.n_side * self.patch_size

    def tract_wcs(self) -> WCS:
        scale = self.pixel_scale / 3600.0
        return _tan_wcs(self.ra, self.dec, (self._half + 1.0, self._half + 1.0),
                        np.array([[-scale, 0.0], [0.0, scale]]))

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

    def overlaps(self, ra: np.ndarray, dec: np.ndarray) -> bool:
        """Whether the polygon's bounding box (ra/dec corners) reaches into the tract."""
        x, y = self.tract_wcs().all_world2pix(ra, dec, 0)
        return not (x.max() < 0 or y.max() < 0 or x.min() > self.size or y.min() > self.size)

    def patches_covering(self, ra: np.ndarray, dec: np.ndarray) -> list[int]:
        """Patches whose inner area overlaps the polygon's bounding box (ra/dec corners); a
        polygon beyond the tract's edge gets the edge patches (see :meth:`overlaps`)."""
        x, y = self.tract_wcs().all_world2pix(ra, dec, 0)
        i0 = max(math.floor(x.min() / self.patch_size), 0)
        i1 = min(math.floor(x.max() / self.patch_size), self.n_side - 1)
        j0 = max(math.floor(y.min() / self.patch_size), 0)
        j1 = min(math.floor(y.max() / self.patch_size), self.n_side - 1)
        return [j * self.n_side + i for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]
