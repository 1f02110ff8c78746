"""Catalog formatters: FITS binary tables and Parquet, both read back as astropy Tables.

Parquet reads only the requested ``columns``; FITS reads the table memory-mapped and
selects them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import Formatter


def _as_table(obj: Any) -> Any:
    from astropy.table import Table

    return obj if isinstance(obj, Table) else Table(obj)


class FitsTableFormatter(Formatter):
    format = "fits"
    extension = ".fits"
    direct_parameters = frozenset({"columns"})

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        _as_table(obj).write(path, format="fits", overwrite=True)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        from astropy.table import Table
        from astropy.units import UnitsWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnitsWarning)
            table = Table.read(path, format="fits", memmap=bool(parameters))
        if parameters and "columns" in parameters:
            table = Table(table[list(parameters["columns"])], copy=True)
        return table


class ParquetFormatter(Formatter):
    format = "parquet"
    extension = ".parquet"
    direct_parameters = frozenset({"columns"})

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        _as_table(obj).write(path, format="parquet", overwrite=True)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        from astropy.table import Table

        columns = list(parameters["columns"]) if parameters and "columns" in parameters else None
        return Table.read(path, format="parquet", include_names=columns)
