"""Raws: deterministic bytes, complete headers, the effects ingest and ISR must see."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from alertbutler.sim import (
    RAW_REQUIRED_KEYS,
    Camera,
    NightConfig,
    SimConfig,
    Simulator,
    read_raw,
    write_night,
)

SMALL = SimConfig(seed=7, camera=Camera(n_detectors=2, nx=512, ny=512),
                  night=NightConfig(n_visits=3, n_fields=1, bands=("r", "i")))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = write_night(Simulator(SMALL), tmp_path / "a", templates=False)
    b = write_night(Simulator(SMALL), tmp_path / "b", templates=False)
    assert len(a.raws) == 6
    for pa, pb in zip(a.raws, b.raws, strict=True):
        assert _digest(pa) == _digest(pb)
    truth = [(tmp_path / x / "truth.ecsv").read_bytes() for x in ("a", "b")]
    assert truth[0] == truth[1]
    assert a.events.read_bytes() == b.events.read_bytes()


def test_different_seed_differs_and_order_does_not_matter() -> None:
    sim = Simulator(SMALL)
    v1, v2 = sim.visits[0], sim.visits[1]
    first = sim.raw(v2, 1).data
    sim.raw(v1, 0)
    again = Simulator(SMALL).raw(v2, 1).data
    assert np.array_equal(first, again)
    other = Simulator(SimConfig(seed=8, camera=SMALL.camera, night=SMALL.night)).raw(v2, 1)
    assert not np.array_equal(first, other.data)


def test_raw_headers_carry_what_ingest_needs(tmp_path: Path) -> None:
    files = write_night(Simulator(SMALL), tmp_path, templates=False)
    sim = Simulator(SMALL)
    for path in files.raws:
        data, header = read_raw(path)
        missing = [k for k in RAW_REQUIRED_KEYS if k not in header]
        assert not missing, f"{path.name} lacks {missing}"
        visit = sim.visit(header["VISIT"])
        assert header["EXPID"] == visit.visit
        assert header["INSTRUME"] == "SIMCAM"
        assert header["FILTER"] == header["BAND"] == visit.band
        assert header["MJD-OBS"] == pytest.approx(visit.mjd_tai)
        assert header["EXPTIME"] == visit.exptime
        assert header["DETECTOR"] in (0, 1)
        assert data.dtype == np.uint16 and data.shape == (512, 512)
        assert WCS(header).has_celestial


def test_raw_contains_saturation_bad_columns_and_cosmic_rays() -> None:
    sim = Simulator(SimConfig(seed=3))  # default camera: 2k x 2k
    raw = sim.raw(sim.visits[0], 0)
    cal = sim.calibs(0)
    sat = raw.data >= raw.header["SATURATE"]
    assert sat.sum() > 20, "bright stars saturate and bleed"
    # bleed trails run along columns: a saturated column run longer than the star's core
    cols = np.nonzero(sat.any(axis=0))[0]
    assert max(sat[:, c].sum() for c in cols) > 10
    dead = cal.dead_columns[0]
    rows = cal.defects[:, dead]
    level = np.median(raw.data[:, dead + 3][rows])
    assert np.median(raw.data[:, dead][rows]) < level - 100, "dead column is dark"
    with fits.HDUList([fits.PrimaryHDU(raw.data)]) as _:
        pass
    # cosmic rays: single-pixel spikes far above their neighbours, not PSF-shaped
    d = raw.data.astype(float)
    lap = 4 * d[1:-1, 1:-1] - d[:-2, 1:-1] - d[2:, 1:-1] - d[1:-1, :-2] - d[1:-1, 2:]
    assert (lap > 2000).sum() > 20


def test_next_visit_events_precede_exposures() -> None:
    sim = Simulator(SMALL)
    events = sim.next_visit_events()
    assert [e["visit"] for e in events] == [v.visit for v in sim.visits]
    for e, v in zip(events, sim.visits, strict=True):
        assert e["emit_mjd_tai"] < e["startTime"] == v.mjd_tai
        assert (e["startTime"] - e["emit_mjd_tai"]) * 86400 >= 20.0
        assert e["instrument"] == "SIMCAM" and e["band"] == v.band
