"""The simulated sky of one field: static stars and galaxies, variables, transients, movers.

Brightness is in AB magnitudes per band and converted to nJy (the unit of Rubin's alert
fluxes); the visit's photometric zero point turns nJy into electrons. Light curves are
analytic so any time can be evaluated without state: variables are sinusoids around their
mean (the template holds the mean), transients rise exponentially and decline linearly in
magnitude, movers travel on great-circle-straight lines at a constant rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BANDS = ("u", "g", "r", "i", "z", "y")
#: magnitude giving 1 electron per second, per band (Rubin-like throughputs)
ZEROPOINT = {"u": 26.5, "g": 28.3, "r": 28.1, "i": 27.8, "z": 27.4, "y": 26.6}
#: dark-sky brightness, mag / arcsec^2
SKY_MAG = {"u": 22.9, "g": 22.3, "r": 21.2, "i": 20.5, "z": 19.6, "y": 18.6}
#: colour offsets relative to r for a typical star/galaxy (mag)
_COLOR = {"u": 1.3, "g": 0.5, "r": 0.0, "i": -0.2, "z": -0.3, "y": -0.35}

NJY_ZERO = 31.4  # AB magnitude of 1 nJy


def mag_to_njy(mag: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, -0.4 * (np.asarray(mag, float) - NJY_ZERO))


@dataclass(frozen=True)
class FieldSky:
    """Catalogs of one field; positions in degrees, magnitudes in r plus a colour scale."""

    field: int
    ra: float
    dec: float
    stars: dict[str, np.ndarray]
    galaxies: dict[str, np.ndarray]
    variables: dict[str, np.ndarray]
    transients: dict[str, np.ndarray]
    movers: dict[str, np.ndarray]

    # --- static sources -------------------------------------------------------------------
    def static_flux(self, kind: str, band: str) -> np.ndarray:
        cat = getattr(self, kind)
        return mag_to_njy(cat["mag_r"] + cat["color"] * _COLOR[band])

    # --- variables: sinusoid in flux around the template's mean ---------------------------
    def variable_flux(self, band: str, mjd: float) -> tuple[np.ndarray, np.ndarray]:
        """(flux now, mean flux) in nJy."""
        v = self.variables
        mean = mag_to_njy(v["mag_r"] + v["color"] * _COLOR[band])
        phase = 2 * math.pi * (mjd / v["period"] + v["phase"])
        return mean * (1.0 + v["amplitude"] * np.sin(phase)), mean

    # --- transients: exponential rise, linear-in-magnitude decline ------------------------
    def transient_flux(self, band: str, mjd: float) -> np.ndarray:
        t = self.transients
        dt = mjd - t["t_peak"]
        peak = mag_to_njy(t["peak_mag_r"] + t["color"] * _COLOR[band])
        rise = np.exp(np.minimum(dt, 0.0) / t["rise"])
        decline = np.power(10.0, -0.4 * np.maximum(dt, 0.0) * t["decline"])
        flux = np.where(dt < 0, peak * rise, peak * decline)
        return np.where(mjd >= t["t_start"], flux, 0.0)

    # --- movers ---------------------------------------------------------------------------
    def mover_position(self, mjd: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.movers
        dt = np.asarray(mjd) - m["t0"]
        dec = m["dec0"] + m["rate_dec"] * dt
        ra = m["ra0"] + m["rate_ra"] * dt / np.cos(np.radians(dec))
        return ra, dec

    def mover_flux(self, band: str) -> np.ndarray:
        return mag_to_njy(self.movers["mag_r"] + self.movers["color"] * _COLOR[band])


def _uniform_disc(rng: np.random.Generator, n: int, ra: float, dec: float,
                  radius_deg: float) -> tuple[np.ndarray, np.ndarray]:
    r = radius_deg * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * math.pi, n)
    d_dec = r * np.sin(phi)
    d_ra = r * np.cos(phi) / math.cos(math.radians(dec))
    return ra + d_ra, dec + d_dec


def _powerlaw_mags(rng: np.random.Generator, n: int, bright: float, faint: float,
                   slope: float) -> np.ndarray:
    """Magnitudes with counts rising as 10^(slope*m), as star and galaxy counts do."""
    u = rng.uniform(0, 1, n)
    a, b = 10 ** (slope * bright), 10 ** (slope * faint)
    return np.log10(a + u * (b - a)) / slope


@dataclass(frozen=True, kw_only=True)
class SkyDensity:
    """Source counts per square degree (defaults: high latitude, generous in transients)."""

    stars: float = 12_000.0
    galaxies: float = 30_000.0
    variables: float = 300.0
    transients: float = 1_500.0
    movers: float = 400.0
    saturated_stars: float = 100.0


def make_field_sky(rng: np.random.Generator, field: int, ra: float, dec: float,
                   radius_deg: float, mjd_mid: float, density: SkyDensity) -> FieldSky:
    """Draw the catalogs of a field covering a disc of ``radius_deg``."""
    area = math.pi * radius_deg**2

    def count(per_deg2: float) -> int:
        return int(rng.poisson(per_deg2 * area))

    n = count(density.stars)
    s_ra, s_dec = _uniform_disc(rng, n, ra, dec, radius_deg)
    mags = _powerlaw_mags(rng, n, 15.5, 25.5, 0.2)
    nsat = count(density.saturated_stars)
    b_ra, b_dec = _uniform_disc(rng, nsat, ra, dec, radius_deg)
    stars = {
        "ra": np.r_[s_ra, b_ra], "dec": np.r_[s_dec, b_dec],
        "mag_r": np.r_[mags, rng.uniform(12.5, 15.0, nsat)],
        "color": rng.uniform(0.2, 1.6, n + nsat),
    }
    n = count(density.galaxies)
    g_ra, g_dec = _uniform_disc(rng, n, ra, dec, radius_deg)
    mag_g = _powerlaw_mags(rng, n, 18.0, 25.5, 0.3)
    galaxies = {
        "ra": g_ra, "dec": g_dec, "mag_r": mag_g, "color": rng.uniform(0.6, 1.4, n),
        # half-light radius shrinks with magnitude, arcsec
        "r_eff": np.clip(rng.lognormal(np.log(0.35 + 0.25 * (24.5 - mag_g).clip(0)), 0.3),
                         0.15, 4.0),
        "q": rng.uniform(0.3, 1.0, n), "theta": rng.uniform(0, math.pi, n),
    }
    n = count(density.variables)
    v_ra, v_dec = _uniform_disc(rng, n, ra, dec, radius_deg)
    variables = {
        "id": np.arange(n) + field * 1_000_000 + 100_000,
        "ra": v_ra, "dec": v_dec, "mag_r": rng.uniform(17.5, 22.5, n),
        "color": rng.uniform(0.2, 1.2, n),
        "amplitude": rng.uniform(0.05, 0.5, n),  # fractional flux amplitude
        "period": 10 ** rng.uniform(-1.3, 0.5, n), "phase": rng.uniform(0, 1, n),
    }
    n = count(density.transients)
    # half the transients sit in a galaxy, offset from its centre as supernovae are
    host = rng.uniform(0, 1, n) < 0.5
    t_ra, t_dec = _uniform_disc(rng, n, ra, dec, radius_deg)
    hosts = rng.integers(0, max(len(g_ra), 1), n)
    if len(g_ra):
        off = rng.normal(0, 1, (n, 2)) * galaxies["r_eff"][hosts, None] / 3600.0
        t_ra = np.where(host, g_ra[hosts] + off[:, 0] / math.cos(math.radians(dec)), t_ra)
        t_dec = np.where(host, g_dec[hosts] + off[:, 1], t_dec)
    t_peak = mjd_mid + rng.uniform(-0.25, 0.25, n)
    rise = rng.uniform(0.02, 0.15, n)  # e-folding days
    transients = {
        "id": np.arange(n) + field * 1_000_000 + 200_000,
        "ra": t_ra, "dec": t_dec, "peak_mag_r": rng.uniform(18.5, 23.5, n),
        "color": rng.uniform(-0.3, 0.8, n),
        "t_peak": t_peak, "rise": rise, "t_start": t_peak - 5.0 * rise,
        "decline": rng.uniform(0.5, 3.0, n),  # mag / day
        "host": np.where(host, hosts, -1),
    }
    n = count(density.movers)
    m_ra, m_dec = _uniform_disc(rng, n, ra, dec, radius_deg * 0.8)
    speed = rng.uniform(0.05, 0.6, n)  # deg / day
    angle = rng.uniform(0, 2 * math.pi, n)
    movers = {
        "id": np.arange(n) + field * 1_000_000 + 300_000,
        "ra0": m_ra, "dec0": m_dec, "t0": np.full(n, mjd_mid),
        "rate_ra": speed * np.cos(angle), "rate_dec": speed * np.sin(angle),
        "mag_r": rng.uniform(18.5, 22.5, n), "color": rng.uniform(0.3, 0.9, n),
    }
    return FieldSky(field, ra, dec, stars, galaxies, variables, transients, movers)
