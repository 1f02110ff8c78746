"""Association: attach each new DiaSource to a known DiaObject, or start a new one.

Matching is one-to-one by increasing separation within a fixed radius, computed on unit
vectors (correct across RA 0/360 and at the poles). Ties are broken by ids, so the result
depends only on the inputs: the same sources and objects always give the same association,
whatever order they came in. A new DiaObject takes the id of its first DiaSource.

The DiaObject summary (mean position, per-band flux statistics, counts, first and last
detection) is recomputed from the object's whole DiaSource history, not updated
incrementally, so a re-processed visit gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

BANDS = ("u", "g", "r", "i", "z", "y")
DEFAULT_RADIUS_ARCSEC = 1.0


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    cos_dec = np.cos(dec)
    return np.column_stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])


@dataclass(frozen=True)
class Association:
    """For each source, the DiaObject id it belongs to and whether that object is new."""

    object_ids: tuple[int, ...]
    is_new: tuple[bool, ...]

    @property
    def n_new(self) -> int:
        return sum(self.is_new)


def associate(source_ids: Sequence[int], source_ra: np.ndarray, source_dec: np.ndarray,
              object_ids: Sequence[int], object_ra: np.ndarray, object_dec: np.ndarray,
              *, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC) -> Association:
    """Match sources to objects one-to-one, nearest pairs first, within ``radius_arcsec``."""
    n_src = len(source_ids)
    matched: list[int | None] = [None] * n_src
    if n_src and len(object_ids):
        chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
        src_xyz = unit_vectors(source_ra, source_dec)
        obj_xyz = unit_vectors(object_ra, object_dec)
        pairs = cKDTree(obj_xyz).query_ball_point(src_xyz, r=chord)
        candidates: list[tuple[float, int, int]] = []
        for i, js in enumerate(pairs):
            for j in js:
                dist = float(np.linalg.norm(src_xyz[i] - obj_xyz[j]))
                candidates.append((dist, int(source_ids[i]), int(object_ids[j])))
        candidates.sort()
        index_of_source = {int(s): i for i, s in enumerate(source_ids)}
        taken_objects: set[int] = set()
        for _dist, sid, oid in candidates:
            i = index_of_source[sid]
            if matched[i] is None and oid not in taken_objects:
                matched[i] = oid
                taken_objects.add(oid)
    ids = tuple(int(m) if m is not None else int(source_ids[i]) for i, m in enumerate(matched))
    return Association(object_ids=ids, is_new=tuple(m is None for m in matched))


def summarize_object(object_id: int, sources: Iterable[Mapping[str, Any]],
                     *, validity_start: float) -> dict[str, Any]:
    """A DiaObject record (alert schema names) summarizing all of its DiaSources.

    ``sources`` are DiaSource records (history plus the new one); ``validity_start`` is the
    MJD TAI from which this version holds, the new visit's midpoint (never the wall clock).
    """
    rows = sorted(sources, key=lambda s: (s["midpointMjdTai"], s["diaSourceId"]))
    if not rows:
        raise ValueError(f"DiaObject {object_id} has no DiaSource to summarize")
    xyz = unit_vectors(np.array([r["ra"] for r in rows]), np.array([r["dec"] for r in rows]))
    mean = xyz.mean(axis=0)
    mean /= np.linalg.norm(mean)
    ra = float(np.degrees(np.arctan2(mean[1], mean[0])) % 360.0)
    dec = float(np.degrees(np.arcsin(np.clip(mean[2], -1.0, 1.0))))
    n = len(rows)
    spread = None
    if n > 1:
        sep = np.degrees(np.arccos(np.clip(xyz @ mean, -1.0, 1.0)))
        spread = float(np.sqrt(np.mean(sep**2) / (n - 1)))
    record: dict[str, Any] = {
        "diaObjectId": int(object_id),
        "validityStartMjdTai": float(validity_start),
        "ra": ra, "raErr": spread, "dec": dec, "decErr": spread, "ra_dec_Cov": None,
        "firstDiaSourceMjdTai": float(rows[0]["midpointMjdTai"]),
        "lastDiaSourceMjdTai": float(rows[-1]["midpointMjdTai"]),
        "nDiaSources": n,
    }
    for band in BANDS:
        fluxes = np.array([r["psfFlux"] for r in rows
                           if r.get("band") == band and r.get("psfFlux") is not None], float)
        errors = np.array([r["psfFluxErr"] for r in rows
                           if r.get("band") == band and r.get("psfFlux") is not None
                           and r.get("psfFluxErr")], float)
        record[f"{band}_psfFluxNdata"] = len(fluxes)
        record[f"{band}_psfFluxMean"] = float(fluxes.mean()) if len(fluxes) else None
        record[f"{band}_psfFluxSigma"] = float(fluxes.std(ddof=1)) if len(fluxes) > 1 else None
        record[f"{band}_psfFluxMeanErr"] = (
            float(1.0 / np.sqrt(np.sum(1.0 / errors**2)))
            if len(errors) and len(errors) == len(fluxes) else None)
    return record
