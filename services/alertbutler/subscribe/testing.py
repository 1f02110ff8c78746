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
                  n_history: int = 20, rubin_size: bool = False) -> list[dict[str, Any]]:
    """Fake alerts with nulls, missing objects and histories of 0..``n_history`` entries.

    ``rubin_size`` fills the three cutouts with 9.7 KB each (half random, half zero bytes,
    as compressible as a real FITS cutout roughly is), making ~35 KB alerts like Rubin's
    30 x 30 pixel cutouts, without the cost of building FITS files.
    """
    from alertbutler.alerts.fake import fake_alerts

    rng = np.random.default_rng(seed + 7919)
    records = fake_alerts(n, seed=seed, n_history=n_history,
                          cutout_size=None if rubin_size else cutout_size)
    blobs = None
    if rubin_size:
        blobs = [rng.bytes(4850) + bytes(4850) for _ in range(16)]
    for i, rec in enumerate(records):
        src = rec["diaSource"]
        if rng.random() < 0.1:
            src["snr"] = None
        if rng.random() < 0.05:
            src["band"] = None
        if rng.random() < 0.05:
            src["psfFlux"] = None
        if rng.random() < 0.1:
            rec["diaObject"] = None
        elif rec["diaObject"] is not None:
            rec["diaObject"]["nDiaSources"] = int(rng.integers(1, 40))
        history = rec["prvDiaSources"]
        if history is not None:
            keep = int(rng.integers(0, len(history) + 1))
            history = history[len(history) - keep:]
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


def sample_filters(n: int, *, seed: int = 0) -> list[SampleFilter]:
    """``n`` distinct filters cycling through :data:`TEMPLATES` with random parameters."""
    rng = np.random.default_rng(seed)
    out: list[SampleFilter] = []
    for i in range(n):
        t = i % len(TEMPLATES)
        band = BANDS[int(rng.integers(1, 5))]
        params: tuple[Any, ...]
        if t == 0:
            params = (round(float(rng.uniform(3, 60)), 2),)
        elif t == 1:
            params = (band, round(float(rng.uniform(-100, 5000)), 1))
        elif t == 2:
            params = (band, int(rng.integers(1, 6)))
        elif t == 3:
            params = (band, round(float(rng.uniform(0, 3000)), 1))
        elif t == 4:
            params = (round(float(rng.uniform(0, 360)), 3), round(float(rng.uniform(-80, 20)), 3),
                      round(float(rng.uniform(3600, 36000)), 1))
        elif t == 5:
            params = (round(float(rng.uniform(0.5, 1.0)), 3),)
        elif t == 6:
            other = BANDS[int(rng.integers(1, 5))]
            params = (band, other, int(rng.integers(1, 40)))
        elif t == 7:
            params = (round(float(rng.uniform(0, 5)), 2),)
        elif t == 8:
            params = (round(float(rng.uniform(0, 60)), 1),)
        elif t == 9:
            params = (round(float(rng.uniform(20, 26)), 2),)
        else:
            params = (round(float(rng.uniform(0, 50)), 2),)
        out.append(SampleFilter(f"f{i:03d}", t, params, TEMPLATES[t].format(*params)))
    return out
