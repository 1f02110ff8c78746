"""A night of visits: which field, band, time, pointing, rotation and observing conditions.

Visits cycle through the fields and bands so every field is revisited in several bands; each
gets a small dither, a rotation, a seeing value, a sky level and a transparency. Ids follow
Rubin's day_obs * 100000 + seq_num convention so they sort by time and encode the night.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.time import Time, TimeDelta

from alertbutler.sim.errors import SimError
from alertbutler.sim.sky import BANDS

#: seconds the nextVisit event precedes the start of the exposure (Rubin: at least 20 s)
NEXT_VISIT_LEAD_S = 30.0


@dataclass(frozen=True, kw_only=True)
class NightConfig:
    """What the night looks like. Defaults make a small night that still revisits fields."""

    day_obs: str = "2026-11-25"
    n_fields: int = 2
    bands: tuple[str, ...] = ("g", "r", "i")
    n_visits: int = 12
    exptime: float = 30.0
    #: seconds between the starts of consecutive visits
    cadence_s: float = 900.0
    #: first field centre (deg); further fields step in RA
    ra0: float = 150.0
    dec0: float = -30.0
    dither_arcsec: float = 10.0
    max_rotation_deg: float = 4.0
    seeing_range: tuple[float, float] = (0.65, 1.1)
    template_seeing: float = 0.55
    #: template depth relative to one visit (a coadd of this many visits)
    template_depth: float = 25.0

    def __post_init__(self) -> None:
        bad = [b for b in self.bands if b not in BANDS]
        if bad or not self.bands:
            raise SimError(f"bands must be a non-empty subset of {''.join(BANDS)}, got {bad}")
        if self.n_visits < 1 or self.n_fields < 1:
            raise SimError("a night needs at least one field and one visit")
        if self.template_seeing >= self.seeing_range[0]:
            raise SimError("template seeing must be better than every visit's seeing")

    @property
    def day_obs_int(self) -> int:
        return int(self.day_obs.replace("-", ""))

    @property
    def start_mjd(self) -> float:
        """Evening start: 01:00 UTC on day_obs + 1 (a Chilean night), as MJD TAI."""
        t = Time(self.day_obs, scale="utc") + TimeDelta(1.0 + 1.0 / 24.0, format="jd")
        return float(t.tai.mjd)

    @property
    def mid_mjd(self) -> float:
        return self.start_mjd + 0.5 * self.n_visits * self.cadence_s / 86400.0

    def field_center(self, field: int) -> tuple[float, float]:
        step = 1.0 / math.cos(math.radians(self.dec0))
        return self.ra0 + field * step, self.dec0


@dataclass(frozen=True, kw_only=True)
class Visit:
    """One exposure of the night (one snap per visit, as in Rubin's prompt processing)."""

    visit: int
    seq_num: int
    field: int
    band: str
    mjd_tai: float  # start of exposure
    exptime: float
    ra: float  # boresight, deg
    dec: float
    rotation_deg: float
    seeing: float  # FWHM arcsec
    psf_e1: float
    psf_e2: float
    sky_mag: float  # mag / arcsec^2
    transparency_mag: float  # extinction beyond the nominal zero point
    background_tilt: float  # fractional sky gradient across the focal plane

    @property
    def mid_mjd(self) -> float:
        return self.mjd_tai + 0.5 * self.exptime / 86400.0

    @property
    def group_id(self) -> str:
        return str(self.visit)


def plan_night(config: NightConfig, rng: np.random.Generator,
               sky_mags: dict[str, float]) -> list[Visit]:
    visits = []
    for seq in range(config.n_visits):
        field = seq % config.n_fields
        band = config.bands[(seq // config.n_fields) % len(config.bands)]
        ra, dec = config.field_center(field)
        dith = rng.normal(0, config.dither_arcsec / 3600.0, 2)
        visits.append(Visit(
            visit=config.day_obs_int * 100_000 + seq + 1,
            seq_num=seq + 1,
            field=field,
            band=band,
            mjd_tai=config.start_mjd + seq * config.cadence_s / 86400.0,
            exptime=config.exptime,
            ra=ra + dith[0] / math.cos(math.radians(dec)),
            dec=dec + dith[1],
            rotation_deg=float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)),
            seeing=float(rng.uniform(*config.seeing_range)),
            psf_e1=float(rng.normal(0, 0.02)),
            psf_e2=float(rng.normal(0, 0.02)),
            sky_mag=float(sky_mags[band] + rng.normal(0, 0.1)),
            transparency_mag=float(abs(rng.normal(0, 0.05))),
            background_tilt=float(rng.normal(0, 0.02)),
        ))
    return visits
