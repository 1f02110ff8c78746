"""Measurement of difference-image sources: centroid, PSF flux, S/N, shape, flags, ra/dec.

The centroid is sep's Gaussian-windowed position (as accurate as a PSF fit for isolated
sources, and cheap). The PSF flux is the linear least-squares amplitude of the PSF model
shifted to that centroid, with inverse-variance weights and masked pixels left out, so its
error is the real one. Shapes are Gaussian-weighted second moments, compared with the PSF's
own to flag trails. Fluxes are in nJy through the exposure's photometric calibration.
"""

from __future__ import annotations

import math

import numpy as np
import sep
from astropy.table import Table

from alertbutler.imaging.detection import Detections
from alertbutler.imaging.exposure import UNUSABLE, Exposure, Mask
from alertbutler.imaging.psf import PsfModel, second_moments

#: excess of a source's major-axis moment over the PSF's (pixels^2) that marks a trail
TRAIL_EXCESS = 0.6

FLAG_COLUMNS = ("flag_edge", "flag_saturated", "flag_dipole", "flag_trail", "flag_bad")


def _stamp(exposure: Exposure, x: float, y: float, half: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, float, float]:
    """(image, weight, mask, clipped, dx, dy): a (2h+1)^2 stamp centred on round(x, y)."""
    ny, nx = exposure.shape
    ix, iy = round(x), round(y)
    size = 2 * half + 1
    img = np.zeros((size, size), np.float64)
    wgt = np.zeros((size, size), np.float64)
    msk = np.zeros((size, size), np.uint16)
    x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
    clipped = (x0 != ix - half) or (x1 != ix + half + 1) or (y0 != iy - half) or (
        y1 != iy + half + 1)
    if x1 > x0 and y1 > y0:
        sy = np.s_[y0 - (iy - half): y1 - (iy - half)]
        sx = np.s_[x0 - (ix - half): x1 - (ix - half)]
        img[sy, sx] = exposure.image[y0:y1, x0:x1]
        m = exposure.mask[y0:y1, x0:x1]
        var = exposure.variance[y0:y1, x0:x1].astype(np.float64)
        ok = ((m & UNUSABLE) == 0) & np.isfinite(var) & (var > 0)
        wgt[sy, sx] = np.where(ok, 1.0 / np.where(ok, var, 1.0), 0.0)
        msk[sy, sx] = m
    return img, wgt, msk, clipped, x - ix, y - iy


def psf_flux(exposure: Exposure, psf: PsfModel, x: float, y: float
             ) -> tuple[float, float, np.ndarray, np.ndarray, bool]:
    """(flux, error) in image units at (x, y), plus the stamp, its mask and 'clipped'."""
    img, wgt, msk, clipped, dx, dy = _stamp(exposure, x, y, psf.half)
    model = psf.at(dx, dy)
    denom = float(np.sum(wgt * model * model))
    if denom <= 0:
        return math.nan, math.nan, img, msk, True
    flux = float(np.sum(wgt * model * img) / denom) * psf.aperture_correction
    return flux, psf.aperture_correction / math.sqrt(denom), img, msk, clipped


def refine_centroid(exposure: Exposure, psf: PsfModel, x: float, y: float, sign: float = 1.0,
                    iterations: int = 4) -> tuple[float, float, bool]:
    """PSF-fit position (Gauss-Newton on flux and shift), or the start if it does not settle.

    Unlike a windowed centroid it stays unbiased when part of the source is masked or off
    the image: missing pixels simply carry no weight in the fit.
    """
    x0, y0 = x, y
    for _ in range(iterations):
        img, wgt, _, _, dx, dy = _stamp(exposure, x, y, psf.half)
        img = sign * img
        p = psf.at(dx, dy)
        # moving the source by +d moves the model by -d: the gradient of the model
        gy, gx = np.gradient(p)
        gx, gy = -gx, -gy
        basis = np.stack([p.ravel(), gx.ravel(), gy.ravel()])
        w = wgt.ravel()
        a = (basis * w) @ basis.T
        b = (basis * w) @ img.ravel()
        try:
            flux, fdx, fdy = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            return x0, y0, False
        if flux <= 0:
            return x0, y0, False
        step_x, step_y = fdx / flux, fdy / flux
        x, y = x + float(np.clip(step_x, -0.5, 0.5)), y + float(np.clip(step_y, -0.5, 0.5))
        if abs(step_x) < 1e-3 and abs(step_y) < 1e-3:
            break
    if math.hypot(x - x0, y - y0) > 3.0:
        return x0, y0, False
    # a source centred off the image is reported at the image's edge
    ny, nx = exposure.shape
    return float(np.clip(x, -0.5, nx - 0.5)), float(np.clip(y, -0.5, ny - 0.5)), True


