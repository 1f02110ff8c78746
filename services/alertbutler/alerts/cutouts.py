"""Cutouts: small FITS files around a detection, as carried in an alert packet.

Each cutout is a complete FITS file in the layout astropy's ``CCDData`` writes and reads (as
Rubin's alert packager does), so a broker opens it with ``CCDData.read(BytesIO(data))``: the
primary HDU holds the flux (float32, ``BUNIT`` nJy) with a local TAN WCS, ``MASK`` an 8-bit
plane whose bit names are in its header (``MSKBITn``), and ``UNCERT`` the variance (float32,
``UTYPE = 'VarianceUncertainty'``). Sizes are configurable between 30 and 100 pixels on a side
(Rubin's alerts carry ~30-100 px stamps). One 64 x 64 cutout is ~49 KB. The files are
assembled from header blocks cached per size (:mod:`._fitsblocks`); astropy builds the same
layout for WCSs with distortions, and the tests compare the two.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from alertbutler.alerts._errors import CutoutError
from alertbutler.alerts._fitsblocks import assemble, wcs_cards

MIN_SIZE, MAX_SIZE = 30, 100
DEFAULT_PIXEL_SCALE = 0.2  # arcsec / pixel, as LSSTCam

#: Mask bits (names as in Rubin's masks); 8 of them, so the plane is uint8 as CCDData keeps it.
MASK_BITS = {"BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5,
             "SUSPECT": 6, "NO_DATA": 7}
FLUX_UNIT = "nJy"


class Cutout(NamedTuple):
    """A decoded cutout: its three planes and its WCS."""

    flux: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    wcs: WCS


def check_size(size: int) -> int:
    """Validate a cutout side length (pixels)."""
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise CutoutError(f"cutout size must be an integer from {MIN_SIZE} to {MAX_SIZE} "
                          f"pixels, got {size!r}")
    return size


def local_wcs(ra: float, dec: float, size: int, *, pixel_scale: float = DEFAULT_PIXEL_SCALE,
              rotation_deg: float = 0.0) -> WCS:
    """A TAN WCS with (ra, dec) at the stamp's centre, north rotated by ``rotation_deg``."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]  # FITS pixels are 1-based
    scale = pixel_scale / 3600.0
    theta = np.deg2rad(rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(theta), np.sin(theta)],
                                   [np.sin(theta), np.cos(theta)]])
    wcs.wcs.radesys = "ICRS"
    return wcs


def make_cutout(flux: np.ndarray, variance: np.ndarray, mask: np.ndarray | None = None, *,
                wcs: WCS) -> bytes:
    """FITS bytes of one cutout from its planes (all the same square shape) and WCS."""
    flux = np.asarray(flux, dtype=np.float32)
    variance = np.asarray(variance, dtype=np.float32)
    mask = np.zeros(flux.shape, np.uint8) if mask is None else np.asarray(mask, dtype=np.uint8)
    if flux.ndim != 2 or flux.shape[0] != flux.shape[1]:
        raise CutoutError(f"cutout planes must be square 2-d arrays, got shape {flux.shape}")
    check_size(flux.shape[0])
    if variance.shape != flux.shape or mask.shape != flux.shape:
        raise CutoutError(f"cutout planes differ in shape: flux {flux.shape}, variance "
                          f"{variance.shape}, mask {mask.shape}")
    text = wcs_cards(wcs)
    if text is not None:
        return assemble(flux, variance, mask, text, FLUX_UNIT, _BITS)
    return _make_with_astropy(flux, variance, mask, wcs)


_BITS = tuple(MASK_BITS.items())


def _make_with_astropy(flux: np.ndarray, variance: np.ndarray, mask: np.ndarray,
                       wcs: WCS) -> bytes:
    """The reference layout, built by astropy (and the path for WCSs with distortions)."""
    header = wcs.to_header(relax=True)  # relax: keep SIP distortion cards
    header["BUNIT"] = FLUX_UNIT
    mask_header = fits.Header()
    for name, bit in MASK_BITS.items():
        mask_header[f"MSKBIT{bit}"] = (name, f"meaning of mask bit {bit}")
    uncert_header = fits.Header()
    uncert_header["UTYPE"] = "VarianceUncertainty"
    hdus = fits.HDUList([
        fits.PrimaryHDU(flux, header=header),
        fits.ImageHDU(mask, header=mask_header, name="MASK"),
        fits.ImageHDU(variance, header=uncert_header, name="UNCERT"),
    ])
    buf = io.BytesIO()
    hdus.writeto(buf)
    return buf.getvalue()


def cut(image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None, *, x: float,
        y: float, size: int, wcs: WCS) -> bytes:
    """A cutout of ``size`` pixels centred on (x, y) (0-based pixels) of a larger image.

    Pixels outside the image are NaN flux, infinite variance and NO_DATA in the mask; the
    cutout's WCS is the image's WCS shifted to the stamp's origin.
    """
    check_size(size)
    x0 = round(x) - size // 2
    y0 = round(y) - size // 2
    if mask is None:
        mask = np.zeros(image.shape, np.uint8)
    planes = []
    for plane, fill, dtype in ((image, np.nan, np.float32), (variance, np.inf, np.float32),
                               (mask, 1 << MASK_BITS["NO_DATA"], np.uint8)):
        out = np.full((size, size), fill, dtype=dtype)
        ny, nx = plane.shape
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + size, ny), min(x0 + size, nx)
        if ye > ys and xe > xs:
            out[ys - y0:ye - y0, xs - x0:xe - x0] = plane[ys:ye, xs:xe]
        planes.append(out)
    crpix = (float(wcs.wcs.crpix[0]) - x0, float(wcs.wcs.crpix[1]) - y0)
    text = wcs_cards(wcs, crpix)
    if text is not None:
        return assemble(planes[0], planes[1], planes[2], text, FLUX_UNIT, _BITS)
    sub = wcs.deepcopy()
    sub.wcs.crpix = list(crpix)
    return make_cutout(planes[0], planes[1], planes[2], wcs=sub)


def read_cutout(data: bytes) -> Cutout:
    """Decode cutout FITS bytes into planes and WCS."""
    try:
        with fits.open(io.BytesIO(data)) as hdus:
            flux = np.array(hdus[0].data)
            mask = np.array(hdus["MASK"].data)
            variance = np.array(hdus["UNCERT"].data)
            wcs = WCS(hdus[0].header)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CutoutError(f"not an alert cutout FITS file: {exc}") from None
    return Cutout(flux, variance, mask, wcs)


def summarize_cutout(data: bytes | None) -> dict | None:
    """A short description of a cutout (for dumps): size in bytes, shape, centre, flux range."""
    if data is None:
        return None
    try:
        cutout = read_cutout(data)
    except CutoutError as exc:
        return {"bytes": len(data), "error": str(exc)}
    ny, nx = cutout.flux.shape
    centre = cutout.wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
    finite = cutout.flux[np.isfinite(cutout.flux)]
    return {
        "bytes": len(data), "shape": [int(ny), int(nx)],
        "center_ra": round(float(centre[0]), 7), "center_dec": round(float(centre[1]), 7),
        "flux_min": float(finite.min()) if finite.size else None,
        "flux_max": float(finite.max()) if finite.size else None,
        "masked_pixels": int(np.count_nonzero(cutout.mask)),
    }
