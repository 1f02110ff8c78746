"""Detection on the difference image: matched filter, both polarities, 5 sigma.

With inverse-variance weights w (zero on masked pixels) and the PSF approximated by a
Gaussian of the same effective area, N = (D w) ⊗ P and Q = w ⊗ P^2 give at every pixel the
PSF-fit flux N/Q and its significance N/sqrt(Q): the optimal detection statistic that also
ignores masked pixels instead of smearing them. Above-threshold pixels are grouped into
footprints per polarity; each footprint gives one peak. A positive and a negative peak close
together are a dipole (misregistration or motion), kept once and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from alertbutler.imaging.exposure import UNUSABLE, Exposure


@dataclass(frozen=True)
class Detections:
    """Peaks found in a difference image (pixel coordinates, 0-based)."""

    x: np.ndarray
    y: np.ndarray
    snr: np.ndarray  # signed peak significance of the matched filter
    npix: np.ndarray  # footprint size
    dipole: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.x)


def matched_filter(diff: Exposure, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(significance map, usable-pixel mask) for a Gaussian PSF of width ``sigma`` pixels.

    Outside the image counts as no data (weight 0), so sources near the border are still
    found (and flagged at measurement).
    """
    good = ((diff.mask & UNUSABLE) == 0) & np.isfinite(diff.variance) & (diff.variance > 0)
    w = np.zeros(diff.shape, np.float32)
    np.divide(1.0, diff.variance, out=w, where=good)
    num = ndimage.gaussian_filter(np.where(good, diff.image, 0.0).astype(np.float32) * w,
                                  sigma, truncate=4.0, mode="constant")
    q = ndimage.gaussian_filter(w, sigma / np.sqrt(2.0), truncate=4.0, mode="constant")
    q /= np.float32(4 * np.pi * sigma**2)
    snr = np.zeros(diff.shape, np.float32)
    np.divide(num, np.sqrt(q), out=snr, where=q > 0)
    return snr, good


def coverage_at(good: np.ndarray, peaks: np.ndarray, sigma: float) -> np.ndarray:
    """Fraction of the PSF-squared weight on usable pixels around each peak (flat index);
    outside the image counts as usable (edge sources are flagged, not dropped)."""
    ny, nx = good.shape
    s = sigma / np.sqrt(2.0)
    h = int(np.ceil(4 * s))
    off = np.arange(-h, h + 1)
    g = np.exp(-0.5 * (off[:, None] ** 2 + off[None, :] ** 2) / s**2)
    g /= g.sum()
    out = np.empty(len(peaks))
    for i, (py, px) in enumerate(zip(*np.divmod(peaks, nx), strict=True)):
        yy, xx = py + off[:, None], px + off[None, :]
        inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        ok = np.where(inside, good[np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)], True)
        out[i] = float(np.sum(g[ok]))
    return out


