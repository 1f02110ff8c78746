"""Errors of the prompt-processing service, with their policy.

A ``VisitDetectorError`` is about the input of one visit-detector (a corrupt raw, a raw that
never came, an unknown detector): retrying will not help, so the worker records it, marks the
visit-detector done with no alerts and goes on. Anything else that escapes the processing of a
work item (Kafka down, a full disk) is not the input's fault: the item is not committed, so it
is processed again.
"""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class PromptError(AlertbutlerError, RuntimeError):
    """Base of prompt-processing errors."""


class BadEventError(PromptError, ValueError):
    """A nextVisit event or work item that cannot be used as it is."""


class VisitDetectorError(PromptError):
    """One visit-detector cannot be processed because of its input; the message says why."""

    #: short machine-readable reason, e.g. ``raw-timeout``
    reason = "bad-input"

    def __init__(self, message: str, *, visit: int | None = None,
                 detector: int | None = None) -> None:
        super().__init__(message)
        self.visit = visit
        self.detector = detector


class UnknownDetectorError(VisitDetectorError):
    """The event names a detector the instrument does not have."""

    reason = "unknown-detector"


class RawTimeoutError(VisitDetectorError):
    """The raw did not arrive within the configured time."""

    reason = "raw-timeout"


class CorruptRawError(VisitDetectorError):
    """The raw arrived but is not a readable FITS file of the expected shape."""

    reason = "corrupt-raw"


class MissingInputError(VisitDetectorError):
    """A calibration or template the visit-detector needs is not in the central repo."""

    reason = "missing-input"


class ImagingFailedError(VisitDetectorError):
    """The pixels could not be processed (too few PSF stars, no template overlap, ...)."""

    reason = "imaging-failed"
