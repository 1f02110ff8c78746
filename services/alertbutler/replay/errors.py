"""Errors of the replay service, in one place.

Bad input is a ``ValueError`` that names the file (and, inside an archive, the member): an
operator must be able to act on one line. Problems of the broker or the pipeline during a
replay are ``RuntimeError``s.
"""

from __future__ import annotations

import os

from alertbutler.errors import AlertbutlerError


class ReplayError(AlertbutlerError):
    """Anything the replay service refuses or fails to do."""


class SourceError(ReplayError, ValueError):
    """A recording or alert archive that cannot be replayed; ``path`` names the file."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


class TruncatedArchiveError(SourceError):
    """A tarball or file that ends early (an interrupted download or copy)."""


class CorruptFileError(SourceError):
    """A file whose bytes are not what its format or its index says."""


class UnknownAlertSchemaError(SourceError):
    """An Avro file whose writer schema is neither ours, Rubin's nor ZTF-like."""


class RecordingError(SourceError):
    """A night recording that is incomplete or inconsistent with its manifest."""


class ChecksumMismatchError(RecordingError):
    """A file of a recording whose size or sha256 differs from the manifest."""


class MissingFileError(RecordingError):
    """A file the manifest lists (a raw, an export, alerts) is not in the recording."""


class RunNameError(ReplayError, ValueError):
    """A replay run name that is unsafe or would write into the recorded night's runs."""


class StreamError(ReplayError, RuntimeError):
    """Messages the broker did not acknowledge during a replay."""

    def __init__(self, message: str, *, delivered: int, failed: int) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.failed = failed
