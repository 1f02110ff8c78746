"""Errors of the pixel algorithms. Each says what input was wrong, for the worker to record."""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class ImagingError(AlertbutlerError, ValueError):
    """Base of the imaging errors: input that cannot be processed (not a transient fault)."""


class IsrError(ImagingError):
    """A raw or calibration is unusable: missing header key, wrong shape, wrong detector."""


class PsfError(ImagingError):
    """Too few usable stars to model the PSF or fit a matching kernel."""


class WarpError(ImagingError):
    """The templates do not cover the science exposure or their WCS cannot be used."""
