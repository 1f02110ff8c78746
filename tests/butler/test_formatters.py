"""Every formatter round-trips through the butler, and datasets convert between formats."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from astropy.table import Table

from alertbutler.butler import (
    FORMATTERS,
    Butler,
    FormatterError,
    RecordBatch,
)
from alertbutler.butler.formatters import JsonFormatter, YamlFormatter
from alertbutler.butler.testing import make_exposure

DID = {"instrument": "SimCam", "visit": 1000, "detector": 1}


def _suffix(butler: Butler, ref) -> str:  # type: ignore[no-untyped-def]
    return butler.datastore.artifact_path(ref).suffix


def test_yaml_and_json(tmp_path, butler: Butler) -> None:  # type: ignore[no-untyped-def]
    butler.register_dataset_type("metrics", ["visit", "detector"], "StructuredDataDict")
    ref = butler.put({"a": np.float32(1.5), "b": [1, 2]}, "metrics", DID)
    assert _suffix(butler, ref) == ".yaml"
    assert butler.get(ref) == {"a": 1.5, "b": [1, 2]}
    json_butler = Butler(butler.root, run="json", registry_url=butler.registry.db.url)
    try:
        json_butler.datastore.formats["metrics"] = "json"
        ref = json_butler.put({"a": 1}, "metrics", DID)
        assert _suffix(json_butler, ref) == ".json" and json_butler.get(ref) == {"a": 1}
    finally:
        json_butler.close()


def test_npy_with_bbox(butler: Butler) -> None:
    butler.register_dataset_type("arr", ["visit", "detector"], "NumpyArray")
    data = np.arange(100, dtype=np.float64).reshape(10, 10)
    butler.put(data, "arr", DID)
    np.testing.assert_array_equal(butler.get("arr", DID), data)
    np.testing.assert_array_equal(butler.get("arr", DID, parameters={"bbox": (2, 3, 5, 4)}),
                                  data[3:4, 2:5])


def test_fits_image(butler: Butler) -> None:
    butler.register_dataset_type("bkg", ["visit", "detector"], "Image")
    data = np.random.default_rng(1).normal(size=(20, 30)).astype(np.float32)
    butler.put(data, "bkg", DID)
    np.testing.assert_array_equal(butler.get("bkg", DID), data)
    np.testing.assert_array_equal(butler.get("bkg", DID, parameters={"bbox": (1, 2, 4, 6)}),
                                  data[2:6, 1:4])


def test_catalog_fits_to_parquet_conversion(butler: Butler) -> None:
    butler.register_dataset_type("src", ["visit", "detector"], "Catalog")
    butler.register_dataset_type("src_pq", ["visit", "detector"], "Catalog")
    butler.datastore.formats["src_pq"] = "parquet"
    table = Table({"id": np.arange(5), "flux": np.linspace(1, 2, 5)})
    ref = butler.put(table, "src", DID)
    assert _suffix(butler, ref) == ".fits"
    ref2 = butler.put(butler.get("src", DID), "src_pq", DID)
    assert _suffix(butler, ref2) == ".parquet"
    back = butler.get("src_pq", DID)
    np.testing.assert_allclose(back["flux"], table["flux"])
    assert butler.get("src_pq", DID, parameters={"columns": ["flux"]}).colnames == ["flux"]
    arr = butler.get("src_pq", DID, python_type=np.ndarray)
    assert arr.dtype.names == ("id", "flux")


def test_png_from_figure_array_and_image_preview(butler: Butler) -> None:
    butler.register_dataset_type("plot", ["visit", "detector"], "Plot")
    butler.register_dataset_type("calexp", ["visit", "detector"], "Exposure")
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    butler.put(fig, "plot", DID)
    plt.close(fig)
    png = butler.get("plot", DID)
    assert png.dtype == np.uint8 and png.shape == (50, 100, 4)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    butler.put(rgb, "plot", DID, run="rgb")
    np.testing.assert_array_equal(butler.get("plot", DID, collections="rgb"), rgb)
    # image -> PNG preview through the butler
    butler.put(make_exposure((16, 24)), "calexp", DID)
    pixels = butler.get("calexp", DID, python_type=np.ndarray)
    butler.put(pixels, "plot", DID, run="preview")
    preview = butler.get("plot", DID, collections="preview")
    assert preview.shape == (16, 24) and preview.dtype == np.uint8 and preview.max() == 255


def test_avro_record_batch(butler: Butler) -> None:
    butler.register_dataset_type("alert_batch", ["visit", "detector"], "RecordBatch")
    schema = {"type": "record", "name": "A", "fields": [{"name": "id", "type": "long"},
                                                         {"name": "flux", "type": "float"}]}
    batch = RecordBatch(schema, [{"id": i, "flux": float(i)} for i in range(10)])
    ref = butler.put(batch, "alert_batch", DID)
    assert _suffix(butler, ref) == ".avro"
    back = butler.get(ref)
    assert back.records == batch.records and back.schema["name"] == "A"
    assert butler.get(ref, python_type=list) == batch.records


def test_formatter_table_refuses_clashes_and_unknown_pairs() -> None:
    with pytest.raises(FormatterError, match="already handled by YamlFormatter"):
        FORMATTERS.register(JsonFormatter.__new__(type("Fake", (YamlFormatter,), {})),
                            ("StructuredDataDict",))
    with pytest.raises(FormatterError, match="no formatter writes storage class 'Exposure' "
                                             "as 'parquet'"):
        FORMATTERS.get("parquet", "Exposure")


@pytest.mark.parametrize("stored, bscale, bzero, blank", [
    (np.array([[0, 65535], [1, 40000]], dtype=np.uint16), None, None, None),  # BZERO 32768
    (np.array([[0, 2**32 - 1], [5, 7]], dtype=np.uint32), None, None, None),
    (np.array([[-128, 127], [0, -1]], dtype=np.int8), None, None, None),  # BZERO -128
    (np.array([[1, 2], [3, -5]], dtype=np.int16), 0.5, 10.0, -5),
    (np.array([[1, 2], [3, -5]], dtype=np.int32), 2.0, 1.0, None),
    (np.array([[1, 2], [3, -5]], dtype=np.float32), 1.0, 3.0, None),
])
def test_scaled_fits_pixels_read_as_astropy_scales_them(tmp_path, stored, bscale, bzero,
                                                        blank) -> None:  # type: ignore[no-untyped-def]
    """The formatter scales memory-mapped pixels itself: values and types as astropy's."""
    from astropy.io import fits

    from alertbutler.butler.formatters.fits import FitsImageFormatter

    hdu = fits.PrimaryHDU(stored)
    for key, value in (("BSCALE", bscale), ("BZERO", bzero), ("BLANK", blank)):
        if value is not None:
            hdu.header[key] = value
    path = tmp_path / "scaled.fits"
    hdu.writeto(path)
    expected = fits.getdata(path)
    for got, want in ((FitsImageFormatter().read(path, "Image"), expected),
                      (FitsImageFormatter().read(path, "Image", parameters={"bbox": (1, 0, 2, 2)}),
                       expected[0:2, 1:2])):
        assert (got.dtype.kind, got.dtype.itemsize) == (want.dtype.kind, want.dtype.itemsize)
        np.testing.assert_array_equal(got, want)
