"""Instrument signature removal: raw ADU to a flat-fielded image in electrons, with masks.

Order as in Rubin's IsrTask, reduced to a single-amplifier detector: saturation is flagged
on the raw ADU (before any arithmetic can hide it), then bias, dark scaled by the exposure's
dark time, gain, flat; defects become BAD. Variance is the Poisson term of the collected
charge plus read noise, divided by the flat as the image is. Cosmic rays are found by their
sharpness, which no PSF-convolved source can reach, and interpolated over for display.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from alertbutler.imaging.errors import IsrError
from alertbutler.imaging.exposure import Exposure, IsrCalibs, Mask

_REQUIRED = ("EXPTIME", "GAIN", "RDNOISE", "SATURATE")


def _header_float(header: fits.Header, key: str) -> float:
    if key not in header:
        raise IsrError(f"raw header lacks {key}")
    try:
        return float(header[key])
    except (TypeError, ValueError):
        raise IsrError(f"raw header {key}={header[key]!r} is not a number") from None


def run_isr(raw: np.ndarray, header: fits.Header, calibs: IsrCalibs, *,
            find_crs: bool = True) -> Exposure:
    """Calibrate one raw detector image; raises IsrError on any unusable input."""
    if raw.ndim != 2:
        raise IsrError(f"raw must be a 2-d image, got shape {raw.shape}")
    for name in ("bias", "dark", "flat", "defects"):
        shape = getattr(calibs, name).shape
        if shape != raw.shape:
            raise IsrError(f"{name} shape {shape} does not match raw shape {raw.shape}")
    values = {key: _header_float(header, key) for key in _REQUIRED}
    darktime = float(header.get("DARKTIME", values["EXPTIME"]))
    gain, read_noise = values["GAIN"], values["RDNOISE"]
    if gain <= 0:
        raise IsrError(f"raw header GAIN={gain} must be positive")
    try:
        wcs = WCS(header)
    except Exception as exc:  # astropy raises several types for a broken WCS
        raise IsrError(f"raw header WCS is unusable: {exc}") from None
    if not wcs.has_celestial:
        raise IsrError("raw header has no celestial WCS")

    data = np.asarray(raw, dtype=np.float32)
    mask = np.zeros(raw.shape, np.uint16)
    mask[data >= values["SATURATE"]] |= Mask.SAT
    flat = calibs.flat.astype(np.float32)
    bad_flat = ~(flat > 0.05)
    safe_flat = np.where(bad_flat, 1.0, flat).astype(np.float32)
    collected = (data - calibs.bias - calibs.dark * darktime) * np.float32(gain)
    image = collected / safe_flat
    # Variance from a model, not from each pixel's own noisy value (which would weight
    # downward fluctuations up and bias every weighted sum negative): the sky from block
    # medians, plus the charge of real sources where they clearly stand out.
    sky = np.maximum(_block_background(collected), 0.0)
    noise = np.sqrt(sky + np.float32(read_noise**2))
    excess = collected - sky
    source = np.where(excess > 3.0 * noise, excess, 0.0)
    variance = (sky + source + np.float32(read_noise**2)) / safe_flat**2
    mask[calibs.defects.astype(bool) | bad_flat] |= Mask.BAD
    if find_crs:
        crs = find_cosmic_rays(image, variance, mask, background=sky / safe_flat)
        mask[crs] |= Mask.CR
    interpolate_masked(image, mask, Mask.BAD | Mask.CR)
    exposure = Exposure(image=image.astype(np.float32), variance=variance.astype(np.float32),
                        mask=mask, wcs=wcs, band=str(header.get("BAND", "")),
                        metadata={k: header.get(k) for k in
                                  ("INSTRUME", "DETECTOR", "VISIT", "BAND", "MJD-OBS",
                                   "EXPTIME")})
    exposure.metadata["n_cosmic_ray_pixels"] = int(np.count_nonzero(mask & Mask.CR))
    return exposure


def _block_background(image: np.ndarray, block: int = 64) -> np.ndarray:
    """A coarse block-median background, enough to judge a pixel's excess."""
    ny, nx = image.shape
    by, bx = ny // block, nx // block
    if by == 0 or bx == 0:
        return np.full(image.shape, np.median(image), np.float32)
    # every 4th pixel of each block is plenty for a median, and 16 times cheaper
    core = image[: by * block: 4, : bx * block: 4].reshape(by, block // 4, bx, block // 4)
    med = np.median(core.transpose(0, 2, 1, 3).reshape(by, bx, -1), axis=2)
    full = np.repeat(np.repeat(med, block, 0), block, 1)
    return np.pad(full, ((0, ny - full.shape[0]), (0, nx - full.shape[1])), mode="edge")


def _fill_defects(image: np.ndarray, defects: np.ndarray, background: np.ndarray
                  ) -> np.ndarray:
    """A copy of the image with each defect pixel replaced by its good row neighbours' mean."""
    work = image.copy()
    dy, dx = np.nonzero(defects)
    if len(dy) == 0:
        return work
    nx = image.shape[1]
    total = np.zeros(len(dy))
    count = np.zeros(len(dy))
    for step in (-1, 1, -2, 2):
        xx = dx + step
        ok = (xx >= 0) & (xx < nx)
        xx = np.clip(xx, 0, nx - 1)
        ok &= ~defects[dy, xx]
        use = ok & (count == 0) if abs(step) == 2 else ok
        total += np.where(use, image[dy, xx], 0.0)
        count += use
    work[dy, dx] = np.where(count > 0, total / np.maximum(count, 1), background[dy, dx])
    return work


def find_cosmic_rays(image: np.ndarray, variance: np.ndarray, mask: np.ndarray, *,
                     background: np.ndarray | None = None, nsigma: float = 6.0,
                     sharpness: float = 1.4, grow_nsigma: float = 3.0) -> np.ndarray:
    """Boolean mask of cosmic-ray pixels.

    A seed pixel has a 4-neighbour Laplacian both significant and large compared with its
    excess over the background: a PSF-convolved star gives at most ~0.9 times its excess
    (for FWHM >= 3 pixels), a cosmic-ray point 4 and a line 2. Seeds grow into neighbouring
    pixels that are still significant and sharp, then by one pixel for the charge halo.
    """
    if background is None:
        background = _block_background(image)
    ny, nx = image.shape
    defects = (mask & Mask.BAD) != 0
    excess = image - background
    # only significant pixels can be cosmic rays: test the (few) candidates, not the image
    cand = np.nonzero((excess * excess > (nsigma * nsigma) * variance) & (excess > 0) & ~defects)
    cy, cx = cand
    # defects take the mean of their row neighbours, so a dead or hot column through a
    # star leaves the star's shape (and sharpness) as it was
    work = _fill_defects(image, defects, background)
    centre = work[cy, cx]
    # on the border the missing neighbour is the pixel itself (edge replication)
    nsum = (work[np.maximum(cy - 1, 0), cx] + work[np.minimum(cy + 1, ny - 1), cx]
            + work[cy, np.maximum(cx - 1, 0)] + work[cy, np.minimum(cx + 1, nx - 1)])
    lap = 4.0 * centre - nsum
    sig = np.sqrt(np.maximum(variance[cy, cx], 1e-6))
    is_seed = (lap > nsigma * sig * np.sqrt(20.0)) & (lap > sharpness * excess[cy, cx])
    seeds = np.zeros(image.shape, bool)
    seeds[cy[is_seed], cx[is_seed]] = True
    if not seeds.any():
        return seeds
    # no seeds next to saturation (a bleed trail's edge is sharp too)
    sy, sx = np.nonzero(seeds)
    near = np.zeros(len(sy), bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            yy, xx = np.clip(sy + dy, 0, ny - 1), np.clip(sx + dx, 0, nx - 1)
            near |= (mask[yy, xx] & Mask.SAT) != 0
    seeds[sy[near], sx[near]] = False
    result = np.zeros(image.shape, bool)
    labels, _ = ndimage.label(seeds, structure=np.ones((3, 3)))
    for sl in ndimage.find_objects(labels):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - 5, 0), min(sl[0].stop + 5, ny)
        x0, x1 = max(sl[1].start - 5, 0), min(sl[1].stop + 5, nx)
        box = np.s_[y0:y1, x0:x1]
        grown = seeds[box]
        # grow only into pixels that are significant AND still sharp (a track's fainter
        # end), never into the smooth profile of a star or transient under the cosmic ray
        sub = np.pad(work[box], 1, mode="edge")
        lap = (4 * sub[1:-1, 1:-1] - sub[:-2, 1:-1] - sub[2:, 1:-1]
               - sub[1:-1, :-2] - sub[1:-1, 2:])
        sig = np.sqrt(np.maximum(variance[box], 1e-6))
        candidates = (excess[box] > grow_nsigma * sig) & (lap > 0.5 * sharpness * excess[box])
        for _ in range(2):
            grown = ndimage.binary_dilation(grown) & (candidates | grown)
        result[box] |= ndimage.binary_dilation(grown)
    return result


def interpolate_masked(image: np.ndarray, mask: np.ndarray,
                       planes: int | np.unsignedinteger) -> None:
    """Replace masked pixels by their nearest unmasked pixel, region by region.

    Only cosmetic (cutouts, previews): every algorithm downstream ignores masked pixels.
    Working on each region's bounding box keeps this cheap on a 4k x 4k image.
    """
    bad = (mask & planes) != 0
    if not bad.any():
        return
    labels, _ = ndimage.label(bad)
    ny, nx = bad.shape
    for sl in ndimage.find_objects(labels):
        y0, y1 = max(sl[0].start - 2, 0), min(sl[0].stop + 2, ny)
        x0, x1 = max(sl[1].start - 2, 0), min(sl[1].stop + 2, nx)
        sub_bad = bad[y0:y1, x0:x1]
        if sub_bad.all():
            continue
        iy, ix = ndimage.distance_transform_edt(sub_bad, return_distances=False,
                                                return_indices=True)
        sub = image[y0:y1, x0:x1]
        sub[sub_bad] = sub[iy[sub_bad], ix[sub_bad]]
    mask[bad] |= Mask.INTRP
