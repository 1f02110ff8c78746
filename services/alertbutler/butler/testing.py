"""Repo builders and synthetic data for tests and benchmarks (shipped, like daf_butler's
test helpers, so downstream packages build the same fixtures the same way)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .butler import Butler
from .exposure import Exposure
from .regions import Circle
from .timespan import Timespan, to_ns

INSTRUMENT = "SimCam"
T0 = "2026-11-20T03:00:00"


def make_wcs(ra: float = 150.0, dec: float = 2.0, shape: tuple[int, int] = (64, 64),
             scale_deg: float = 0.2 / 3600) -> Any:
    """A TAN WCS centred on (ra, dec)."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.cdelt = [-scale_deg, scale_deg]
    return w


def make_exposure(shape: tuple[int, int] = (64, 64), seed: int = 0, **wcs_kw: Any) -> Exposure:
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 5.0, shape).astype(np.float32)
    return Exposure(image=image, variance=np.full(shape, 25.0, np.float32),
                    mask=np.zeros(shape, np.int32), wcs=make_wcs(shape=shape, **wcs_kw),
                    metadata={"EXPTIME": 30.0, "FILTER": "r_sim"})


def visit_records(n_visits: int = 3, *, start: str = T0, cadence_s: float = 40.0,
                  ra: float = 150.0, dec: float = 2.0, step_deg: float = 3.0
                  ) -> list[dict[str, Any]]:
    """Visits (and the same numbers as exposures) marching east in RA."""
    t0 = to_ns(start)
    assert t0 is not None
    out = []
    for i in range(n_visits):
        b = t0 + int(i * cadence_s * 1e9)
        out.append({"instrument": INSTRUMENT, "visit": 1000 + i, "physical_filter": "r_sim",
                    "day_obs": 20261119, "exposure_time": 30.0,
                    "timespan": Timespan(b, b + int(30e9)),
                    "region": Circle(ra + i * step_deg, dec, 1.75)})
    return out


def populate(butler: Butler, n_detectors: int = 4, n_visits: int = 3,
             detector_shape: tuple[int, int] = (64, 64)) -> None:
    """An instrument, its detectors and filters, a day and a few visits/exposures."""
    butler.insert_dimension_records("instrument", [{"instrument": INSTRUMENT,
                                                    "n_detectors": n_detectors}])
    butler.insert_dimension_records("physical_filter", [
        {"instrument": INSTRUMENT, "physical_filter": f"{b}_sim", "band": b} for b in "ugrizy"])
    butler.insert_dimension_records("detector", [
        {"instrument": INSTRUMENT, "detector": d, "full_name": f"R00_S{d:02d}",
         "nx": detector_shape[1], "ny": detector_shape[0]} for d in range(n_detectors)])
    butler.insert_dimension_records("day_obs", [{"instrument": INSTRUMENT, "day_obs": 20261119}])
    visits = visit_records(n_visits)
    butler.insert_dimension_records("visit", visits)
    butler.insert_dimension_records("exposure", [
        {**{k: v for k, v in v.items() if k != "visit"}, "exposure": v["visit"],
         "obs_type": "science"} for v in visits])


def write_raw(path: Path, *, exposure: int, detector: int, shape: tuple[int, int] = (32, 32),
              date: str = T0, physical_filter: str = "r_sim", ra: float = 150.0,
              dec: float = 2.0, drop: tuple[str, ...] = (),
              extra: Mapping[str, Any] | None = None, dtype: Any = np.float32) -> Path:
    """A raw FITS file following the header convention of :mod:`alertbutler.butler.ingest`;
    ``dtype=np.uint16`` writes pixels as cameras do (int16 with BZERO 32768)."""
    from astropy.io import fits

    header = fits.Header()
    cards = {"INSTRUME": INSTRUMENT, "DETECTOR": detector, "EXPID": exposure,
             "FILTER": physical_filter, "BAND": physical_filter[0], "DATE-OBS": date,
             "EXPTIME": 30.0, "RA": ra, "DEC": dec, "IMAGETYP": "science", **(extra or {})}
    for key, value in cards.items():
        if key not in drop:
            header[key] = value
    data = np.random.default_rng(exposure * 1000 + detector).normal(1000, 10, shape)
    fits.PrimaryHDU(data.astype(dtype), header=header).writeto(path, overwrite=True)
    return path
