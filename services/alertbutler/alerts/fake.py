"""Fake alerts: realistic, valid alert records for tests and benchmarks.

Deterministic per seed. diaSourceIds are unique within a call (and across visits), the
history of each alert belongs to the same diaObject (same id, nearby positions, earlier
visits), float fields hold values exactly representable as float32 (so a record read back
from Avro equals the record written), and cutouts are real FITS files made by
:mod:`alertbutler.alerts.cutouts`.

Making a FITS cutout costs milliseconds, so one call makes at most ``cutout_pool`` distinct
cutout triples (centred on the first alerts' positions) and later alerts reuse them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alertbutler.alerts.cutouts import check_size, local_wcs, make_cutout

BANDS = ("u", "g", "r", "i", "z", "y")
MJD0 = 61000.0  # late 2025
_ID_VISIT = 10**9  # diaSourceId = visit * 10**9 + serial
_FORCED_OFFSET = 5 * 10**8


def _f32(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=np.float32).tolist()


def fake_cutouts(rng: np.random.Generator, ra: float, dec: float, size: int,
                 flux: float) -> tuple[bytes, bytes, bytes]:
    """Difference, science and template cutouts of a point source at (ra, dec)."""
    wcs = local_wcs(ra, dec, size, rotation_deg=float(rng.uniform(0, 360)))
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    psf = np.exp(-(xx**2 + yy**2) / (2 * 1.7**2))
    psf /= psf.sum()
    sky_var = 250.0**2
    template_star = 0.3 * flux * psf
    mask = np.zeros((size, size), np.uint8)
    mask[psf > psf.max() * 0.05] |= 1 << 5  # DETECTED
    if rng.random() < 0.1:  # a cosmic ray now and then
        mask[rng.integers(size), rng.integers(size)] |= 1 << 3
    var = np.full((size, size), sky_var, np.float32)
    science = template_star + flux * psf + rng.normal(0, 250.0, (size, size)) + 1200.0
    template = template_star + rng.normal(0, 120.0, (size, size)) + 1200.0
    difference = science - template
    return (make_cutout(difference, var + 120.0**2, mask, wcs=wcs),
            make_cutout(science, var, mask, wcs=wcs),
            make_cutout(template, np.full_like(var, 120.0**2), np.zeros_like(mask), wcs=wcs))


def fake_alerts(n: int, *, seed: int = 0, n_history: int = 20, cutout_size: int | None = 64,
                n_objects: int | None = None, visit: int | None = None,
                detector: int | None = None, cutout_pool: int = 16) -> list[dict[str, Any]]:
    """``n`` alert records (see the module doc). ``n_objects`` < ``n`` repeats objects, so
    several alerts share a diaObjectId (later alerts of an object come from later visits
    unless ``visit`` fixes it); ``cutout_size=None`` leaves cutouts out."""
    if n < 0 or n_history < 0:
        raise ValueError("n and n_history must be >= 0")
    if cutout_size is not None:
        check_size(cutout_size)
    rng = np.random.default_rng(seed)
    n_objects = n if n_objects is None else max(1, min(n_objects, n or 1))
    base_visit = 2026_000_000 + (seed % 1000) * 1000 if visit is None else visit
    obj_ra = rng.uniform(0.0, 360.0, n_objects)
    obj_dec = np.degrees(np.arcsin(rng.uniform(-1.0, 0.5, n_objects)))
    obj_flux = rng.lognormal(8.0, 1.0, n_objects)
    obj_ids = (np.arange(n_objects, dtype=np.int64) + 1 + seed * 10**7) * 1000 + 7
    pool: list[tuple[bytes, bytes, bytes]] = []
    alerts: list[dict[str, Any]] = []
    per_alert = n_history + 1
    for i in range(n):
        o = i % n_objects
        this_visit = base_visit if visit is not None else base_visit + i // n_objects
        det = int(rng.integers(0, 189)) if detector is None else detector
        serial = i * per_alert
        # Sources: index 0..n_history-1 history (oldest first), n_history the new one.
        k = per_alert
        mjd = MJD0 + (this_visit - base_visit) * 0.0004 + i * 1e-7 - 3.0 * np.arange(k)[::-1]
        visits = this_visit - 1000 * np.arange(k)[::-1]
        ra = obj_ra[o] + rng.normal(0, 2e-5, k) / max(np.cos(np.radians(obj_dec[o])), 1e-3)
        dec = obj_dec[o] + rng.normal(0, 2e-5, k)
        flux = obj_flux[o] * (1 + 0.3 * np.sin(mjd / 7.0)) + rng.normal(0, 250.0, k)
        ferr = np.full(k, 250.0) * rng.uniform(0.9, 1.1, k)
        bands = [BANDS[b] for b in rng.integers(1, 5, k)]
        x, y = rng.uniform(20, 4050, k), rng.uniform(20, 3980, k)
        snr = np.abs(flux) / ferr
        f32 = {name: _f32(v) for name, v in {
            "flux": flux, "ferr": ferr, "x": x, "y": y, "snr": snr,
            "radec_err": rng.uniform(1e-5, 5e-5, k), "xy_err": rng.uniform(0.02, 0.2, k),
            "sci": flux + 1.2 * obj_flux[o], "tmpl": rng.normal(0.3 * obj_flux[o], 120, k),
            "ixx": rng.uniform(2.5, 4.0, k), "iyy": rng.uniform(2.5, 4.0, k),
            "ixy": rng.normal(0, 0.2, k), "ext": rng.uniform(0, 0.2, k),
            "rel": rng.uniform(0.5, 1.0, k), "chi2": rng.uniform(20, 60, k),
        }.items()}
        ras, decs, mjds = ra.tolist(), dec.tolist(), mjd.tolist()
        sources = []
        for j in range(k):
            sources.append({
                "diaSourceId": this_visit * _ID_VISIT + serial + j,
                "visit": int(visits[j]), "detector": det,
                "diaObjectId": int(obj_ids[o]), "ssObjectId": None, "parentDiaSourceId": None,
                "midpointMjdTai": mjds[j], "ra": ras[j], "raErr": f32["radec_err"][j],
                "dec": decs[j], "decErr": f32["radec_err"][j], "ra_dec_Cov": 0.0,
                "x": f32["x"][j], "xErr": f32["xy_err"][j], "y": f32["y"][j],
                "yErr": f32["xy_err"][j], "centroid_flag": False,
                "apFlux": f32["flux"][j], "apFluxErr": f32["ferr"][j], "apFlux_flag": False,
                "isNegative": f32["flux"][j] < 0, "snr": f32["snr"][j],
                "psfFlux": f32["flux"][j], "psfFluxErr": f32["ferr"][j],
                "psfChi2": f32["chi2"][j], "psfNdata": 49, "psfFlux_flag": False,
                "trailNdata": 0, "dipoleNdata": 0,
                "scienceFlux": f32["sci"][j], "scienceFluxErr": f32["ferr"][j],
                "templateFlux": f32["tmpl"][j], "templateFluxErr": f32["ferr"][j],
                "ixx": f32["ixx"][j], "iyy": f32["iyy"][j], "ixy": f32["ixy"][j],
                "extendedness": f32["ext"][j], "reliability": f32["rel"][j],
                "band": bands[j], "isDipole": False,
                "timeProcessedMjdTai": mjds[j] + 0.0007, "timeWithdrawnMjdTai": None,
                "bboxSize": 15, "pixelFlags": False, "pixelFlags_bad": False,
                "pixelFlags_cr": False, "pixelFlags_edge": False,
                "pixelFlags_interpolated": False, "pixelFlags_saturated": False,
                "pixelFlags_suspect": False, "psfModel_flag_degraded": False,
            })
        forced = [{
            "diaForcedSourceId": this_visit * _ID_VISIT + _FORCED_OFFSET + serial + j,
            "diaObjectId": int(obj_ids[o]), "ra": float(obj_ra[o]), "dec": float(obj_dec[o]),
            "visit": int(visits[j]), "detector": det,
            "psfFlux": f32["flux"][j], "psfFluxErr": f32["ferr"][j],
            "midpointMjdTai": mjds[j], "scienceFlux": f32["sci"][j],
            "scienceFluxErr": f32["ferr"][j], "band": bands[j],
            "timeProcessedMjdTai": mjds[j] + 0.0007, "timeWithdrawnMjdTai": None,
        } for j in range(n_history)]
        source = sources[-1]
        dia_object: dict[str, Any] = {
            "diaObjectId": int(obj_ids[o]), "validityStartMjdTai": source["timeProcessedMjdTai"],
            "ra": float(np.mean(ra)), "raErr": f32["radec_err"][-1],
            "dec": float(np.mean(dec)), "decErr": f32["radec_err"][-1], "ra_dec_Cov": 0.0,
        }
        for b in BANDS:
            sel = [j for j in range(k) if bands[j] == b]
            fl = np.asarray([f32["flux"][j] for j in sel], np.float64)
            dia_object[f"{b}_psfFluxMean"] = _f32(fl.mean())if sel else None
            dia_object[f"{b}_psfFluxMeanErr"] = _f32(250.0 / np.sqrt(len(sel))) if sel else None
            dia_object[f"{b}_psfFluxSigma"] = _f32(fl.std()) if len(sel) > 1 else None
            dia_object[f"{b}_psfFluxNdata"] = len(sel)
        dia_object.update(firstDiaSourceMjdTai=mjds[0], lastDiaSourceMjdTai=mjds[-1],
                          nDiaSources=k)
        cutouts: tuple[bytes | None, ...] = (None, None, None)
        if cutout_size is not None:
            if len(pool) < max(1, cutout_pool):
                pool.append(fake_cutouts(rng, ras[-1], decs[-1], cutout_size,
                                         float(obj_flux[o])))
            cutouts = pool[i % len(pool)]
        alerts.append({
            "diaSourceId": source["diaSourceId"],
            "observation_reason": "wfd", "target_name": None,
            "diaSource": source,
            "prvDiaSources": sources[:-1],
            "prvDiaForcedSources": forced,
            "diaObject": dia_object,
            "ssSource": None,
            "cutoutDifference": cutouts[0],
            "cutoutScience": cutouts[1],
            "cutoutTemplate": cutouts[2],
        })
    return alerts
