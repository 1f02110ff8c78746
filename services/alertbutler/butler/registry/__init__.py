"""The registry: SQL tables of dataset types, collections, datasets and records."""

from .calibrations import Certification, certifications, certify, decertify
from .database import Database
from .queries import (
    AmbiguousCalibrationError,
    find_dataset,
    query_datasets,
    query_dimension_records,
)
from .registry import Registry, SqlBridge

__all__ = ["AmbiguousCalibrationError", "Certification", "Database", "Registry", "SqlBridge",
           "certifications", "certify", "decertify", "find_dataset", "query_datasets",
           "query_dimension_records"]