def noise_scale(snr: np.ndarray, good: np.ndarray, sample: int = 400_000) -> float:
    """Robust standard deviation of the significance map over usable pixels.

    The variance plane ignores the correlation that resampling and convolution put in the
    template's noise (Rubin's ScaleVarianceTask corrects the same effect); the significance
    map's own scatter measures it, and dividing by it keeps 5 sigma meaning 5 sigma.
    """
    step = max(1, snr.size // sample)
    v = snr.reshape(-1)[::step][good.reshape(-1)[::step]]
    if v.size == 0:
        return 1.0
    q25, q75 = np.percentile(v, [25, 75])
    return float(max((q75 - q25) / 1.349, 1e-3))


def _peaks(snr: np.ndarray, above: np.ndarray, threshold: float, separation: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(flat index of each peak, size of its footprint).

    A footprint may hold several sources (two transients, a supernova and its neighbour):
    every local maximum above threshold that is the highest within ``separation`` pixels is
    a peak. The significance map is already PSF-smoothed, so noise rarely splits a source.
    """
    labels, n = ndimage.label(above)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, int)
    sizes = np.bincount(labels.reshape(-1), minlength=n + 1)
    ny, nx = snr.shape
    peaks, npix = [], []
    size = 2 * separation + 1
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        y0, y1 = max(sl[0].start - separation, 0), min(sl[0].stop + separation, ny)
        x0, x1 = max(sl[1].start - separation, 0), min(sl[1].stop + separation, nx)
        sub = snr[y0:y1, x0:x1]
        mine = labels[y0:y1, x0:x1] == lab
        local = (sub == ndimage.maximum_filter(sub, size=size)) & mine & (sub >= threshold)
        py, px = np.nonzero(local)
        if len(py) == 0:  # a plateau: take the maximum
            top_y, top_x = np.unravel_index(np.argmax(np.where(mine, sub, -np.inf)), sub.shape)
            py, px = np.atleast_1d(top_y), np.atleast_1d(top_x)
        elif len(py) > 1:
            py, px = _prominent(sub, py, px, threshold)
        peaks.append((py + y0) * nx + (px + x0))
        npix.append(np.full(len(py), sizes[lab]))
    return np.concatenate(peaks), np.concatenate(npix)


def _prominent(sub: np.ndarray, py: np.ndarray, px: np.ndarray, threshold: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the highest peak, and others only if a real dip separates them from every
    higher peak: bumps of noise in a bright source's wing are not sources."""
    order = np.argsort(-sub[py, px])
    py, px = py[order], px[order]
    keep = [0]
    t = np.linspace(0.0, 1.0, 24)
    for i in range(1, len(py)):
        value = sub[py[i], px[i]]
        separated = True
        for j in keep:
            ly = py[i] + t * (py[j] - py[i])
            lx = px[i] + t * (px[j] - px[i])
            dip = value - ndimage.map_coordinates(sub, [ly, lx], order=1).min()
            if dip < max(threshold, 0.3 * value):
                separated = False
                break
        if separated:
            keep.append(i)
    return py[keep], px[keep]


def detect(diff: Exposure, sigma: float, *, threshold: float = 5.0, min_coverage: float = 0.5,
           dipole_radius: float | None = None) -> Detections:
    """Peaks at |S/N| >= threshold whose PSF footprint is mostly unmasked."""
    snr, good = matched_filter(diff, sigma)
    scale = noise_scale(snr, good)
    snr /= np.float32(scale)
    diff.metadata["detection_noise_scale"] = scale
    _ny, nx = snr.shape
    xs, ys, vals, sizes = [], [], [], []
    for sign in (1.0, -1.0):
        # footprints first, then the peak's coverage: a masked column through a source must
        # not split it into two
        peaks, npix = _peaks(sign * snr, sign * snr >= threshold, threshold,
                             max(2, round(3.0 * sigma)))
        covered = coverage_at(good, peaks, sigma) >= min_coverage
        peaks, npix = peaks[covered], npix[covered]
        py, px = np.divmod(peaks, nx)
        xs.append(px)
        ys.append(py)
        vals.append(snr.reshape(-1)[peaks])
        sizes.append(npix)
    x = np.concatenate(xs).astype(float)
    y = np.concatenate(ys).astype(float)
    val = np.concatenate(vals).astype(float)
    npix_arr = np.concatenate(sizes).astype(int)
    dipole = np.zeros(len(x), bool)
    radius = dipole_radius if dipole_radius is not None else 4.0 * sigma
    if len(x):
        pos, neg = np.nonzero(val > 0)[0], np.nonzero(val < 0)[0]
        if len(pos) and len(neg):
            d2 = (x[pos, None] - x[None, neg]) ** 2 + (y[pos, None] - y[None, neg]) ** 2
            close = d2 < radius**2
            dipole[pos[close.any(axis=1)]] = True
            dipole[neg[close.any(axis=0)]] = True
        # a dipole is reported once, at its stronger lobe
        drop = np.zeros(len(x), bool)
        for i in np.nonzero(dipole)[0]:
            partners = np.nonzero(dipole & (np.sign(val) != np.sign(val[i]))
                                  & ((x - x[i]) ** 2 + (y - y[i]) ** 2 < radius**2))[0]
            if len(partners) and np.abs(val[partners]).max() > abs(val[i]):
                drop[i] = True
        keep = ~drop
        x, y, val, npix_arr, dipole = x[keep], y[keep], val[keep], npix_arr[keep], dipole[keep]
    order = np.lexsort((x, y))
    return Detections(x[order], y[order], val[order], npix_arr[order], dipole[order])
