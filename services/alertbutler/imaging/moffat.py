"""A Moffat PSF: the fallback when too few stars make an empirical stamp.

A median stack needs several stars to reject a neighbour or a cosmic ray and to beat down
the noise of its wings; a small detector, or a sparse field, may hold only one to four bright
isolated stars. A Moffat profile (Moffat 1969) describes a seeing-limited PSF with four
numbers (core width, wing slope beta, ellipticity e1, e2), which even one bright star pins
down. With no star at all, the seeing reported for the exposure fixes the width, beta takes
a typical value and the profile is round: the last resort, which the caller must flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

#: beta for a PSF known only by its FWHM: the Moffat closest to a seeing profile of
#: Kolmogorov turbulence (Trujillo et al. 2001); fits to the simulated camera's stars give 5-6
DEFAULT_BETA = 4.765

#: each pixel is integrated on a grid of this many sub-pixels per side
_OVERSAMPLE = 3


@dataclass(frozen=True)
class MoffatShape:
    """A Moffat profile's shape: FWHM (pixels, geometric mean of the axes), beta, e1, e2."""

    fwhm: float
    beta: float = DEFAULT_BETA
    e1: float = 0.0
    e2: float = 0.0


def moffat_stamp(half: int, shape: MoffatShape) -> np.ndarray:
    """The profile integrated over the pixels of a (2h+1)^2 stamp centred on its middle
    pixel, normalized to sum 1."""
    n = 2 * half + 1
    sub = (np.arange(n * _OVERSAMPLE) + 0.5) / _OVERSAMPLE - 0.5 - half
    u, v = np.meshgrid(sub, sub)
    e1, e2 = shape.e1, shape.e2
    det = max(1.0 - e1 * e1 - e2 * e2, 1e-6)
    # the quadratic form of an ellipse with the same area as the round profile
    r2 = ((1.0 - e1) * u * u - 2.0 * e2 * u * v + (1.0 + e1) * v * v) / math.sqrt(det)
    alpha = shape.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / shape.beta) - 1.0))
    fine = (1.0 + r2 / alpha**2) ** (-shape.beta)
    stamp = fine.reshape(n, _OVERSAMPLE, n, _OVERSAMPLE).mean(axis=(1, 3))
    return stamp / stamp.sum()


def fit_moffat(stamps: Sequence[np.ndarray], weights: Sequence[np.ndarray], *,
               fwhm_guess: float, beta: float | None = DEFAULT_BETA) -> MoffatShape:
    """The shape that best fits star stamps centred on their middle pixel.

    Each star has its own flux and sky offset (solved linearly inside the fit), so only the
    shape is searched: FWHM and ellipticity, and beta only when ``beta`` is None. A few
    stars of modest S/N do not pin beta down (seen: 1.4 to 8 from three stars of one
    exposure, PSF fluxes 5-9% off), so by default it stays fixed. Pixels of weight 0
    (masked) do not count.
    """
    data = np.array(stamps, float)
    w = np.sqrt(np.array(weights, float))
    half = data.shape[1] // 2

    def residuals(p: np.ndarray) -> np.ndarray:
        model = moffat_stamp(half, MoffatShape(p[0], p[1] if beta is None else beta, p[2],
                                               p[3]))
        out = []
        for img, wi in zip(data, w, strict=True):
            basis = np.stack([model.ravel(), np.ones(model.size)]) * wi.ravel()
            coef = np.linalg.lstsq(basis.T, img.ravel() * wi.ravel(), rcond=None)[0]
            out.append(img.ravel() * wi.ravel() - coef @ basis)
        return np.concatenate(out)

    start = np.array([max(fwhm_guess, 1.0), beta or DEFAULT_BETA, 0.0, 0.0])
    lower = np.array([0.8, 1.2, -0.4, -0.4])
    upper = np.array([max(4.0 * half / 3.0, 2.0), 12.0, 0.4, 0.4])
    if beta is not None:  # a fixed beta: a degenerate bound least_squares accepts
        lower[1], upper[1] = beta, np.nextafter(beta, np.inf)
    fit = optimize.least_squares(residuals, np.clip(start, lower, upper), bounds=(lower, upper),
                                 x_scale=np.array([1.0, 1.0, 0.1, 0.1]))
    p = fit.x
    return MoffatShape(float(p[0]), float(p[1] if beta is None else beta), float(p[2]),
                       float(p[3]))
