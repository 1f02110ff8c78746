"""Test and benchmark support: varied alerts (with nulls and short histories) and filter sets.

The alerts library's fake alerts are regular (every history has the same length, no nulls);
filters need variety to be tested, so :func:`varied_alerts` perturbs them within the schema.
:func:`sample_filters` makes many distinct filters from a few templates, each remembering
its template and parameters so a test can evaluate the same condition by brute force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BANDS = ("u", "g", "r", "i", "z", "y")


def varied_alerts(n: int, *, seed: int = 0, cutout_size: int | None = None,
                  n_history: int = 20, rubin_size: bool = False,
                  pool: int = 200) -> list[dict[str, Any]]:
    """Fake alerts with nulls, missing objects and histories of 0..``n_history`` entries.

    At most ``pool`` alerts are made by the alerts library (that costs ~1 ms each); the rest
    are copies with new diaSourceIds, positions, bands and fluxes, so 20,000 take seconds.
    ``rubin_size`` fills the three cutouts with 9.7 KB each (half random, half zero bytes,
    about as compressible as a real cutout), making ~35 KB alerts like Rubin's 30 x 30 pixel
    cutouts without the cost of building FITS files.
    """
    from alertbutler.alerts.fake import fake_alerts

    rng = np.random.default_rng(seed + 7919)
    base = fake_alerts(min(n, pool), seed=seed, n_history=n_history,
                       cutout_size=None if rubin_size else cutout_size)
    blobs = [rng.bytes(4850) + bytes(4850) for _ in range(16)] if rubin_size else None
    next_id = max(r["diaSourceId"] for r in base) + 1 if base else 0
    records = []
    for i in range(n):
        rec = dict(base[i % len(base)])
        src = dict(rec["diaSource"])
        rec["diaSource"] = src
        if i >= len(base):
            rec["diaSourceId"] = src["diaSourceId"] = next_id
            next_id += 1
            src["ra"] = float(rng.uniform(0, 360))
            src["dec"] = float(np.degrees(np.arcsin(rng.uniform(-1, 0.5))))
            src["band"] = BANDS[int(rng.integers(0, 6))]
            scale = float(np.float32(rng.lognormal(0, 0.7)))
            for name in ("psfFlux", "snr"):
                if src[name] is not None:
                    src[name] = float(np.float32(src[name] * scale))
        if rng.random() < 0.1:
            src["snr"] = None
        if rng.random() < 0.05:
            src["band"] = None
        if rng.random() < 0.05:
            src["psfFlux"] = None
        if rng.random() < 0.1:
            rec["diaObject"] = None
        elif rec["diaObject"] is not None:
            rec["diaObject"] = {**rec["diaObject"], "nDiaSources": int(rng.integers(1, 40))}
        history = rec["prvDiaSources"]
        if history is not None:
            keep = int(rng.integers(0, len(history) + 1))
            history = [dict(e) for e in history[len(history) - keep:]]
            for entry in history:
                if rng.random() < 0.1:
                    entry["snr"] = None
                if rng.random() < 0.05:
                    entry["psfFlux"] = None
            rec["prvDiaSources"] = history if rng.random() > 0.1 else None
        if blobs is not None:
            j = i % len(blobs)
            rec["cutoutDifference"] = blobs[j]
            rec["cutoutScience"] = blobs[(j + 1) % len(blobs)]
            rec["cutoutTemplate"] = blobs[(j + 2) % len(blobs)]
        records.append(rec)
    return records


@dataclass(frozen=True)
class SampleFilter:
    """A generated filter: its name, text, and the template and parameters it came from."""

    name: str
    template: int
    params: tuple[Any, ...]
    text: str


TEMPLATES = (
    "diaSource.snr > {0}",
    "diaSource.band == '{0}' and diaSource.psfFlux > {1}",
    "count(prvDiaSources where band == '{0}') >= {1}",
    "mean(prvDiaSources.psfFlux where band == '{0}') > {1}",
    "within({0}, {1}, {2})",
    "diaSource.reliability > {0} or diaSource.snr is null",
    "not (diaSource.band in ['{0}', '{1}']) and diaObject.nDiaSources >= {2}",
    "max(prvDiaSources.snr) - min(prvDiaSources.snr) > {0}",
    "days_since_first_detection() > {0}",
    "mag(diaSource.psfFlux) < {0}",
    "diaSource.psfFlux / diaSource.psfFluxErr > {0} and diaSource.snr is not null",
)


def sample_filters(n: int, *, seed: int = 0, selective: bool = False,
                   n_history: int = 8) -> list[SampleFilter]:
    """``n`` distinct filters cycling through :data:`TEMPLATES` with random parameters.

    ``selective`` picks parameters that keep a few percent of :func:`varied_alerts` each
    (for tests that forward what is kept to 100 topics), for alerts made with
    ``n_history`` history entries at most.
    """
    rng = np.random.default_rng(seed)

    def u(lo: float, hi: float, digits: int = 2) -> float:
        return round(float(rng.uniform(lo, hi)), digits)

    out: list[SampleFilter] = []
    for i in range(n):
        t = i % len(TEMPLATES)
        if selective and t == 5:  # keeps every alert without an snr: not selective
            t = 0
        band = BANDS[int(rng.integers(1, 5))]
        other = BANDS[int(rng.integers(1, 5))]
        params = _params(t, selective, band, other, u, rng, n_history / 8)
        text = TEMPLATES[t].format(*params)
        out.append(SampleFilter(f"f{i:03d}", t, params, text))
    return out


def _params(t: int, s: bool, band: str, other: str, u: Any, rng: np.random.Generator,
            scale: float) -> tuple[Any, ...]:
    """Parameters of template ``t``; ``s`` (selective) narrows them (``scale``: history
    length relative to 8 entries, for the history-based templates)."""
    if t == 0:
        return (u(60, 140) if s else u(3, 60),)
    if t == 1:
        return (band, u(20000, 60000, 1) if s else u(-100, 5000, 1))
    if t == 2:
        return (band, round(int(rng.integers(5, 8)) * scale) if s else
                int(rng.integers(1, 6)))
    if t == 3:
        return (band, u(20000, 60000, 1) if s else u(0, 3000, 1))
    if t == 4:
        return (u(0, 360, 3), u(-60, 20, 3), u(3600, 10800, 1) if s else u(3600, 36000, 1))
    if t == 5:
        return (u(0.5, 1.0, 3),)
    if t == 6:
        return (band, other, int(rng.integers(36, 40)) if s else int(rng.integers(1, 40)))
    if t == 7:
        return (u(20, 40) if s else u(0, 5),)
    if t == 8:
        return (round(u(21, 23.5, 1) * scale, 1) if s else u(0, 60, 1),)
    if t == 9:
        return (u(19, 20) if s else u(20, 26),)
    return (u(60, 150) if s else u(0, 50),)
