"""FITS headers and files for raws, calibrations and templates, plus the night's side files.

Raw headers carry what ingest needs to build a data ID and place the exposure in time and on
the sky: INSTRUME, DETECTOR, EXPID/VISIT, FILTER/BAND, DATE-OBS/MJD-OBS (TAI), EXPTIME,
RA/DEC of the boresight, ROTPA, the detector's WCS and the electronics (GAIN, RDNOISE,
SATURATE). Nothing time-of-writing goes into a header, so files are byte-for-byte
reproducible from the seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import vstack
from astropy.time import Time
from astropy.wcs import WCS

from alertbutler.sim.calibs import DetectorCalibs
from alertbutler.sim.camera import Camera
from alertbutler.sim.night import Visit
from alertbutler.sim.templates import TemplatePatch

#: header keys every raw carries (tests and ingest rely on this list)
RAW_REQUIRED_KEYS = (
    "INSTRUME", "TELESCOP", "DETECTOR", "DETNAME", "EXPID", "VISIT", "DAYOBS", "SEQNUM",
    "GROUPID", "FILTER", "BAND", "DATE-OBS", "MJD-OBS", "TIMESYS", "EXPTIME", "DARKTIME",
    "RA", "DEC", "ROTPA", "GAIN", "RDNOISE", "SATURATE", "IMGTYPE", "BUNIT",
    "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1",
    "CD2_2",
)


def raw_header(camera: Camera, visit: Visit, detector: int, wcs: WCS) -> fits.Header:
    start = Time(visit.mjd_tai, format="mjd", scale="tai")
    h = fits.Header()
    h["INSTRUME"] = (camera.name, "simulated camera")
    h["TELESCOP"] = "SIMTEL"
    h["DETECTOR"] = (detector, "detector number")
    h["DETNAME"] = f"D{detector:03d}"
    h["EXPID"] = (visit.visit, "exposure id (day_obs*100000+seq_num)")
    h["VISIT"] = (visit.visit, "visit id (one snap per visit)")
    h["DAYOBS"] = int(str(visit.visit)[:8])
    h["SEQNUM"] = visit.seq_num
    h["GROUPID"] = visit.group_id
    h["FIELD"] = visit.field
    h["FILTER"] = visit.band
    h["BAND"] = visit.band
    h["TIMESYS"] = "TAI"
    h["DATE-OBS"] = (start.isot, "start of exposure, TAI")
    h["MJD-OBS"] = (visit.mjd_tai, "start of exposure, MJD TAI")
    h["EXPTIME"] = (visit.exptime, "s")
    h["DARKTIME"] = (visit.exptime, "s")
    h["RA"] = (visit.ra, "boresight RA, deg")
    h["DEC"] = (visit.dec, "boresight Dec, deg")
    h["ROTPA"] = (visit.rotation_deg, "sky rotation angle, deg")
    h["GAIN"] = (camera.gain(detector), "e-/ADU")
    h["RDNOISE"] = (camera.read_noise, "e-")
    h["SATURATE"] = (camera.saturation_adu(detector), "ADU")
    h["IMGTYPE"] = "OBJECT"
    h["OBSTYPE"] = "science"
    h["BUNIT"] = "adu"
    h["SEEING"] = (visit.seeing, "simulated PSF FWHM, arcsec")
    h.extend(wcs_header(wcs), update=True)
    return h


def wcs_header(wcs: WCS) -> fits.Header:
    """The WCS as FITS keys with a CD matrix (what camera raws carry), not PC + CDELT."""
    h = wcs.to_header()
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        h.remove(key, ignore_missing=True)
    cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.pixel_scale_matrix
    for i in range(2):
        for j in range(2):
            h[f"CD{i + 1}_{j + 1}"] = float(cd[i, j])
    return h


def write_raw(path: Path, data: np.ndarray, header: fits.Header) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    return path


def read_raw(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data), hdul[0].header.copy()


def _validity(h: fits.Header, calibs: DetectorCalibs) -> None:
    h["VALIDFRM"] = (calibs.valid_from_mjd, "validity start, MJD TAI")
    h["VALIDTO"] = (calibs.valid_to_mjd, "validity end (exclusive), MJD TAI")


def write_calibs(directory: Path, camera: Camera, calibs: DetectorCalibs) -> dict[str, Path]:
    """bias, dark, defects and one flat per band, each a FITS file with its validity range."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    arrays = {"bias": calibs.bias, "dark": calibs.dark,
              "defects": calibs.defects.astype(np.uint8)}
    arrays.update({f"flat_{band}": flat for band, flat in calibs.flats.items()})
    for name, array in arrays.items():
        h = fits.Header()
        h["INSTRUME"] = camera.name
        h["DETECTOR"] = calibs.detector
        h["CALIBTYP"] = name.split("_")[0]
        if name.startswith("flat_"):
            h["BAND"] = name.split("_")[1]
        _validity(h, calibs)
        path = directory / f"{name}_det{calibs.detector:03d}.fits"
        fits.PrimaryHDU(data=array, header=h).writeto(path, overwrite=True)
        out[name] = path
    return out


