"""PSF matching and image subtraction (Alard & Lupton 1998, spatially constant, "lite").

The template, sharper than the science exposure, is convolved with a kernel that is a linear
combination of Gaussians times polynomials, fitted by weighted least squares on stamps around
bright sources, with a differential background. Sources that do not subtract (variables,
transients, blends) are clipped by their stamp chi^2 and the fit repeated. The kernel's sum
is the photometric scale from template flux (nJy) to science counts, so it also calibrates
the difference image. The difference's variance is the science variance plus the template
variance convolved with the squared kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from alertbutler.imaging.errors import PsfError
from alertbutler.imaging.exposure import Exposure, Mask

#: basis Gaussians (in units of the matching sigma) and their polynomial degrees; the widest
#: one matches the PSF wings, whose width difference grows with the seeing difference
_DEGREES = (4, 3, 2, 1)
_WIDTHS = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class MatchingKernel:
    kernel: np.ndarray
    background: float
    n_stamps: int
    chi2: float
    #: a fallback: fitted from fewer stamps than ``min_stamps`` (or, set by
    #: ``pipeline.match_kernel``, from stamps of fainter sources)
    degraded: bool = False

    @property
    def scale(self) -> float:
        """Science counts per template unit (e-/nJy for a calibrated template)."""
        return float(self.kernel.sum())

    @property
    def half(self) -> int:
        return self.kernel.shape[0] // 2


def kernel_basis(half: int, match_sigma: float) -> np.ndarray:
    """(n, 2h+1, 2h+1) Gaussian x polynomial basis kernels."""
    off = np.arange(-half, half + 1, dtype=float)
    u, v = np.meshgrid(off, off)
    basis = []
    for width, degree in zip(_WIDTHS, _DEGREES, strict=True):
        sigma = max(0.5, width * match_sigma)
        g = np.exp(-0.5 * (u * u + v * v) / sigma**2)
        g /= g.sum()
        for i in range(degree + 1):
            for j in range(degree + 1 - i):
                basis.append(g * (u / half) ** i * (v / half) ** j)
    return np.array(basis)


#: the largest kernel half-width; templates are warped with this much padding
MAX_KERNEL_HALF = 24


def fit_matching_kernel(science: Exposure, template: np.ndarray, covered: np.ndarray,
                        xy: np.ndarray, *, science_sigma: float, template_sigma: float,
                        pad: int = 0, max_stamps: int = 60, min_stamps: int = 5,
                        min_stamps_fallback: int | None = None) -> MatchingKernel:
    """Fit the kernel K with template ⊗ K + b ≈ science around the sources ``xy`` (N, 2).

    ``template`` and ``covered`` may extend ``pad`` pixels beyond the science image. With
    fewer than ``min_stamps`` usable stamps but at least ``min_stamps_fallback`` (when given),
    the kernel is still fitted, and marked ``degraded``: the same basis (a reduced one, with
    11 terms instead of 34, left three times the false detections on the default night
    when fitted from 4 stamps; the full one no more than from 20), but a flux scale from
    few stamps, which one variable among them moves.
    """
    floor = min(min_stamps, min_stamps_fallback or min_stamps)
    match_sigma = math.sqrt(max(science_sigma**2 - template_sigma**2, 0.16))
    half = int(np.clip(math.ceil(3.0 * _WIDTHS[-1] * match_sigma), 6, MAX_KERNEL_HALF))
    s = int(max(half + 8, math.ceil(6.0 * science_sigma)))
    basis = kernel_basis(half, match_sigma)
    ny, nx = science.shape
    edge = s + half + 1
    sci_stamps, var_stamps, tmpl_stamps = [], [], []
    for x, y in xy:
        ix, iy = round(x), round(y)
        if not (edge <= ix < nx - edge and edge <= iy < ny - edge):
            continue
        sl = np.s_[iy - s: iy + s + 1, ix - s: ix + s + 1]
        big = np.s_[iy + pad - s - half: iy + pad + s + half + 1,
                    ix + pad - s - half: ix + pad + s + half + 1]
        if not covered[big].all() or (science.mask[sl] & (Mask.SAT | Mask.NO_DATA)).any():
            continue
        sci_stamps.append(science.image[sl])
        v = science.variance[sl].astype(float).copy()
        v[(science.mask[sl] & (Mask.BAD | Mask.CR)) != 0] = np.inf
        var_stamps.append(v)
        tmpl_stamps.append(template[big])
        if len(sci_stamps) >= 3 * max_stamps:
            break
    # Kernel candidates must be in the template: a bright transient or asteroid has no
    # counterpart there, and at the peak of a night they can be a third of the bright
    # sources, too many for chi^2 clipping or a median. Static sources share one
    # science/template flux ratio while the others scatter: keep the stamps near the ratio
    # most stamps agree with (the mode).
    if len(sci_stamps) >= floor:
        ap_s0 = np.array([st.sum() - np.median(st) * st.size for st in sci_stamps])
        ap_t0 = np.array([t[half:-half, half:-half].sum() for t in tmpl_stamps])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio0 = ap_s0 / ap_t0
        finite = (ap_t0 > 0) & np.isfinite(ratio0) & (ratio0 > 0)
        if finite.sum() >= floor:
            r = ratio0[finite]
            support = (np.abs(r[:, None] / r[None, :] - 1) < 0.1).sum(axis=1)
            mode = float(np.median(r[support == support.max()]))
            good = np.nonzero(finite & (np.abs(ratio0 / mode - 1) < 0.2))[0][:max_stamps]
            sci_stamps = [sci_stamps[i] for i in good]
            var_stamps = [var_stamps[i] for i in good]
            tmpl_stamps = [tmpl_stamps[i] for i in good]
    if len(sci_stamps) < floor:
        raise PsfError(f"only {len(sci_stamps)} usable stamps for PSF matching "
                       f"(need {floor})")
    degraded = len(sci_stamps) < min_stamps
    if degraded:  # chi^2 clipping may still drop one of four
        min_stamps = floor
    sci = np.array(sci_stamps, float)
    wgt = 1.0 / np.sqrt(np.array(var_stamps))
    conv = _convolve_stamps(np.array(tmpl_stamps, float), basis)  # (N, nb, 2s+1, 2s+1)
    n, nb = conv.shape[:2]
    npix = sci[0].size
    # normal equations, accumulated per stamp once, so clipping iterations only re-sum them
    cw = (conv * wgt[:, None]).reshape(n, nb, npix)
    ww = wgt.reshape(n, npix)
    sw = (sci * wgt).reshape(n, npix)
    gram = np.einsum("nkp,nlp->nkl", cw, cw)
    cross = np.einsum("nkp,np->nk", cw, ww)
    wsum = np.einsum("np,np->n", ww, ww)
    rhs_k = np.einsum("nkp,np->nk", cw, sw)
    rhs_b = np.einsum("np,np->n", ww, sw)
    keep = np.ones(n, bool)
    # one sky offset per stamp: the science sky near a bright source is never exact, and a
    # shared offset would leak that error into the kernel's sum (the photometric scale)
    for _ in range(4):
        idx = np.nonzero(keep)[0]
        m = len(idx)
        mat = np.zeros((nb + m, nb + m))
        mat[:nb, :nb] = gram[idx].sum(axis=0)
        mat[:nb, nb:] = cross[idx].T
        mat[nb:, :nb] = cross[idx]
        mat[nb:, nb:] = np.diag(wsum[idx])
        rhs = np.concatenate([rhs_k[idx].sum(axis=0), rhs_b[idx]])
        coeff = np.linalg.lstsq(mat, rhs, rcond=None)[0]
        offsets = np.zeros(n)
        offsets[idx] = coeff[nb:]
        model = np.einsum("nkij,k->nij", conv, coeff[:nb]) + offsets[:, None, None]
        # stamps left out get their own best offset before judging them
        resid = sci - model
        out = ~keep
        if out.any():
            offsets[out] = (np.sum(resid[out] * wgt[out] ** 2, axis=(1, 2))
                            / np.maximum(wsum[out], 1e-30))
            resid[out] -= offsets[out, None, None]
        chi2 = np.sum((resid * wgt) ** 2, axis=(1, 2)) / npix
        med = np.median(chi2[keep])
        new_keep = chi2 < max(3.0 * med, med + 5 * 1.4826 * np.median(np.abs(chi2[keep] - med)))
        if new_keep.sum() < min_stamps or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    kernel = np.tensordot(coeff[:nb], basis, axes=1)
    # The least-squares amplitude leans on the stamps' cores and is pulled off by the wing
    # the finite kernel cannot reach (seen: ~1% at 1" seeing). The photometric scale is
    # instead the ratio of the stamps' total fluxes, science over template, which needs no
    # model; the kernel keeps its shape and takes that sum.
    tmpl_core = np.array(tmpl_stamps, float)[:, half:-half, half:-half]
    ap_t = tmpl_core.sum(axis=(1, 2))
    ap_s = (sci - offsets[:, None, None]).sum(axis=(1, 2))
    fitted = float(kernel.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ap_s / ap_t
    # only stamps the fit also explains: within 10% of the fitted scale (a transient or a
    # mover in a stamp has no template counterpart and an absurd ratio)
    usable = keep & (ap_t > 0) & np.isfinite(ratio) & (np.abs(ratio / fitted - 1) < 0.1)
    if usable.sum() >= min_stamps:
        kernel *= float(np.median(ratio[usable])) / fitted
    return MatchingKernel(kernel, float(np.median(offsets[keep])), int(keep.sum()),
                          float(np.median(chi2[keep])), degraded=degraded)


def _convolve_stamps(stamps: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """'valid' convolution of every stamp (N, L, L) with every basis kernel (nb, k, k).

    One forward FFT per stamp and per kernel and one inverse per pair; a 4-d
    ``fftconvolve`` would transform the broadcast (N x nb) inputs instead.
    """
    n, size = stamps.shape[0], stamps.shape[1]
    k = basis.shape[1]
    full = size + k - 1
    shape = (sp_fft.next_fast_len(full, True),) * 2
    fs = sp_fft.rfft2(stamps, s=shape)
    fb = sp_fft.rfft2(basis, s=shape)
    out = np.empty((n, basis.shape[0], size - k + 1, size - k + 1))
    for i in range(n):
        conv = sp_fft.irfft2(fs[i][None] * fb, s=shape)
        out[i] = conv[:, k - 1: size, k - 1: size]
    return out


def convolve_template(template: np.ndarray, variance: np.ndarray, covered: np.ndarray,
                      kernel: MatchingKernel, pad: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched image, matched variance, no-data mask) of the warped template, cropped by
    ``pad`` on every side back to the science grid."""
    k = kernel.kernel
    matched = fft_convolve(template, k)
    matched += np.float32(kernel.background)
    # the template's variance is smooth (sky-dominated, deep): scaling by sum(K^2) is what
    # a convolution with K^2 would give, at no cost
    matched_var = (variance * np.float32(np.sum(k * k))).astype(np.float32)
    if covered.all():
        nodata = np.zeros(template.shape, bool)
    else:
        nodata = ndimage.maximum_filter((~covered).astype(np.uint8), size=2 * kernel.half + 1) > 0
    if pad:
        crop = np.s_[pad:-pad, pad:-pad]
        matched, matched_var, nodata = matched[crop], matched_var[crop], nodata[crop]
    return matched, matched_var, nodata


