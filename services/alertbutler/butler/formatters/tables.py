"""Catalog formatters: FITS binary tables and Parquet, both read back as astropy Tables.

Parquet reads only the requested ``columns``; FITS reads the table memory-mapped and
selects them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
    """Through pyarrow directly (astropy's reader needs pandas): one Arrow column per table
    column, multidimensional columns as fixed-size lists; units kept in the field metadata."""

    format = "parquet"
    extension = ".parquet"
    direct_parameters = frozenset({"columns"})

    def write(self, obj: Any, path: Path, storage_class: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = _as_table(obj)
        fields, arrays = [], []
        for name in table.colnames:
            col = table[name]
            data = np.asarray(col)
            if data.dtype.byteorder not in ("=", "|"):  # FITS columns are big-endian
                data = data.astype(data.dtype.newbyteorder("="))
            arr = pa.array(data) if data.ndim == 1 else pa.FixedSizeListArray.from_arrays(
                pa.array(data.reshape(-1)), int(np.prod(data.shape[1:])))
            meta = {b"unit": str(col.unit).encode()} if getattr(col, "unit", None) else None
            fields.append(pa.field(name, arr.type, metadata=meta))
            arrays.append(arr)
        pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)

    def read(self, path: Path, storage_class: str, *, component: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> Any:
        import pyarrow.parquet as pq
        from astropy.table import Table

        columns = list(parameters["columns"]) if parameters and "columns" in parameters else None
        arrow = pq.read_table(path, columns=columns)
        out = Table()
        for field, col in zip(arrow.schema, arrow.columns, strict=True):
            data = col.to_numpy(zero_copy_only=False)
            if data.dtype == object and len(data) and isinstance(data[0], np.ndarray):
                data = np.stack(data)
            out[field.name] = data
            if field.metadata and b"unit" in field.metadata:
                out[field.name].unit = field.metadata[b"unit"].decode()
        return out
