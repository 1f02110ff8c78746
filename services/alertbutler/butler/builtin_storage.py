"""The storage classes and converters every butler knows, registered in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .exposure import Exposure, check_bbox
from .storage_classes import STORAGE_CLASSES, StorageClass, StorageClassRegistry


@dataclass
class RecordBatch:
    """A batch of records with their Avro schema (the Avro storage class's type)."""

    schema: dict[str, Any]
    records: list[dict[str, Any]]


def _image_subset(arr: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    x0, y0, x1, y1 = check_bbox(params["bbox"], arr.shape)
    return arr[..., y0:y1, x0:x1]


def _shape(hints: Mapping[str, Any]) -> tuple[int, int]:
    return tuple(hints.get("shape", (0, 0)))


def _exposure_component(exp: Exposure, name: str) -> Any:
    return getattr(exp, name)


def _table_columns(table: Any, params: Mapping[str, Any]) -> Any:
    return table[list(params["columns"])]


def _empty_table(hints: Mapping[str, Any]) -> Any:
    from astropy.table import Table

    columns = hints.get("columns")
    if columns is None:
        return Table()
    return Table(names=[c[0] for c in columns], dtype=[c[1] for c in columns])


#: the columns of a source catalog, so writers and tests share one prototype
SOURCE_COLUMNS = (("id", "i8"), ("coord_ra", "f8"), ("coord_dec", "f8"), ("x", "f8"),
                  ("y", "f8"), ("flux", "f8"), ("flux_err", "f8"), ("flags", "i4"))


def _to_ccddata(obj: Any) -> Any:
    from astropy.nddata import CCDData, VarianceUncertainty

    if isinstance(obj, Exposure):
        meta = dict(obj.metadata)
        return CCDData(obj.image, unit=meta.pop("BUNIT", "adu"), wcs=obj.wcs,
                       uncertainty=None if obj.variance is None
                       else VarianceUncertainty(obj.variance),
                       mask=None if obj.mask is None else obj.mask != 0, meta=meta)
    return CCDData(obj, unit="adu")


def _structured(table: Any) -> np.ndarray:
    return np.asarray(table.as_array())


def register_builtins(registry: StorageClassRegistry = STORAGE_CLASSES) -> None:
    nd = "numpy.ndarray"
    table = "astropy.table.table.Table"
    for sc in (
        StorageClass("StructuredDataDict", "builtins.dict", "yaml",
                     prototype=lambda h: {}),
        StorageClass("NumpyArray", nd, "npy", parameters=frozenset({"bbox"}),
                     apply_parameters=_image_subset,
                     prototype=lambda h: np.zeros(_shape(h), h.get("dtype", "f4"))),
        StorageClass("Image", nd, "fits", parameters=frozenset({"bbox"}),
                     apply_parameters=_image_subset,
                     prototype=lambda h: np.zeros(_shape(h), np.float32)),
        StorageClass("Mask", nd, "fits", parameters=frozenset({"bbox"}),
                     apply_parameters=_image_subset,
                     prototype=lambda h: np.zeros(_shape(h), np.int32)),
        StorageClass("Wcs", "astropy.wcs.wcs.WCS", "fits"),
        StorageClass("Psf", nd, "npy", prototype=lambda h: np.zeros((0, 0), np.float32)),
        StorageClass("Exposure", "alertbutler.butler.exposure.Exposure", "fits",
                     components={"image": "Image", "variance": "Image", "mask": "Mask",
                                 "wcs": "Wcs", "psf": "Psf", "metadata": "StructuredDataDict"},
                     parameters=frozenset({"bbox"}),
                     get_component=_exposure_component,
                     apply_parameters=lambda e, p: e.subset(p["bbox"]),
                     prototype=lambda h: Exposure.empty(_shape(h)),
                     assemble=lambda e, c: e.with_components(c)),
        StorageClass("RawExposure", "alertbutler.butler.exposure.Exposure", "fits",
                     components={"image": "Image", "wcs": "Wcs", "metadata": "StructuredDataDict",
                                 "psf": "Psf"},
                     parameters=frozenset({"bbox"}),
                     get_component=_exposure_component,
                     apply_parameters=lambda e, p: e.subset(p["bbox"]),
                     prototype=lambda h: Exposure.empty(_shape(h)),
                     assemble=lambda e, c: e.with_components(c)),
        StorageClass("Catalog", table, "fits", parameters=frozenset({"columns"}),
                     apply_parameters=_table_columns, prototype=_empty_table),
        StorageClass("SourceCatalog", table, "fits", parameters=frozenset({"columns"}),
                     apply_parameters=_table_columns,
                     prototype=lambda h: _empty_table({"columns": SOURCE_COLUMNS})),
        StorageClass("Plot", nd, "png", accepts=("matplotlib.figure.Figure",),
                     prototype=lambda h: np.zeros((*_shape(h), 4), np.uint8)),
        StorageClass("RecordBatch", "alertbutler.butler.builtin_storage.RecordBatch", "avro",
                     prototype=lambda h: RecordBatch(h.get("schema", {}), [])),
        StorageClass("AlertPacket", "builtins.dict", "json", prototype=lambda h: {}),
        StorageClass("AlertBatch", "builtins.list", "json", prototype=lambda h: []),
    ):
        registry.register(sc)
    registry.register_converter("Image", "astropy.nddata.ccddata.CCDData", _to_ccddata)
    registry.register_converter("Exposure", "astropy.nddata.ccddata.CCDData", _to_ccddata)
    registry.register_converter("Exposure", nd, lambda e: e.image)
    registry.register_converter("RawExposure", "astropy.nddata.ccddata.CCDData", _to_ccddata)
    registry.register_converter("RawExposure", nd, lambda e: e.image)
    registry.register_converter("Catalog", nd, _structured)
    registry.register_converter("SourceCatalog", nd, _structured)
    registry.register_converter("RecordBatch", "builtins.list", lambda b: b.records)


register_builtins()
