"""PSF model: an empirical pixel stamp stacked from bright, isolated, unsaturated stars.

A pixelized model (like PSFEx's at native sampling) needs no assumption about the profile's
shape, so the core and the wings are both right for PSF photometry. Each star is centred by
its windowed centroid and shifted with a cubic spline before a median stack; evaluating the
model at a sub-pixel position shifts it back the same way. The model is constant over a
detector, which is enough for a detector-size PSF that varies slowly.

A small detector may have too few stars for a stack. Rather than give up on the whole
visit-detector, the estimate degrades: a Moffat profile fitted to the stars there are, or,
with none, a Moffat of the seeing the exposure reports (:mod:`.moffat`). The model says which
it is (``kind``), so that every product made with it can be flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sep
from scipy import ndimage

from alertbutler.imaging.errors import PsfError
from alertbutler.imaging.exposure import Exposure, Mask
from alertbutler.imaging.moffat import MoffatShape, fit_moffat, moffat_stamp

#: how a PSF model was made, best first: a median stack of at least ``min_stars`` stars; a
#: Moffat profile fitted to fewer stars; a round Moffat of the reported seeing (no star)
PSF_KINDS = ("empirical", "moffat", "seeing")


@dataclass(frozen=True)
class PsfModel:
    """A normalized (sum 1), centred, odd-sized PSF stamp."""

    stamp: np.ndarray
    n_stars: int = 0
    #: aperture flux / PSF-fit flux of the PSF stars: makes PSF fluxes total fluxes even
    #: though the stacked model is slightly broadened by the centring interpolation
    aperture_correction: float = 1.0
    #: one of :data:`PSF_KINDS`
    kind: str = "empirical"

    @property
    def degraded(self) -> bool:
        """A fallback model: fewer stars than a stack needs (flagged in metrics and alerts)."""
        return self.kind != "empirical"

    @property
    def half(self) -> int:
        return self.stamp.shape[0] // 2

    @property
    def n_eff(self) -> float:
        """Effective number of pixels: var(PSF flux) = n_eff * pixel variance."""
        return float(1.0 / np.sum(self.stamp**2))

    @property
    def sigma(self) -> float:
        """Width of the Gaussian with the same n_eff (pixels): for matched filtering."""
        return math.sqrt(self.n_eff / (4 * math.pi))

    @property
    def fwhm(self) -> float:
        return 2.3548 * self.sigma

    @cached_property
    def _coefficients(self) -> np.ndarray:
        # spline prefilter once: every later shift is then only the 16-tap evaluation
        return ndimage.spline_filter(np.pad(self.stamp, 3), order=3, mode="constant")

    def at(self, dx: float, dy: float) -> np.ndarray:
        """The stamp for a source offset (dx, dy) pixels from the stamp's central pixel."""
        if abs(dx) < 1e-3 and abs(dy) < 1e-3:
            return self.stamp
        shifted = ndimage.shift(self._coefficients, (dy, dx), order=3, mode="constant",
                                cval=0.0, prefilter=False)[3:-3, 3:-3]
        return shifted / shifted.sum()

    def moments(self) -> tuple[float, float, float]:
        return second_moments(self.stamp, self.sigma)


def second_moments(stamp: np.ndarray, weight_sigma: float) -> tuple[float, float, float]:
    """Gaussian-weighted second moments (Ixx, Iyy, Ixy) about the stamp centre, pixels^2."""
    h = stamp.shape[0] // 2
    off = np.arange(-h, h + 1, dtype=float)
    w = np.exp(-0.5 * (off[None, :] ** 2 + off[:, None] ** 2) / weight_sigma**2) * stamp
    total = w.sum()
    if total <= 0:
        return math.nan, math.nan, math.nan
    ixx = float(np.sum(w * off[None, :] ** 2) / total)
    iyy = float(np.sum(w * off[:, None] ** 2) / total)
    ixy = float(np.sum(w * off[None, :] * off[:, None]) / total)
    return ixx, iyy, ixy


