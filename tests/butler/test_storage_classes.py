"""Storage classes: caller-chosen python types, components, read parameters, prototypes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS

from alertbutler.butler import (
    SOURCE_COLUMNS,
    STORAGE_CLASSES,
    Butler,
    ChecksumError,
    Exposure,
    StorageClass,
    StorageClassError,
)
from alertbutler.butler.testing import make_exposure

DID = {"instrument": "SimCam", "visit": 1000, "detector": 1}


@pytest.fixture
def calexp(butler: Butler) -> Butler:
    butler.register_dataset_type("calexp", ["visit", "detector"], "Exposure")
    butler.put(make_exposure((64, 48)), "calexp", DID)
    return butler


def test_exposure_default_type_and_caller_types(calexp: Butler) -> None:
    exp = calexp.get("calexp", DID)
    assert isinstance(exp, Exposure) and exp.image.shape == (64, 48)
    ccd = calexp.get("calexp", DID, python_type=CCDData)
    assert isinstance(ccd, CCDData)
    np.testing.assert_allclose(ccd.uncertainty.array, 25.0)
    assert ccd.wcs.wcs.ctype[0] == "RA---TAN"
    arr = calexp.get("calexp", DID, python_type=np.ndarray)
    assert isinstance(arr, np.ndarray) and arr.shape == (64, 48)
    np.testing.assert_array_equal(arr, exp.image)
    with pytest.raises(StorageClassError, match="cannot be read as astropy.table.table.Table"):
        calexp.get("calexp", DID, python_type=Table)


def test_wcs_component_reads_only_the_header(calexp: Butler) -> None:
    ref = calexp.find_dataset("calexp", DID)
    path = calexp.datastore.artifact_path(ref)
    full_wcs = calexp.get("calexp", DID).wcs
    # Cut the file right after the primary header: every pixel is gone.
    from astropy.io import fits

    with fits.open(path) as hdul:
        header_bytes = len(hdul[0].header.tostring())
    os.truncate(path, header_bytes)
    wcs = calexp.get("calexp.wcs", DID)
    assert isinstance(wcs, WCS)
    np.testing.assert_allclose(wcs.wcs.crval, full_wcs.wcs.crval)
    assert calexp.get("calexp.metadata", DID)["FILTER"] == "r_sim"
    with pytest.raises(ChecksumError, match="bytes"):
        calexp.get("calexp", DID)


def test_bbox_parameter_subsets_pixels_and_shifts_wcs(calexp: Butler) -> None:
    whole = calexp.get("calexp", DID)
    cut = calexp.get("calexp", DID, parameters={"bbox": (10, 20, 30, 25)})
    assert cut.image.shape == (5, 20)
    np.testing.assert_array_equal(cut.image, whole.image[20:25, 10:30])
    sky = whole.wcs.pixel_to_world(15, 22)
    assert cut.wcs.pixel_to_world(5, 2).separation(sky).arcsec < 1e-6
    img = calexp.get("calexp.image", DID, parameters={"bbox": (0, 0, 4, 4)})
    np.testing.assert_array_equal(img, whole.image[:4, :4])
    with pytest.raises(StorageClassError, match="does not take read parameter"):
        calexp.get("calexp", DID, parameters={"columns": ["a"]})
    with pytest.raises(ValueError, match="outside the image"):
        calexp.get("calexp", DID, parameters={"bbox": (0, 0, 1000, 4)})


def test_catalog_as_table_or_structured_array(butler: Butler) -> None:
    butler.register_dataset_type("src", ["visit", "detector"], "SourceCatalog")
    proto = butler.prototype("src")
    assert isinstance(proto, Table) and len(proto) == 0
    assert proto.colnames == [c for c, _ in SOURCE_COLUMNS]
    for i in range(3):
        proto.add_row([i, 150.0 + i, 2.0, 1.0, 2.0, 100.0, 1.0, 0])
    butler.put(proto, "src", DID)
    table = butler.get("src", DID)
    assert isinstance(table, Table) and len(table) == 3
    arr = butler.get("src", DID, python_type=np.ndarray)
    assert arr.dtype.names == tuple(proto.colnames) and arr["coord_ra"][2] == 152.0
    sub = butler.get("src", DID, parameters={"columns": ["id", "flux"]})
    assert sub.colnames == ["id", "flux"]


def test_prototypes_are_correctly_shaped(butler: Butler) -> None:
    butler.register_dataset_type("calexp", ["visit", "detector"], "Exposure")
    proto = butler.prototype("calexp", DID)  # detector record says 64 x 64
    assert proto.image.shape == (64, 64) and proto.variance.shape == (64, 64)
    assert proto.image.dtype == np.float32 and not proto.image.any()


def test_storage_class_table_refuses_clashes() -> None:
    with pytest.raises(StorageClassError, match="already registered"):
        STORAGE_CLASSES.register(StorageClass("Exposure", "builtins.dict", "json"))
    with pytest.raises(StorageClassError, match="already registered"):
        STORAGE_CLASSES.register_converter("Exposure", np.ndarray, lambda e: None)
    with pytest.raises(StorageClassError, match="unknown storage class 'Nope'"):
        STORAGE_CLASSES["Nope"]


def test_unknown_component(calexp: Butler) -> None:
    with pytest.raises(StorageClassError, match="no component 'psfx'"):
        calexp.get("calexp.psfx", DID)