def fft_convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'same'-size convolution in single precision through one real FFT pair."""
    ny, nx = image.shape
    kh, kw = kernel.shape
    shape = (sp_fft.next_fast_len(ny + kh - 1, True), sp_fft.next_fast_len(nx + kw - 1, True))
    fi = sp_fft.rfft2(image.astype(np.float32), s=shape)
    fi *= sp_fft.rfft2(kernel.astype(np.float32), s=shape)
    full = sp_fft.irfft2(fi, s=shape)
    return np.ascontiguousarray(full[kh // 2: kh // 2 + ny, kw // 2: kw // 2 + nx],
                                dtype=np.float32)


def subtract(science: Exposure, matched: np.ndarray, matched_var: np.ndarray,
             nodata: np.ndarray, kernel: MatchingKernel) -> Exposure:
    """The difference image (science units), calibrated in nJy through the kernel's sum."""
    mask = science.mask.copy()
    mask[nodata] |= Mask.NO_DATA
    diff = science.image - matched
    diff[nodata] = 0.0
    variance = science.variance + matched_var
    variance[nodata] = np.inf
    return Exposure(image=diff.astype(np.float32), variance=variance.astype(np.float32),
                    mask=mask, wcs=science.wcs, band=science.band,
                    photo_calib=1.0 / kernel.scale, psf=science.psf,
                    metadata={**science.metadata, "kernel_sum": kernel.scale,
                              "kernel_stamps": kernel.n_stamps, "kernel_chi2": kernel.chi2})