def bright_sources(exposure: Exposure, *, nsigma: float = 15.0, max_sources: int = 400
                   ) -> np.ndarray:
    """sep objects (structured array) well above the noise, brightest first."""
    image = np.ascontiguousarray(exposure.image, dtype=np.float32)
    err = float(np.sqrt(np.median(exposure.variance)))
    bad = np.ascontiguousarray((exposure.mask & (Mask.BAD | Mask.CR | Mask.NO_DATA)) != 0)
    sep.set_extract_pixstack(2_000_000)
    objects = sep.extract(image, nsigma, err=err, mask=bad, minarea=9, deblend_cont=1.0,
                          filter_kernel=None, clean=False)
    order = np.argsort(-objects["flux"])
    return objects[order][:max_sources]


def select_psf_stars(exposure: Exposure, objects: np.ndarray, half: int,
                     max_stars: int = 80) -> np.ndarray:
    """Indices of objects usable as PSF stars: compact, isolated, clean, inside the image."""
    ny, nx = exposure.shape
    x, y = objects["x"], objects["y"]
    size = np.sqrt(objects["a"] * objects["b"])
    inside = (x > half + 2) & (x < nx - half - 3) & (y > half + 2) & (y < ny - half - 3)
    # isolation: no other detected object within the stamp
    d2 = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2
    np.fill_diagonal(d2, np.inf)
    isolated = d2.min(axis=1) > half**2
    clean = np.array([
        not np.any(exposure.mask[round(yy) - half: round(yy) + half + 1,
                                 round(xx) - half: round(xx) + half + 1]
                   & (Mask.SAT | Mask.BAD | Mask.CR | Mask.NO_DATA))
        if ok else False for xx, yy, ok in zip(x, y, inside, strict=True)])
    good = inside & isolated & clean & (objects["flag"] == 0)
    if good.sum() < 3:
        return np.nonzero(good)[0]
    # the stellar locus: the compact end of the size distribution
    locus = np.percentile(size[good], 25)
    good &= np.abs(size - locus) < 0.2 * locus
    return np.nonzero(good)[0][:max_stars]


def _ring_median(stamp: np.ndarray, width: int = 2) -> float:
    """Median of the stamp's outer ring: the local sky offset around a star."""
    ring = np.ones(stamp.shape, bool)
    ring[width:-width, width:-width] = False
    return float(np.median(stamp[ring]))


def estimate_psf(exposure: Exposure, objects: np.ndarray | None = None, *,
                 min_stars: int = 5, seeing_fwhm: float | None = None) -> PsfModel:
    """The PSF of ``exposure``, as well as its stars allow (see :data:`PSF_KINDS`).

    ``min_stars`` or more stars: their median stack, the stamp growing with the seeing to keep
    the wings. One to ``min_stars - 1``: a Moffat profile fitted to them. None, and
    ``seeing_fwhm`` (pixels) given: a round Moffat of that FWHM. Otherwise a ``PsfError``.
    """
    if objects is None:
        objects = bright_sources(exposure)
    fallback = seeing_fwhm if seeing_fwhm is not None and math.isfinite(seeing_fwhm) \
        and seeing_fwhm > 0 else None
    if len(objects):
        rough_sigma = float(np.median(np.sqrt(objects["a"] * objects["b"])))
    elif fallback is not None:
        rough_sigma = fallback / 2.3548
    else:
        raise PsfError("no bright sources to model the PSF")
    half = int(np.clip(math.ceil(10.0 * rough_sigma), 12, 30))
    idx = select_psf_stars(exposure, objects, half) if len(objects) else np.zeros(0, int)
    image = np.ascontiguousarray(exposure.image, dtype=np.float32)
    stamps, weights, kept = _centred_stamps(exposure, image, objects, idx, half, rough_sigma)
    off = np.arange(-half, half + 1)
    r = np.hypot(off[None, :], off[:, None])
    # the far wing is noise-dominated: taper it smoothly to zero at the stamp edge
    taper = np.clip((half + 0.5 - r) / 3.0, 0.0, 1.0)
    if len(stamps) >= min_stars:
        kind, stack = "empirical", np.median(np.array(stamps), axis=0)
    elif stamps:
        kind = "moffat"
        stack = moffat_stamp(half, fit_moffat(stamps, weights, fwhm_guess=2.3548 * rough_sigma))
    elif fallback is not None:
        kind, stack = "seeing", moffat_stamp(half, MoffatShape(fallback))
    else:
        raise PsfError(f"only {len(idx)} usable PSF stars (need {min_stars}), "
                       f"{len(stamps)} after centring, and no seeing to fall back on")
    stack = stack * taper
    stack /= stack.sum()
    model = PsfModel(stack, n_stars=len(stamps), kind=kind)
    apcorr = _aperture_correction(exposure, image, model, kept, taper)
    return PsfModel(stack, n_stars=len(stamps), aperture_correction=apcorr, kind=kind)


