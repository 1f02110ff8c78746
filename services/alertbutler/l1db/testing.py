"""Fake L1 rows for tests and benchmarks: column dicts of numpy arrays, fast to make in bulk.

Shipped with the package (as daf_butler ships its test-repo helpers) so tests, benchmarks and
the prompt-processing tests build L1 databases the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alertbutler.l1db.spatial import unit_vectors


def random_sky(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform on the whole sphere (ra, dec in degrees)."""
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return ra, dec


def random_cap(rng: np.random.Generator, n: int, ra: float, dec: float,
               radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform within ``radius`` degrees of (ra, dec), any place on the sky
    (RA wraps, poles are fine: points are drawn around the pole, then rotated)."""
    cos_r = np.cos(np.radians(radius))
    z = rng.uniform(cos_r, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    s = np.sqrt(1 - z**2)
    local = np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=-1)
    centre = unit_vectors([ra], [dec])[0]
    # rotation taking the z axis to the centre
    axis = np.cross([0.0, 0.0, 1.0], centre)
    sin_a, cos_a = np.linalg.norm(axis), centre[2]
    if sin_a < 1e-12:
        world = local if cos_a > 0 else local * [1, -1, -1]
    else:
        k = axis / sin_a
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = np.eye(3) + sin_a * kx + (1 - cos_a) * kx @ kx
        world = local @ rot.T
    out_ra = np.degrees(np.arctan2(world[:, 1], world[:, 0])) % 360.0
    out_dec = np.degrees(np.arcsin(np.clip(world[:, 2], -1, 1)))
    return out_ra, out_dec


def fake_visit_rows(rng: np.random.Generator, *, visit: int, detector: int,
                    object_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, mjd: float,
                    source_id_start: int, forced: bool = True) -> dict[str, dict[str, Any]]:
    """One visit-detector's rows for the given objects: one DiaSource and (optionally) one
    DiaForcedSource per object, and a new DiaObject version for each, as numpy columns."""
    n = len(object_ids)
    object_ids = np.asarray(object_ids, dtype=np.int64)
    flux = rng.normal(1000.0, 100.0, n).astype(np.float32)
    err = np.full(n, 30.0, dtype=np.float32)
    band = np.array(["ugrizy"[visit % 6]] * n, dtype=object)
    mjds = np.full(n, mjd)
    sources = {
        "diaSourceId": np.arange(source_id_start, source_id_start + n, dtype=np.int64),
        "visit": np.full(n, visit, dtype=np.int64), "detector": np.full(n, detector, np.int32),
        "diaObjectId": object_ids, "midpointMjdTai": mjds, "ra": ra, "dec": dec,
        "raErr": np.full(n, 1e-5, np.float32), "decErr": np.full(n, 1e-5, np.float32),
        "x": rng.uniform(0, 4096, n).astype(np.float32),
        "y": rng.uniform(0, 4096, n).astype(np.float32),
        "psfFlux": flux, "psfFluxErr": err, "snr": flux / err, "band": band,
        "psfNdata": np.zeros(n, np.int32), "trailNdata": np.zeros(n, np.int32),
        "dipoleNdata": np.zeros(n, np.int32), "bboxSize": np.full(n, 15, np.int32),
        "timeProcessedMjdTai": mjds + 0.0005,
    }
    objects = {
        "diaObjectId": object_ids, "validityStartMjdTai": mjds, "ra": ra, "dec": dec,
        "nDiaSources": np.ones(n, np.int32), "lastDiaSourceMjdTai": mjds,
        f"{band[0]}_psfFluxMean": flux, f"{band[0]}_psfFluxNdata": np.ones(n, np.int32),
    }
    rows: dict[str, dict[str, Any]] = {"objects": objects, "sources": sources}
    if forced:
        rows["forced_sources"] = {
            "diaForcedSourceId": sources["diaSourceId"], "diaObjectId": object_ids,
            "ra": ra, "dec": dec, "visit": sources["visit"], "detector": sources["detector"],
            "psfFlux": flux, "psfFluxErr": err, "midpointMjdTai": mjds, "band": band,
            "timeProcessedMjdTai": mjds + 0.0005,
        }
    return rows
