"""Science quality against the simulator's ground truth: completeness, purity, accuracy.

Alerts and truth are matched within each visit-detector, nearest first, one-to-one, on the
sphere. Completeness counts injected variables and transients whose true difference S/N is
at least ``snr_min``; purity counts alerts that sit on any injected variable, transient or
mover (a mover's radius grows with its trail). Only visit-detectors that were processed are
counted, so a deliberately broken input does not read as missed science.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from alertbutler.prompt.association import unit_vectors

ARCSEC_RAD = np.radians(1.0 / 3600.0)


@dataclass(frozen=True, kw_only=True)
class Quality:
    """Figures of merit of one run."""

    n_alerts: int
    n_alerts_matched: int
    n_truth_bright: int
    n_truth_bright_found: int
    completeness: float | None
    purity: float | None
    astrometry_rms_arcsec: float | None
    photometry_bias: float | None  # median of (measured - true) / true difference flux
    missed: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missed"] = list(self.missed)[:50]
        return data


def evaluate(sources: Sequence[Mapping[str, Any]], truth: Iterable[Mapping[str, Any]], *,
             processed: Iterable[tuple[int, int]] | None = None, snr_min: float = 10.0,
             radius_arcsec: float = 1.0, pixel_scale: float = 0.2) -> Quality:
    """Match alert diaSources (``visit, detector, ra, dec, psfFlux``) to truth rows
    (``visit, detector, kind, object_id, ra, dec, diff_flux_njy, diff_snr, trail_px``)."""
    done = None if processed is None else {(int(v), int(d)) for v, d in processed}
    by_vd_src: dict[tuple[int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for s in sources:
        by_vd_src[(int(s["visit"]), int(s["detector"]))].append(s)
    by_vd_truth: dict[tuple[int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for t in truth:
        key = (int(t["visit"]), int(t["detector"]))
        if done is None or key in done:
            by_vd_truth[key].append(t)
    n_alerts = sum(len(v) for k, v in by_vd_src.items() if done is None or k in done)
    matched_alerts = 0
    bright = bright_found = 0
    seps: list[float] = []
    ratios: list[float] = []
    missed: list[dict[str, Any]] = []
    for key in sorted(set(by_vd_src) | set(by_vd_truth)):
        if done is not None and key not in done:
            continue
        src = by_vd_src.get(key, [])
        tru = by_vd_truth.get(key, [])
        pairs = _match(src, tru, radius_arcsec, pixel_scale)
        matched_alerts += len(pairs)
        found_truth = {j for _, j, _ in pairs}
        for i, j, sep in pairs:
            t = tru[j]
            if t["kind"] != "mover" and abs(float(t["diff_snr"])) >= snr_min:
                seps.append(sep)
                true_flux = float(t["diff_flux_njy"])
                flux = src[i].get("psfFlux")
                if flux is not None and true_flux != 0:
                    ratios.append((float(flux) - true_flux) / true_flux)
        for j, t in enumerate(tru):
            if t["kind"] in ("variable", "transient") and abs(float(t["diff_snr"])) >= snr_min:
                bright += 1
                if j in found_truth:
                    bright_found += 1
                else:
                    missed.append({"visit": key[0], "detector": key[1], "kind": t["kind"],
                                   "object_id": int(t["object_id"]),
                                   "diff_snr": round(float(t["diff_snr"]), 2),
                                   "x": round(float(t["x"]), 1), "y": round(float(t["y"]), 1)})
    return Quality(
        n_alerts=n_alerts, n_alerts_matched=matched_alerts, n_truth_bright=bright,
        n_truth_bright_found=bright_found,
        completeness=bright_found / bright if bright else None,
        purity=matched_alerts / n_alerts if n_alerts else None,
        astrometry_rms_arcsec=float(np.sqrt(np.mean(np.square(seps)))) if seps else None,
        photometry_bias=float(np.median(ratios)) if ratios else None,
        missed=tuple(missed))


def _match(src: Sequence[Mapping[str, Any]], tru: Sequence[Mapping[str, Any]],
           radius_arcsec: float, pixel_scale: float) -> list[tuple[int, int, float]]:
    """One-to-one (source index, truth index, separation arcsec), nearest first."""
    if not src or not tru:
        return []
    s_xyz = unit_vectors(np.array([s["ra"] for s in src]), np.array([s["dec"] for s in src]))
    t_xyz = unit_vectors(np.array([t["ra"] for t in tru]), np.array([t["dec"] for t in tru]))
    trail = np.array([float(t.get("trail_px") or 0.0) for t in tru]) * pixel_scale
    radius = np.maximum(radius_arcsec, 0.5 * trail + radius_arcsec)
    reach = float(radius.max()) * ARCSEC_RAD
    candidates = []
    tree = cKDTree(t_xyz)
    for i, js in enumerate(tree.query_ball_point(s_xyz, r=reach)):
        for j in js:
            sep = float(np.linalg.norm(s_xyz[i] - t_xyz[j])) / ARCSEC_RAD
            if sep <= radius[j]:
                candidates.append((sep, i, j))
    candidates.sort()
    used_s: set[int] = set()
    used_t: set[int] = set()
    out = []
    for sep, i, j in candidates:
        if i in used_s or j in used_t:
            continue
        used_s.add(i)
        used_t.add(j)
        out.append((i, j, sep))
    return out
