"""The data butler: one door through which every part of alertbutler reads and writes data.

Public API (everything else is private to the package)::

    from alertbutler.butler import Butler, DatasetType, DataCoordinate, CollectionType, Timespan
"""

from ._errors import (
    ButlerError,
    CalibrationOverlapError,
    ChecksumError,
    CollectionTypeError,
    ConflictingDefinitionError,
    DataIdError,
    DatasetExistsError,
    DatasetNotFoundError,
    FormatterError,
    IngestError,
    LinkRefusedError,
    ManifestError,
    MissingCollectionError,
    MissingDatasetTypeError,
    RepositoryError,
    SchemaVersionError,
    StorageClassError,
    UnsafePathError,
)
from .builtin_storage import SOURCE_COLUMNS, RecordBatch
from .butler import Butler
from .collections import CollectionType
from .dataset_ref import DatasetRef, IdGenerationMode
from .dataset_type import DatasetType
from .datastores import (
    ChainedDatastore,
    Datastore,
    DatastoreBridge,
    DatastoreRecord,
    FileDatastore,
    InMemoryDatastore,
)
from .dimensions import UNIVERSE, DataCoordinate, DimensionRecord, DimensionUniverse
from .exposure import Exposure
from .formatters import FORMATTERS, Formatter, FormatterRegistry
from .ingest import IngestResult, RawMetadata
from .regions import HEALPIX_NSIDE, Circle, healpix_of
from .registry import AmbiguousCalibrationError, Certification
from .storage_classes import STORAGE_CLASSES, StorageClass, StorageClassRegistry
from .timespan import Timespan

__all__ = [
    "FORMATTERS",
    "HEALPIX_NSIDE",
    "SOURCE_COLUMNS",
    "STORAGE_CLASSES",
    "UNIVERSE",
    "AmbiguousCalibrationError",
    "Butler",
    "ButlerError",
    "CalibrationOverlapError",
    "Certification",
    "ChainedDatastore",
    "ChecksumError",
    "Circle",
    "CollectionType",
    "CollectionTypeError",
    "ConflictingDefinitionError",
    "DataCoordinate",
    "DataIdError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "DatasetRef",
    "DatasetType",
    "Datastore",
    "DatastoreBridge",
    "DatastoreRecord",
    "DimensionRecord",
    "DimensionUniverse",
    "Exposure",
    "FileDatastore",
    "Formatter",
    "FormatterError",
    "FormatterRegistry",
    "IdGenerationMode",
    "InMemoryDatastore",
    "IngestError",
    "IngestResult",
    "LinkRefusedError",
    "ManifestError",
    "MissingCollectionError",
    "MissingDatasetTypeError",
    "RawMetadata",
    "RecordBatch",
    "RepositoryError",
    "SchemaVersionError",
    "StorageClass",
    "StorageClassError",
    "StorageClassRegistry",
    "Timespan",
    "UnsafePathError",
    "healpix_of",
]
