"""Score a catalog of difference-image sources (or alerts) against the ground truth.

A source is real when a truth object of the same visit lies within the match radius;
a truth object is found when a source lies within it. Completeness is over truth objects on
the detector with |true difference S/N| >= ``snr_min``; purity over all sources; astrometry
over matched sources; photometry over matched point sources (movers trail) bright enough
for a 2% statement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Score:
    n_truth: int  # truth objects on a detector with |diff S/N| >= snr_min
    n_found: int
    completeness: float
    n_sources: int
    n_real: int
    purity: float
    astrometric_rms_arcsec: float  # all matched sources
    astrometric_rms_bright_arcsec: float  # matched with |true S/N| >= snr_min
    #: median measured / true difference flux of bright matched point sources (not movers)
    photometric_ratio_median: float
    n_photometric: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def match(sources: Table, truth: Table, radius_arcsec: float = 1.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """(truth index per source or -1, source index per truth or -1): nearest within radius,
    same visit (and same detector when both tables have one)."""
    chord = 2 * math.sin(math.radians(radius_arcsec / 3600.0) / 2)
    src_to_truth = np.full(len(sources), -1, np.int64)
    truth_to_src = np.full(len(truth), -1, np.int64)
    use_det = "detector" in sources.colnames and "detector" in truth.colnames
    keys_s = (np.asarray(sources["visit"]), np.asarray(sources["detector"]) if use_det else None)
    keys_t = (np.asarray(truth["visit"]), np.asarray(truth["detector"]) if use_det else None)
    for visit in np.unique(keys_s[0]):
        dets = np.unique(keys_s[1][keys_s[0] == visit]) if keys_s[1] is not None else [None]
        for det in dets:
            s_sel = keys_s[0] == visit
            t_sel = keys_t[0] == visit
            if use_det:
                s_sel &= keys_s[1] == det
                t_sel &= keys_t[1] == det
            si, ti = np.nonzero(s_sel)[0], np.nonzero(t_sel)[0]
            if len(si) == 0 or len(ti) == 0:
                continue
            vs = _unit(np.asarray(sources["ra"])[si], np.asarray(sources["dec"])[si])
            vt = _unit(np.asarray(truth["ra"])[ti], np.asarray(truth["dec"])[ti])
            d, j = cKDTree(vt).query(vs, distance_upper_bound=chord)
            ok = np.isfinite(d)
            src_to_truth[si[ok]] = ti[j[ok]]
            d, j = cKDTree(vs).query(vt, distance_upper_bound=chord)
            ok = np.isfinite(d)
            truth_to_src[ti[ok]] = si[j[ok]]
    return src_to_truth, truth_to_src


def score(sources: Table, truth: Table, *, snr_min: float = 10.0, phot_snr_min: float = 20.0,
          radius_arcsec: float = 1.0, flux_column: str = "psf_flux") -> Score:
    """Completeness, purity, astrometry and photometry of ``sources`` (columns visit,
    [detector], ra, dec and a difference flux in nJy) against a truth table."""
    s2t, t2s = match(sources, truth, radius_arcsec)
    snr = np.abs(np.asarray(truth["diff_snr"]))
    on = np.asarray(truth["on_detector"]) if "on_detector" in truth.colnames else True
    bright = (snr >= snr_min) & on
    n_truth = int(bright.sum())
    n_found = int((t2s[bright] >= 0).sum())
    real = s2t >= 0
    m = np.nonzero(real)[0]
    t = s2t[m]
    cosd = np.cos(np.radians(np.asarray(truth["dec"])[t]))
    dra = (np.asarray(sources["ra"])[m] - np.asarray(truth["ra"])[t]) * cosd * 3600
    ddec = (np.asarray(sources["dec"])[m] - np.asarray(truth["dec"])[t]) * 3600
    err2 = dra**2 + ddec**2
    rms = float(np.sqrt(err2.mean())) if len(m) else math.nan
    b = snr[t] >= snr_min
    rms_b = float(np.sqrt(err2[b].mean())) if b.any() else math.nan
    # movers are trailed: a PSF fit underestimates them by design (Rubin fits trails apart)
    p = (snr[t] >= phot_snr_min) & (np.asarray(truth["kind"])[t] != "mover")
    ratio = (np.asarray(sources[flux_column])[m][p]
             / np.asarray(truth["diff_flux_njy"])[t][p])
    return Score(
        n_truth=n_truth, n_found=n_found,
        completeness=n_found / n_truth if n_truth else math.nan,
        n_sources=len(sources), n_real=int(real.sum()),
        purity=float(real.mean()) if len(sources) else math.nan,
        astrometric_rms_arcsec=rms, astrometric_rms_bright_arcsec=rms_b,
        photometric_ratio_median=float(np.median(ratio)) if len(ratio) else math.nan,
        n_photometric=len(ratio),
    )