def _centred_stamps(exposure: Exposure, image: np.ndarray, objects: np.ndarray,
                    idx: np.ndarray, half: int, rough_sigma: float
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, float]]]:
    """(sum-1 stamps centred by spline shifts, their inverse variances, star centres)."""
    if len(idx) == 0:
        return [], [], []
    xs, ys, _ = sep.winpos(image, objects["x"][idx], objects["y"][idx],
                           np.full(len(idx), rough_sigma))
    stamps, weights, kept = [], [], []
    ny, nx = image.shape
    for xc, yc in zip(xs, ys, strict=True):
        if not (np.isfinite(xc) and np.isfinite(yc)):
            continue
        ix, iy = round(xc), round(yc)
        # the refined centre can move a star's stamp off the image: skip it, never pad it
        if iy - half - 2 < 0 or ix - half - 2 < 0 or iy + half + 3 > ny or ix + half + 3 > nx:
            continue
        big = image[iy - half - 2: iy + half + 3, ix - half - 2: ix + half + 3].astype(float)
        centred = ndimage.shift(big, (iy - yc, ix - xc), order=3, mode="nearest")[2:-2, 2:-2]
        centred -= _ring_median(centred)
        total = centred.sum()
        if total > 0:
            var = exposure.variance[iy - half: iy + half + 1, ix - half: ix + half + 1]
            stamps.append(centred / total)
            weights.append(np.where(var > 0, total**2 / np.maximum(var, 1e-12), 0.0))
            kept.append((xc, yc))
    return stamps, weights, kept


def _aperture_correction(exposure: Exposure, image: np.ndarray, model: PsfModel,
                         kept: list[tuple[float, float]], taper: np.ndarray) -> float:
    """The stamp-sized aperture flux over the PSF-fit flux, median over the stars (only the
    stars stacked: the others may have no full stamp inside the image); 1 without stars."""
    half = model.half
    ratios = []
    for xc, yc in kept:
        ix, iy = round(xc), round(yc)
        data = image[iy - half: iy + half + 1, ix - half: ix + half + 1].astype(float)
        var = exposure.variance[iy - half: iy + half + 1, ix - half: ix + half + 1]
        p = model.at(xc - ix, yc - iy)
        w = 1.0 / np.maximum(var, 1e-6)
        if model.degraded:
            # a parametric profile misses part of the wings, and a sky offset fitted with it
            # would swallow them (2% of the flux): take the sky from the stamp's rim instead
            offset = _ring_median(data)
            fit = float(np.sum(w * p * (data - offset)) / np.sum(w * p * p))
        else:
            # flux and a local sky offset together: the sky near a bright star is never
            # perfect, and the stacked model has the stars' own wings
            a = np.array([[np.sum(w * p * p), np.sum(w * p)], [np.sum(w * p), np.sum(w)]])
            b = np.array([np.sum(w * p * data), np.sum(w * data)])
            fit, offset = np.linalg.solve(a, b)
        aperture = np.sum((data - offset) * taper)
        if fit > 0:
            ratios.append(aperture / fit)
    return float(np.median(ratios)) if ratios else 1.0
