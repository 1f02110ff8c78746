"""One detector-visit through every stage, with the seconds each stage took.

ISR -> background -> PSF -> template warp -> PSF matching -> difference -> detection ->
measurement -> forced photometry. The worker service wraps this with I/O (butler, Kafka);
the bench times it. Each stage is a plain function of the previous one's output, so a caller
can also run them one by one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from alertbutler.imaging.background import subtract_background
from alertbutler.imaging.detection import detect
from alertbutler.imaging.diffim import (
    MAX_KERNEL_HALF,
    MatchingKernel,
    convolve_template,
    fit_matching_kernel,
    subtract,
)
from alertbutler.imaging.errors import PsfError
from alertbutler.imaging.exposure import Exposure, IsrCalibs, Mask, TemplateImage
from alertbutler.imaging.forced import forced_photometry
from alertbutler.imaging.isr import run_isr
from alertbutler.imaging.measurement import measure
from alertbutler.imaging.psf import PsfModel, bright_sources, estimate_psf
from alertbutler.imaging.warp import warp_templates

STAGES = ("isr", "background", "psf", "warp", "match", "diff", "detect", "measure", "forced")


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    detection_threshold: float = 5.0
    background_box: int = 128
    #: radius (in PSF FWHM) around saturated pixels where detections are not trusted
    saturation_halo_fwhm: float = 4.0


@dataclass
class ProcessResult:
    calexp: Exposure
    difference: Exposure
    matched_template: np.ndarray
    psf: PsfModel
    kernel: MatchingKernel
    sources: Table
    forced: Table | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.timings.values()))


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _suspect_halo(exposure: Exposure, radius: float) -> None:
    """Mark the wings of saturated stars SUSPECT: their subtraction is never clean."""
    sat = (exposure.mask & Mask.SAT) != 0
    if not sat.any() or radius < 1:
        return
    r = int(np.ceil(radius))
    labels, _ = ndimage.label(sat)
    ny, nx = sat.shape
    for sl in ndimage.find_objects(labels):
        y0, y1 = max(sl[0].start - r, 0), min(sl[0].stop + r, ny)
        x0, x1 = max(sl[1].start - r, 0), min(sl[1].stop + r, nx)
        sub = sat[y0:y1, x0:x1]
        dist = ndimage.distance_transform_edt(~sub)
        exposure.mask[y0:y1, x0:x1][(dist <= radius) & ~sub] |= Mask.SUSPECT


#: per-pixel threshold (sigma) of the fainter kernel candidates looked for when even the
#: fallback's 3 bright stamps are not there (the bright list's is 15)
KERNEL_FAINT_NSIGMA = 5.0
#: the fewest stamps a fallback kernel is fitted from: with three, one transient or variable
#: among them is still outvoted when the flux scale is chosen
MIN_STAMPS_FALLBACK = 3


def match_kernel(calexp: Exposure, warped: np.ndarray, covered: np.ndarray,
                 objects: np.ndarray, *, science_sigma: float, template_sigma: float,
                 pad: int) -> MatchingKernel:
    """The PSF-matching kernel from stamps of the bright sources; with too few of them (a
    small or sparse detector), from 3-4 bright stamps, and only then from stamps of fainter
    sources too. The last two are fallbacks (``kernel.degraded``): the kernel's sum is the
    flux scale, and faint stamps make it noisier (seen: 5% off with six stamps where four
    bright ones gave 1%)."""
    def fit(found: np.ndarray, **kw: int) -> MatchingKernel:
        return fit_matching_kernel(calexp, warped, covered,
                                   np.column_stack([found["x"], found["y"]]),
                                   science_sigma=science_sigma, template_sigma=template_sigma,
                                   pad=pad, **kw)
    try:
        return fit(objects)
    except PsfError:
        pass
    try:
        return fit(objects, min_stamps_fallback=MIN_STAMPS_FALLBACK)
    except PsfError:
        fainter = bright_sources(calexp, nsigma=KERNEL_FAINT_NSIGMA)
        if len(fainter) <= len(objects):
            raise
    kernel = fit(fainter, min_stamps_fallback=MIN_STAMPS_FALLBACK)
    return dataclasses.replace(kernel, degraded=True)


def reported_seeing(header: fits.Header, exposure: Exposure) -> float | None:
    """The seeing FWHM (pixels) the raw's ``SEEING`` card reports (arcsec), if any: the PSF's
    last resort when the detector has no usable star."""
    try:
        arcsec = float(header.get("SEEING", math.nan))
    except (TypeError, ValueError):
        return None
    scale = float(np.sqrt(abs(np.linalg.det(exposure.wcs.pixel_scale_matrix)))) * 3600.0
    if not (math.isfinite(arcsec) and arcsec > 0 and math.isfinite(scale) and scale > 0):
        return None
    return arcsec / scale


def process_exposure(raw: np.ndarray, header: fits.Header, calibs: IsrCalibs,
                     templates: Sequence[TemplateImage], *,
                     known: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                     config: PipelineConfig | None = None) -> ProcessResult:
    """Run every stage on one raw; ``known`` = (ids, ra, dec) of DiaObjects to force-measure."""
    config = config or PipelineConfig()
    timer = _Timer()
    with timer.stage("isr"):
        calexp = run_isr(raw, header, calibs)
    with timer.stage("background"):
        subtract_background(calexp, box=config.background_box)
    with timer.stage("psf"):
        objects = bright_sources(calexp)
        psf = estimate_psf(calexp, objects, seeing_fwhm=reported_seeing(header, calexp))
        calexp.psf = psf
        _suspect_halo(calexp, config.saturation_halo_fwhm * psf.fwhm)
    with timer.stage("warp"):
        pad = MAX_KERNEL_HALF + 1
        warped, warped_var, covered = warp_templates(templates, calexp.wcs, calexp.shape,
                                                     pad=pad)
    with timer.stage("match"):
        crop = np.s_[pad:-pad, pad:-pad]
        template_exp = Exposure(
            image=warped[crop], variance=np.where(covered, warped_var, np.inf)[crop],
            mask=np.where(covered, 0, Mask.NO_DATA).astype(np.uint16)[crop], wcs=calexp.wcs)
        template_psf = estimate_psf(template_exp, objects, min_stars=3)
        kernel = match_kernel(calexp, warped, covered, objects, science_sigma=psf.sigma,
                              template_sigma=template_psf.sigma, pad=pad)
        matched, matched_var, nodata = convolve_template(warped, warped_var, covered, kernel,
                                                         pad=pad)
    with timer.stage("diff"):
        diff = subtract(calexp, matched, matched_var, nodata, kernel)
        calexp.photo_calib = diff.photo_calib
        # the science sky estimate swallowed some faint galaxy light that the template keeps;
        # on the difference that error is all that is left of the sky, so measure it there
        diff.metadata["difference_background_mean"] = subtract_background(
            diff, box=config.background_box)
    with timer.stage("detect"):
        detections = detect(diff, psf.sigma, threshold=config.detection_threshold)
    with timer.stage("measure"):
        sources = measure(diff, detections, psf, science=calexp)
    forced = None
    with timer.stage("forced"):
        if known is not None:
            ids, ra, dec = known
            forced = forced_photometry(diff, psf, ra, dec, ids)
    return ProcessResult(calexp=calexp, difference=diff, matched_template=matched, psf=psf,
                         kernel=kernel, sources=sources, forced=forced,
                         timings=timer.timings)