def write_template(path: Path, patch: TemplatePatch) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h = wcs_header(patch.wcs)
    h["FIELD"] = patch.field
    h["BAND"] = patch.band
    h["PATCH"] = patch.patch
    h["BUNIT"] = "nJy"
    h["PSFFWHM"] = (patch.psf_fwhm_arcsec, "arcsec")
    hdus = fits.HDUList([fits.PrimaryHDU(patch.image, header=h),
                         fits.ImageHDU(patch.variance, name="VARIANCE")])
    hdus.writeto(path, overwrite=True)
    return path


def read_template(path: Path) -> tuple[np.ndarray, np.ndarray, WCS, fits.Header]:
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        return (np.asarray(hdul[0].data), np.asarray(hdul["VARIANCE"].data), WCS(header),
                header)


@dataclass(frozen=True)
class NightFiles:
    root: Path
    raws: list[Path]
    calibs: list[Path]
    templates: list[Path]
    truth: Path
    events: Path


def write_night(sim, root: Path, *, visits: Iterable[int] | None = None,
                detectors: Iterable[int] | None = None, templates: bool = True,
                calibs: bool = True) -> NightFiles:
    """Write calibrations, templates, raws, the truth table and nextVisit events under root.

    Layout: calibs/, templates/, raws/<visit>/raw_<visit>_<det>.fits, truth.ecsv,
    next_visits.jsonl (one JSON event per line, in emission order).
    """
    root = Path(root)
    dets = list(sim.camera.detectors if detectors is None else detectors)
    wanted = None if visits is None else {int(v) for v in visits}
    calib_paths: list[Path] = []
    for d in dets if calibs else []:
        calib_paths.extend(write_calibs(root / "calibs", sim.camera, sim.calibs(d)).values())
    template_paths = []
    if templates:
        for field, band, patch in sim.needed_templates():
            p = root / "templates" / f"template_f{field}_{band}_p{patch:03d}.fits"
            template_paths.append(write_template(p, sim.template(field, band, patch)))
    raw_paths, truths = [], []
    for v in sim.visits:
        if wanted is not None and v.visit not in wanted:
            continue
        for d in dets:
            raw = sim.raw(v, d)
            p = root / "raws" / str(v.visit) / f"raw_{v.visit}_{d:03d}.fits"
            raw_paths.append(write_raw(p, raw.data, raw.header))
            truths.append(raw.truth)
    truth_path = root / "truth.ecsv"
    if truths:
        vstack(truths).write(truth_path, overwrite=True)
    events_path = root / "next_visits.jsonl"
    with events_path.open("w") as fh:
        for event in sim.next_visit_events():
            if wanted is None or event["visit"] in wanted:
                fh.write(json.dumps(event, sort_keys=True) + "\n")
    return NightFiles(root, raw_paths, calib_paths, template_paths, truth_path, events_path)
