"""Vectorized rendering of point and extended sources as mixtures of Gaussians.

Stars, galaxies and the PSF are all mixtures of Gaussians (MoG), so a galaxy seen through the
PSF is again a MoG whose covariances are sums: rendering is one closed-form evaluation per
component on a small stamp, for all sources of a size class at once, with no per-pixel Python
loop. Stamps are accumulated into the image with ``np.bincount``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

#: exponential (Sersic n=1) profile of unit half-light radius as 4 Gaussians: weights, variances
_EXP_WEIGHTS = np.array([0.0082065, 0.0951156, 0.421456, 0.4752219])
_EXP_VARS = np.array([0.0145697, 0.1071743, 0.4700072, 1.6413753])

#: the PSF: a core and two wings, widths relative to the core, like a Kolmogorov-ish profile
_PSF_WEIGHTS = np.array([0.78, 0.18, 0.04])
_PSF_WIDTHS = np.array([1.0, 1.9, 3.6])

_SIGMA_FOR_UNIT_FWHM: float | None = None


def _mog_profile(r: float, weights: np.ndarray, sigmas: np.ndarray) -> float:
    return float(np.sum(weights / sigmas**2 * np.exp(-0.5 * r * r / sigmas**2)))


def _core_sigma_for_fwhm(fwhm: float) -> float:
    global _SIGMA_FOR_UNIT_FWHM
    if _SIGMA_FOR_UNIT_FWHM is None:
        peak = _mog_profile(0.0, _PSF_WEIGHTS, _PSF_WIDTHS)
        half = brentq(lambda r: _mog_profile(r, _PSF_WEIGHTS, _PSF_WIDTHS) - 0.5 * peak,
                      0.1, 10.0)
        _SIGMA_FOR_UNIT_FWHM = 1.0 / (2.0 * half)
    return fwhm * _SIGMA_FOR_UNIT_FWHM


@dataclass(frozen=True)
class Mog:
    """A normalized mixture of Gaussians: weights (K,), covariances (K, 2, 2) in pixels^2."""

    weights: np.ndarray
    covs: np.ndarray


def psf_mog(fwhm_px: float, e1: float = 0.0, e2: float = 0.0) -> Mog:
    """The PSF of a given FWHM (pixels) and small ellipticity (e1, e2), unit flux."""
    core = _core_sigma_for_fwhm(fwhm_px)
    shear = np.array([[1.0 + e1, e2], [e2, 1.0 - e1]])
    covs = np.array([(core * w) ** 2 * shear for w in _PSF_WIDTHS])
    return Mog(_PSF_WEIGHTS.copy(), covs)


def galaxy_covariance(r_eff_px: np.ndarray, q: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(N, 2, 2) covariance of a unit-variance ellipse: half-light radius, axis ratio, angle."""
    c, s = np.cos(theta), np.sin(theta)
    a2 = r_eff_px**2 / q
    b2 = r_eff_px**2 * q
    cov = np.empty((len(r_eff_px), 2, 2))
    cov[:, 0, 0] = a2 * c * c + b2 * s * s
    cov[:, 1, 1] = a2 * s * s + b2 * c * c
    cov[:, 0, 1] = cov[:, 1, 0] = (a2 - b2) * c * s
    return cov


def convolve_galaxies(shape_cov: np.ndarray, psf: Mog) -> tuple[np.ndarray, np.ndarray]:
    """Per-source MoG (weights (N, K), covs (N, K, 2, 2)) of exponential galaxies ⊗ PSF."""
    n = len(shape_cov)
    gal_covs = _EXP_VARS[None, :, None, None] * shape_cov[:, None]  # (N, 4, 2, 2)
    covs = gal_covs[:, :, None] + psf.covs[None, None]  # (N, 4, P, 2, 2)
    weights = (_EXP_WEIGHTS[:, None] * psf.weights[None, :])[None].repeat(n, 0)
    return weights.reshape(n, -1), covs.reshape(n, -1, 2, 2)


def point_sources(n: int, psf: Mog) -> tuple[np.ndarray, np.ndarray]:
    """Per-source MoG of ``n`` point sources (the PSF repeated)."""
    return psf.weights[None].repeat(n, 0), psf.covs[None].repeat(n, 0)


def stamp_halfwidth(flux: np.ndarray, covs: np.ndarray, noise: float) -> np.ndarray:
    """Half-width of the stamp needed so the truncated wing is far below the noise."""
    sig_max = np.sqrt(np.max(np.linalg.eigvalsh(covs), axis=(1, 2)))
    # out to where the widest component falls to ~noise/10 per pixel, at least 4 sigma
    peak = np.maximum(flux, 1.0) / (2 * math.pi * sig_max**2)
    ratio = np.maximum(peak / max(noise * 0.1, 1e-3), math.e**8)
    hw = sig_max * np.sqrt(2 * np.log(ratio))
    return np.clip(np.ceil(hw), 4, 96).astype(int)


def render(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray,
           weights: np.ndarray, covs: np.ndarray, noise: float = 10.0,
           out: np.ndarray | None = None) -> np.ndarray:
    """Add sources (pixel centres x, y; total flux) with per-source MoG profiles to an image.

    The profile is evaluated at pixel centres; sources more than a stamp away from the image
    are skipped. Sources are grouped by stamp size so each group is one array expression.
    """
    ny, nx = shape
    image = np.zeros(shape, dtype=np.float64) if out is None else out
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    flux = np.asarray(flux, float)
    if len(x) == 0:
        return image
    hw = stamp_halfwidth(flux, covs, noise)
    inside = (x > -hw) & (x < nx - 1 + hw) & (y > -hw) & (y < ny - 1 + hw) & (flux != 0)
    inv = np.linalg.inv(covs)
    norm = weights / (2 * math.pi * np.sqrt(np.linalg.det(covs)))
    flat_image = image.reshape(-1)
    for size in np.unique(hw[inside]):
        sel = np.nonzero(inside & (hw == size))[0]
        for chunk in np.array_split(sel, max(1, len(sel) * (2 * size + 1) ** 2 // 2_000_000)):
            _render_group(flat_image, nx, ny, int(size), x[chunk], y[chunk], flux[chunk],
                          norm[chunk], inv[chunk])
    return image


def _render_group(flat_image: np.ndarray, nx: int, ny: int, hw: int, x: np.ndarray,
                  y: np.ndarray, flux: np.ndarray, norm: np.ndarray, inv: np.ndarray) -> None:
    xc = np.rint(x).astype(np.int64)
    yc = np.rint(y).astype(np.int64)
    off = np.arange(-hw, hw + 1)
    du = off[None, None, :] - (x - xc)[:, None, None]  # (N, 1, S)
    dv = off[None, :, None] - (y - yc)[:, None, None]  # (N, S, 1)
    stamp = np.zeros((len(x), 2 * hw + 1, 2 * hw + 1))
    for k in range(norm.shape[1]):
        a = inv[:, k, 0, 0][:, None, None]
        b = inv[:, k, 0, 1][:, None, None]
        c = inv[:, k, 1, 1][:, None, None]
        q = a * du * du + 2 * b * du * dv + c * dv * dv
        stamp += norm[:, k][:, None, None] * np.exp(-0.5 * q)
    stamp *= flux[:, None, None]
    px = xc[:, None, None] + off[None, None, :]
    py = yc[:, None, None] + off[None, :, None]
    ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    np.add.at(flat_image, (py * nx + px)[ok], stamp[ok])
