"""Ingest of external raw files: data IDs from headers or file names, transfer modes,
bad files rejected by name while the others go on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from alertbutler.butler import Butler, DatasetExistsError, Exposure, IngestError
from alertbutler.butler.ingest import ingest_files
from alertbutler.butler.testing import write_raw


@pytest.fixture
def raws(tmp_path: Path) -> Path:
    src = tmp_path / "incoming"
    src.mkdir()
    for det in range(3):
        write_raw(src / f"raw_{det}.fits", exposure=2000, detector=det,
                  date="2026-11-20T04:00:00")
    return src


def test_ingest_from_headers_defines_exposure_and_copies(butler: Butler, raws: Path) -> None:
    files = sorted(raws.glob("*.fits"))
    result = butler.ingest(files, run="raw/night1")
    assert result.failures == [] and len(result.refs) == 3
    assert all(f.exists() for f in files)  # copy leaves the originals
    rec = butler.get_dimension_record("exposure", {"instrument": "SimCam", "exposure": 2000})
    assert rec.physical_filter == "r_sim" and rec.day_obs == 20261119
    assert rec.timespan.end - rec.timespan.begin == 30 * 10**9
    assert rec.region.ra == pytest.approx(150.0)
    raw = butler.get("raw", {"instrument": "SimCam", "exposure": 2000, "detector": 1},
                     collections="raw/night1")
    assert isinstance(raw, Exposure) and raw.image.shape == (32, 32)
    assert raw.metadata["EXPID"] == 2000
    # same file again into the same run: refused as a duplicate (deterministic ids)
    again = butler.ingest(files[:1], run="raw/night1")
    assert again.refs == [] and "already exists" in again.failures[0][1]
    assert isinstance(DatasetExistsError("x"), ValueError)


def test_bad_files_are_named_and_the_rest_go_on(butler: Butler, raws: Path) -> None:
    bad_missing = write_raw(raws / "nofilter.fits", exposure=2001, detector=0, drop=("FILTER",))
    bad_type = write_raw(raws / "baddet.fits", exposure=2001, detector=1,
                         extra={"DETECTOR": "eleven"})
    bad_incons = write_raw(raws / "incons.fits", exposure=2000, detector=3,
                           physical_filter="g_sim")
    not_fits = raws / "notes.fits"
    not_fits.write_text("hello")
    files = [*sorted(raws.glob("raw_*.fits")), bad_missing, bad_type, bad_incons, not_fits,
             raws / "absent.fits"]
    result = butler.ingest(files, run="raw/night1")
    assert len(result.refs) == 3
    reasons = {p.name: why for p, why in result.failures}
    assert "header keyword FILTER is missing" in reasons["nofilter.fits"]
    assert "DETECTOR='eleven' is not a valid int" in reasons["baddet.fits"]
    assert "contradicts exposure 2000" in reasons["incons.fits"]
    assert "not a readable FITS file" in reasons["notes.fits"]
    assert "no such file" in reasons["absent.fits"]
    assert all(str(p) in why for p, why in result.failures)


@pytest.mark.parametrize("mode", ["copy", "move", "symlink", "hardlink", "direct"])
def test_transfer_modes(butler: Butler, raws: Path, mode: str) -> None:
    src = raws / "raw_0.fits"
    original = src.read_bytes()
    result = butler.ingest([src], run="raw/modes", transfer=mode)
    ref = result.refs[0]
    path = butler.datastore.artifact_path(ref)
    if mode == "direct":
        assert path == src
    else:
        assert path.is_relative_to(butler.root)
    assert src.exists() == (mode != "move")
    assert path.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert os.stat(path).st_ino == os.stat(src).st_ino
    assert path.read_bytes() == original
    np.testing.assert_array_equal(butler.get(ref).image.shape, (32, 32))
    if mode == "direct":
        butler.prune_datasets([ref])
        assert src.exists()  # a direct ingest never deletes the external file


def test_ingest_with_file_name_template(butler: Butler, tmp_path: Path) -> None:
    src = tmp_path / "byname"
    src.mkdir()
    write_raw(src / "SimCam_1001_2.fits", exposure=1001, detector=2, drop=("FILTER",))
    (src / "garbage.fits").write_bytes(b"x")
    result = butler.ingest(sorted(src.iterdir()), run="raw/t",
                           template="{instrument}_{exposure}_{detector}.fits")
    assert [r.data_id["detector"] for r in result.refs] == [2]
    assert "does not match template" in result.failures[0][1]


def test_unknown_transfer_mode(butler: Butler, raws: Path) -> None:
    result = ingest_files(butler, [raws / "raw_0.fits"], run="r", transfer="teleport")
    assert "unknown transfer mode 'teleport'" in result.failures[0][1]
    assert isinstance(IngestError("x"), ValueError)


def test_date_obs_in_tai_is_converted(butler: Butler, tmp_path: Path) -> None:
    path = write_raw(tmp_path / "tai.fits", exposure=3000, detector=0,
                     date="2026-11-20T05:00:37", extra={"TIMESYS": "TAI"})
    assert butler.ingest([path], run="raw/tai").failures == []
    rec = butler.get_dimension_record("exposure", {"instrument": "SimCam", "exposure": 3000})
    from alertbutler.butler.timespan import to_ns

    assert rec.timespan.begin == to_ns("2026-11-20T05:00:00")  # TAI - UTC = 37 s


def test_camera_raws_of_unsigned_pixels_read_whole_and_by_box(butler: Butler,
                                                              tmp_path: Path) -> None:
    """Cameras write uint16 as int16 + BZERO 32768, which astropy will not memory-map."""
    path = write_raw(tmp_path / "u16.fits", exposure=2002, detector=0, shape=(40, 50),
                     dtype=np.uint16, extra={"SATURATE": 65535})
    assert fits.getheader(path)["BZERO"] == 32768
    expected = fits.getdata(path)
    expected[0, 0] = 65535  # the top of the range must survive the sign flip
    fits.update(path, expected, fits.getheader(path))
    assert butler.ingest([path], run="raw/u16").failures == []
    did = {"instrument": "SimCam", "exposure": 2002, "detector": 0}
    raw = butler.get("raw", did, collections="raw/u16")
    assert raw.image.dtype == np.uint16
    np.testing.assert_array_equal(raw.image, expected)
    box = butler.get("raw", did, collections="raw/u16", parameters={"bbox": (5, 6, 15, 26)})
    np.testing.assert_array_equal(box.image, expected[6:26, 5:15])
