"""Master calibrations of a detector, with the structure real ones have, and their validity.

The same arrays are used to make the raws and handed to ISR as the certified masters, so ISR
with the right calibrations restores the sky exactly (up to noise), and a wrong or expired
calibration leaves visible structure. Bias is in ADU, dark in ADU per second, the flat is a
relative response (mean 1) per band, defects a boolean mask of pixels to distrust.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alertbutler.sim.camera import Camera


@dataclass(frozen=True)
class DetectorCalibs:
    detector: int
    bias: np.ndarray  # float32 ADU
    dark: np.ndarray  # float32 ADU / s
    flats: dict[str, np.ndarray]  # band -> float32 relative response
    defects: np.ndarray  # bool, True = bad pixel
    #: columns that are dead (no response) or hot (extra charge); part of ``defects``
    dead_columns: tuple[int, ...]
    hot_columns: tuple[int, ...]
    valid_from_mjd: float
    valid_to_mjd: float


def make_detector_calibs(camera: Camera, detector: int, bands: tuple[str, ...],
                         rng: np.random.Generator, valid_from_mjd: float,
                         valid_to_mjd: float) -> DetectorCalibs:
    ny, nx = camera.ny, camera.nx
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    xn, yn = x / nx - 0.5, y / ny - 0.5
    # bias: level, a gradient, per-column pattern and a little fixed-pattern noise
    bias = (camera.bias_level(detector) + 6.0 * yn + 3.0 * xn
            + rng.normal(0, 2.0, nx).astype(np.float32)[None, :]
            + rng.normal(0, 0.5, (ny, nx)).astype(np.float32))
    # dark: low current, a warm corner (amplifier glow) and hot pixels
    glow = 0.02 * np.exp(-((x / 200.0) ** 2 + (y / 200.0) ** 2))
    dark = np.full((ny, nx), 0.002, np.float32) + glow
    nhot = nx * ny // 40_000
    hot = rng.integers(0, nx * ny, nhot)
    dark.reshape(-1)[hot] += rng.uniform(0.5, 5.0, nhot).astype(np.float32)
    flats = {}
    for band in bands:
        # vignetting, a tilt, pixel response non-uniformity and dust donuts
        vig = 1.0 - 0.08 * ((xn + 0.1 * (detector % 2)) ** 2 + (yn - 0.1) ** 2)
        prnu = rng.normal(1.0, 0.008, (ny, nx)).astype(np.float32)
        flat = vig * (1.0 + 0.02 * xn - 0.01 * yn) * prnu
        for _ in range(3):
            cx, cy = rng.uniform(100, nx - 100), rng.uniform(100, ny - 100)
            r = np.hypot(x - cx, y - cy)
            flat *= 1.0 - 0.03 * ((r > 15) & (r < 35))
        flats[band] = (flat / flat.mean()).astype(np.float32)
    defects = np.zeros((ny, nx), bool)
    cols = rng.choice(np.arange(20, nx - 20), 4, replace=False)
    dead, hot_cols = tuple(int(c) for c in cols[:2]), tuple(int(c) for c in cols[2:])
    for c in cols:
        y0 = int(rng.integers(0, ny // 2))
        defects[y0:, c] = True
    defects.reshape(-1)[rng.integers(0, nx * ny, nx * ny // 100_000)] = True
    return DetectorCalibs(detector, bias.astype(np.float32), dark.astype(np.float32), flats,
                          defects, dead, hot_cols, valid_from_mjd, valid_to_mjd)
