"""The package's public surface is pinned: adding or removing a name is a visible change."""

from __future__ import annotations

import alertbutler.butler as butler

EXPECTED = {
    "AmbiguousCalibrationError", "Butler", "ButlerError", "CalibrationOverlapError",
    "Certification", "ChainedDatastore", "ChecksumError", "Circle", "CollectionType",
    "CollectionTypeError", "ConflictingDefinitionError", "DataCoordinate", "DataIdError",
    "DatasetExistsError", "DatasetNotFoundError", "DatasetRef", "DatasetType", "Datastore",
    "DatastoreBridge", "DatastoreRecord", "DimensionRecord", "DimensionUniverse", "Exposure",
    "FORMATTERS", "FileDatastore", "Formatter", "FormatterError", "FormatterRegistry",
    "HEALPIX_NSIDE", "IdGenerationMode", "InMemoryDatastore", "IngestError", "IngestResult",
    "LinkRefusedError", "ManifestError",
    "MissingCollectionError", "MissingDatasetTypeError", "RawMetadata", "RecordBatch",
    "RepositoryError", "SOURCE_COLUMNS", "STORAGE_CLASSES", "SchemaVersionError",
    "StorageClass", "StorageClassError", "StorageClassRegistry", "Timespan", "UNIVERSE",
    "UnsafePathError", "healpix_of",
}


def test_all_is_pinned_and_importable() -> None:
    assert set(butler.__all__) == EXPECTED
    for name in butler.__all__:
        assert getattr(butler, name) is not None


def test_errors_carry_stdlib_meaning() -> None:
    assert issubclass(butler.MissingDatasetTypeError, LookupError)
    assert issubclass(butler.DatasetNotFoundError, LookupError)
    assert issubclass(butler.DataIdError, ValueError)
    assert issubclass(butler.ChecksumError, OSError)
    assert all(issubclass(getattr(butler, n), butler.ButlerError)
               for n in butler.__all__ if n.endswith("Error") and n != "ButlerError")
