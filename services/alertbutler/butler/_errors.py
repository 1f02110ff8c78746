"""Every error the butler raises, in one place.

Each mixes in the stdlib meaning (``LookupError``, ``ValueError``, ``TypeError``) so callers
that know nothing of the butler can still catch them sensibly, and each message names the
offending dataset type, key, value, file or collection.
"""

from __future__ import annotations

from alertbutler.errors import AlertbutlerError


class ButlerError(AlertbutlerError):
    """Base of all butler errors."""


class MissingDatasetTypeError(ButlerError, LookupError):
    """A dataset type name is not registered in this repository."""


class ConflictingDefinitionError(ButlerError, ValueError):
    """Something is being registered again with a different definition."""


class DataIdError(ButlerError, ValueError):
    """A data ID has missing, extra, wrongly-typed or unsafe values."""


class DatasetNotFoundError(ButlerError, LookupError):
    """No dataset matches the dataset type, data ID and collections asked for."""


class DatasetExistsError(ButlerError, ValueError):
    """A dataset with this type and data ID already exists in the run (or this id exists)."""


class MissingCollectionError(ButlerError, LookupError):
    """A collection name is not registered."""


class CollectionTypeError(ButlerError, TypeError):
    """An operation needs a collection of another type (e.g. certify into a RUN)."""


class CalibrationOverlapError(ButlerError, ValueError):
    """A certification would make two validity ranges overlap for one type and data ID."""


class StorageClassError(ButlerError, TypeError):
    """Unknown storage class, unsupported python type, component or read parameter."""


class FormatterError(ButlerError, ValueError):
    """No formatter for a (format, storage class), or a clash when registering one."""


class ChecksumError(ButlerError, OSError):
    """A stored artifact no longer matches the checksum or size recorded when written."""


class UnsafePathError(ButlerError, ValueError):
    """A file name built from a data ID or run would land outside the repository root."""


class LinkRefusedError(UnsafePathError):
    """A tree the butler did not write (an export) holds a symbolic link or a special file."""


class ManifestError(ButlerError, ValueError):
    """An export manifest that is malformed; the message names the key or entry."""


class IngestError(ButlerError, ValueError):
    """An external file cannot be ingested; the message names the file and the reason."""


class SchemaVersionError(ButlerError, RuntimeError):
    """The repository's registry schema version is not one this code can open."""


class RepositoryError(ButlerError, RuntimeError):
    """A repository cannot be created or opened (missing, already exists, bad config)."""
