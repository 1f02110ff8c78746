"""Pixel algorithms of prompt processing, in numpy/scipy/astropy/sep.

ISR -> background -> PSF -> template warp -> PSF matching -> difference -> detection ->
measurement -> forced photometry; ``process_exposure`` runs them all and times each stage.
Images are in electrons, catalogs in nJy (calibrated through the template).
"""

from alertbutler.imaging.background import estimate_background, subtract_background
from alertbutler.imaging.detection import Detections, detect
from alertbutler.imaging.diffim import (
    MatchingKernel,
    convolve_template,
    fit_matching_kernel,
    subtract,
)
from alertbutler.imaging.errors import ImagingError, IsrError, PsfError, WarpError
from alertbutler.imaging.exposure import UNUSABLE, Exposure, IsrCalibs, Mask, TemplateImage
from alertbutler.imaging.forced import forced_photometry
from alertbutler.imaging.isr import find_cosmic_rays, run_isr
from alertbutler.imaging.measurement import FLAG_COLUMNS, measure, psf_flux
from alertbutler.imaging.pipeline import (
    STAGES,
    PipelineConfig,
    ProcessResult,
    process_exposure,
)
from alertbutler.imaging.psf import PSF_KINDS, PsfModel, bright_sources, estimate_psf
from alertbutler.imaging.warp import warp_templates

__all__ = [
    "FLAG_COLUMNS",
    "PSF_KINDS",
    "STAGES",
    "UNUSABLE",
    "Detections",
    "Exposure",
    "ImagingError",
    "IsrCalibs",
    "IsrError",
    "Mask",
    "MatchingKernel",
    "PipelineConfig",
    "ProcessResult",
    "PsfError",
    "PsfModel",
    "TemplateImage",
    "WarpError",
    "bright_sources",
    "convolve_template",
    "detect",
    "estimate_background",
    "estimate_psf",
    "find_cosmic_rays",
    "fit_matching_kernel",
    "forced_photometry",
    "measure",
    "process_exposure",
    "psf_flux",
    "run_isr",
    "subtract",
    "subtract_background",
    "warp_templates",
]