def measure(diff: Exposure, detections: Detections, psf: PsfModel,
            science: Exposure | None = None) -> Table:
    """One row per detection; fluxes in nJy when ``diff.photo_calib`` is set."""
    calib = diff.photo_calib or 1.0
    # correlated noise the variance plane misses (measured at detection) inflates errors
    noise_scale = float(diff.metadata.get("detection_noise_scale", 1.0))
    n = len(detections)
    sign = np.where(detections.snr < 0, -1.0, 1.0)
    xs, ys = detections.x.copy(), detections.y.copy()
    if n:
        bad = np.ascontiguousarray((diff.mask & UNUSABLE) != 0)
        for s in (1.0, -1.0):
            sel = np.nonzero(sign == s)[0]
            if len(sel) == 0:
                continue
            data = np.ascontiguousarray(s * np.nan_to_num(diff.image), dtype=np.float32)
            xw, yw, flag = sep.winpos(data, detections.x[sel], detections.y[sel],
                                      np.full(len(sel), psf.sigma), mask=bad)
            moved = np.hypot(xw - detections.x[sel], yw - detections.y[sel])
            ok = (flag == 0) & (moved < 1.5) & np.isfinite(xw) & np.isfinite(yw)
            xs[sel[ok]] = xw[ok]
            ys[sel[ok]] = yw[ok]
        for i in range(n):
            xs[i], ys[i], _ = refine_centroid(diff, psf, xs[i], ys[i], sign[i])
    rows: dict[str, list] = {k: [] for k in (
        "psf_flux", "psf_flux_err", "ixx", "iyy", "ixy", "trail_excess", "science_flux",
        "science_flux_err", *FLAG_COLUMNS)}
    for i in range(n):
        flux, err, img, msk, clipped = psf_flux(diff, psf, xs[i], ys[i])
        h = psf.half
        core = msk[h - 2: h + 3, h - 2: h + 3]
        ixx, iyy, ixy = second_moments(sign[i] * img, psf.sigma * 1.5)
        model_mom = second_moments(psf.at(xs[i] - round(xs[i]), ys[i] - round(ys[i])),
                                   psf.sigma * 1.5)
        excess = _major(ixx, iyy, ixy) - _major(*model_mom)
        rows["psf_flux"].append(flux * calib)
        err *= noise_scale
        rows["psf_flux_err"].append(err * calib)
        rows["ixx"].append(ixx)
        rows["iyy"].append(iyy)
        rows["ixy"].append(ixy)
        rows["trail_excess"].append(excess)
        rows["flag_edge"].append(bool(clipped or np.any(msk & (Mask.EDGE | Mask.NO_DATA))))
        rows["flag_saturated"].append(bool(np.any(core & (Mask.SAT | Mask.SUSPECT))))
        rows["flag_dipole"].append(bool(detections.dipole[i]))
        snr = flux / err if err > 0 else 0.0
        rows["flag_trail"].append(bool(abs(snr) >= 8 and excess > TRAIL_EXCESS
                                       and not clipped))
        rows["flag_bad"].append(bool(np.any(core & (Mask.BAD | Mask.CR))))
        if science is not None and science.psf is not None:
            sflux, serr, *_ = psf_flux(science, science.psf, xs[i], ys[i])
            rows["science_flux"].append(sflux * calib)
            rows["science_flux_err"].append(serr * calib)
        else:
            rows["science_flux"].append(math.nan)
            rows["science_flux_err"].append(math.nan)
    ra, dec = (diff.wcs.all_pix2world(xs, ys, 0) if n else (np.zeros(0), np.zeros(0)))
    fluxes = np.array(rows["psf_flux"], float)
    errs = np.array(rows["psf_flux_err"], float)
    scale = float(np.sqrt(abs(np.linalg.det(diff.wcs.pixel_scale_matrix)))) * 3600.0
    snrs = np.where(errs > 0, fluxes / np.where(errs > 0, errs, 1.0), 0.0)
    pos_err = np.sqrt(2.0) * psf.sigma / np.maximum(np.abs(snrs), 1e-3)
    table = Table({
        "source_index": np.arange(n, dtype=np.int64),
        "x": xs, "y": ys, "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
        "coord_err_arcsec": pos_err * scale,
        "psf_flux": fluxes, "psf_flux_err": errs, "snr": snrs,
        "detection_snr": detections.snr.astype(float),
        "is_negative": detections.snr < 0,
        **{k: np.array(rows[k], float) for k in ("ixx", "iyy", "ixy", "trail_excess",
                                                 "science_flux", "science_flux_err")},
        **{k: np.array(rows[k], bool) for k in FLAG_COLUMNS},
    })
    table.meta["flux_unit"] = "nJy" if diff.photo_calib else "count"
    return table


def _major(ixx: float, iyy: float, ixy: float) -> float:
    """Largest eigenvalue of the moment matrix."""
    return 0.5 * (ixx + iyy) + math.sqrt(0.25 * (ixx - iyy) ** 2 + ixy**2)
