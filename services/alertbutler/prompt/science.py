"""The pixel science of one visit-detector, through :mod:`alertbutler.imaging`.

This module only adapts: it turns the butler's inputs into the imaging library's types, runs
``process_exposure`` (ISR, background, PSF, warp, PSF matching, difference, detection,
measurement), and turns its source table into DiaSource fields of the alert schema. It also
offers what the service needs afterwards: the detector footprint for the L1 query, forced
photometry at known DiaObjects, and cutouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alertbutler.alerts.cutouts import MASK_BITS, make_cutout
from alertbutler.imaging import (
    Exposure,
    IsrCalibs,
    Mask,
    PipelineConfig,
    ProcessResult,
    TemplateImage,
    forced_photometry,
    process_exposure,
)
from alertbutler.l1db import Polygon
from alertbutler.prompt.errors import CorruptRawError, ImagingFailedError
from alertbutler.prompt.preload import Inputs
from alertbutler.prompt.raws import Raw

#: imaging mask plane -> bit of the alert cutouts' mask
_CUTOUT_BITS = {Mask.BAD: "BAD", Mask.SAT: "SAT", Mask.INTRP: "INTRP", Mask.CR: "CR",
                Mask.EDGE: "EDGE", Mask.SUSPECT: "SUSPECT", Mask.NO_DATA: "NO_DATA"}


@dataclass
class Result:
    """The imaging products of one visit-detector and DiaSource fields for its detections."""

    visit: int
    detector: int
    band: str
    midpoint_mjd_tai: float
    processed: ProcessResult
    sources: list[dict[str, Any]]

    @property
    def calexp(self) -> Exposure:
        return self.processed.calexp

    @property
    def difference(self) -> Exposure:
        return self.processed.difference

    @property
    def degraded(self) -> bool:
        """The PSF model or the matching kernel is a fallback built from too few stars."""
        return bool(self.processed.psf.degraded or self.processed.kernel.degraded)

    def psf_metrics(self) -> dict[str, Any]:
        """How the PSF model and the matching kernel were made (for the metrics dataset)."""
        psf, kernel = self.processed.psf, self.processed.kernel
        return {"model": psf.kind, "n_stars": int(psf.n_stars), "fwhm_px": float(psf.fwhm),
                "aperture_correction": float(psf.aperture_correction),
                "kernel_stamps": int(kernel.n_stamps), "kernel_degraded": bool(kernel.degraded),
                "degraded": self.degraded}

    @property
    def stage_seconds(self) -> dict[str, float]:
        return dict(self.processed.timings)

    def _corners(self, margin_px: float = 0.0) -> np.ndarray:
        ny, nx = self.calexp.shape
        x = np.array([-0.5 - margin_px, nx - 0.5 + margin_px, nx - 0.5 + margin_px,
                      -0.5 - margin_px])
        y = np.array([-0.5 - margin_px, -0.5 - margin_px, ny - 0.5 + margin_px,
                      ny - 0.5 + margin_px])
        return np.column_stack(self.calexp.wcs.all_pix2world(x, y, 0))

    def footprint(self, margin_arcsec: float) -> Polygon:
        """The detector on the sky, grown by ``margin_arcsec`` (for the L1 region query)."""
        scale = float(np.sqrt(abs(np.linalg.det(self.calexp.wcs.pixel_scale_matrix)))) * 3600
        corners = self._corners(margin_arcsec / scale)
        return Polygon(vertices=tuple((float(r), float(d)) for r, d in corners))

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        if not len(ra):
            return np.zeros(0, bool)
        x, y = self.calexp.wcs.all_world2pix(ra, dec, 0)
        ny, nx = self.calexp.shape
        return (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)

    def forced_photometry(self, ra: np.ndarray, dec: np.ndarray) -> dict[str, np.ndarray]:
        """Difference and science PSF fluxes (nJy) at fixed positions."""
        diff = forced_photometry(self.difference, self.processed.psf, ra, dec)
        science = forced_photometry(self.calexp, self.processed.psf, ra, dec)
        return {"psfFlux": np.asarray(diff["psf_flux"], float),
                "psfFluxErr": np.asarray(diff["psf_flux_err"], float),
                "scienceFlux": np.asarray(science["psf_flux"], float),
                "scienceFluxErr": np.asarray(science["psf_flux_err"], float)}

    def cutouts(self, x: float, y: float, size: int) -> tuple[bytes, bytes, bytes]:
        """FITS cutouts (difference, science, template) of ``size`` pixels centred on x, y.

        Stamps are cut first and scaled to nJy afterwards, so nothing touches whole frames.
        Pixels off the detector are NaN with infinite variance and NO_DATA.
        """
        x0, y0 = round(x) - size // 2, round(y) - size // 2
        calib = np.float32(self.calexp.photo_calib or 1.0)
        diff, sci = self.difference, self.calexp
        ny, nx = sci.shape
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + size, ny), min(x0 + size, nx)
        inner = (slice(ys - y0, max(ye - y0, ys - y0)), slice(xs - x0, max(xe - x0, xs - x0)))
        outer = (slice(ys, max(ye, ys)), slice(xs, max(xe, xs)))

        def stamp(plane: np.ndarray, fill: float, dtype: Any = np.float32) -> np.ndarray:
            out = np.full((size, size), fill, dtype=dtype)
            out[inner] = plane[outer]
            return out

        off = np.ones((size, size), bool)
        off[inner] = False
        no_data = np.uint8(1 << MASK_BITS["NO_DATA"])
        sci_mask = _cutout_mask(stamp(sci.mask, 0, sci.mask.dtype))
        diff_mask = _cutout_mask(stamp(diff.mask, 0, diff.mask.dtype))
        sci_mask[off] |= no_data
        diff_mask[off] |= no_data
        sci_var = stamp(sci.variance, np.inf) * calib**2
        diff_var = stamp(diff.variance, np.inf)
        tmpl = stamp(np.asarray(self.processed.matched_template), np.nan) * calib
        with np.errstate(invalid="ignore"):
            tmpl_var = np.maximum(np.nan_to_num(diff_var - sci_var, nan=np.inf),
                                  0.0).astype(np.float32)
        wcs = self.calexp.wcs.deepcopy()
        wcs.wcs.crpix = [wcs.wcs.crpix[0] - x0, wcs.wcs.crpix[1] - y0]
        return (make_cutout(stamp(diff.image, np.nan), diff_var, diff_mask, wcs=wcs),
                make_cutout(stamp(sci.image, np.nan) * calib, sci_var, sci_mask, wcs=wcs),
                make_cutout(tmpl, tmpl_var, sci_mask, wcs=wcs))


def _cutout_mask(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, np.uint8)
    for plane, name in _CUTOUT_BITS.items():
        out[(mask & plane) != 0] |= np.uint8(1 << MASK_BITS[name])
    return out


def run(raw: Raw, inputs: Inputs, *, stages: Any, detection_threshold: float = 5.0) -> Result:
    """ISR to measurement on one raw; stage seconds are added to ``stages``."""
    calibs = IsrCalibs(bias=np.asarray(inputs.bias, np.float32),
                       dark=np.asarray(inputs.dark, np.float32),
                       flat=np.asarray(inputs.flat, np.float32),
                       defects=np.asarray(inputs.defects, bool))
    templates = [TemplateImage(image=np.asarray(t.image, np.float32),
                               variance=np.asarray(t.variance, np.float32), wcs=t.wcs)
                 for t in inputs.templates]
    from alertbutler.imaging import ImagingError, IsrError

    try:
        processed = process_exposure(
            raw.data, raw.header, calibs, templates,
            config=PipelineConfig(detection_threshold=detection_threshold))
    except IsrError as exc:  # the raw's header or pixels are unusable
        raise CorruptRawError(f"visit {raw.visit} detector {raw.detector}: {exc}",
                              visit=raw.visit, detector=raw.detector) from exc
    except ImagingError as exc:  # the data cannot give a result: retrying will not help
        raise ImagingFailedError(f"visit {raw.visit} detector {raw.detector}: {exc}",
                                 visit=raw.visit, detector=raw.detector) from exc
    for name, seconds in processed.timings.items():
        stages.seconds[name] = stages.seconds.get(name, 0.0) + seconds
    header = raw.header
    midpoint = float(header["MJD-OBS"]) + 0.5 * float(header["EXPTIME"]) / 86400.0
    band = str(header.get("BAND", header.get("FILTER", "")))
    sources = _dia_source_fields(processed)
    return Result(visit=raw.visit, detector=raw.detector, band=band, midpoint_mjd_tai=midpoint,
                  processed=processed, sources=sources)


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _dia_source_fields(processed: ProcessResult) -> list[dict[str, Any]]:
    """Measured columns as alert-schema DiaSource fields (ids and times added later)."""
    table = processed.sources
    psf = processed.psf
    degraded = bool(psf.degraded or processed.kernel.degraded)
    stamp = 2 * int(psf.half) + 1
    scale = float(np.sqrt(abs(np.linalg.det(processed.calexp.wcs.pixel_scale_matrix)))) * 3600
    out = []
    for row in table:
        err_arcsec = float(row["coord_err_arcsec"])
        flux, flux_err = _num(row["psf_flux"]), _num(row["psf_flux_err"])
        sci, sci_err = _num(row["science_flux"]), _num(row["science_flux_err"])
        flags = {k: bool(row[k]) for k in ("flag_edge", "flag_saturated", "flag_dipole",
                                           "flag_trail", "flag_bad")}
        out.append({
            "x": float(row["x"]), "y": float(row["y"]),
            "xErr": err_arcsec / scale, "yErr": err_arcsec / scale,
            "ra": float(row["ra"]), "dec": float(row["dec"]),
            "raErr": err_arcsec / 3600.0, "decErr": err_arcsec / 3600.0,
            "centroid_flag": False,
            "psfFlux": flux, "psfFluxErr": flux_err, "psfFlux_flag": flux is None,
            "snr": _num(row["snr"]), "isNegative": bool(row["is_negative"]),
            "scienceFlux": sci, "scienceFluxErr": sci_err,
            "templateFlux": None if sci is None or flux is None else sci - flux,
            "templateFluxErr": None if sci_err is None or flux_err is None
            else float(np.hypot(sci_err, flux_err)),
            "ixx": _num(row["ixx"]), "iyy": _num(row["iyy"]), "ixy": _num(row["ixy"]),
            "isDipole": flags["flag_dipole"],
            "psfNdata": stamp * stamp, "trailNdata": 0, "dipoleNdata": 0, "bboxSize": stamp,
            "pixelFlags": any(flags.values()), "pixelFlags_bad": flags["flag_bad"],
            "pixelFlags_edge": flags["flag_edge"],
            "pixelFlags_saturated": flags["flag_saturated"],
            "pixelFlags_suspect": flags["flag_saturated"],
            "pixelFlags_cr": None, "pixelFlags_interpolated": None,
            "psfModel_flag_degraded": degraded,
        })
    return out
