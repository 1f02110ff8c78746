"""Ground truth: every injected variable, transient and mover seen by a visit-detector.

Each row carries the true position, the true flux in the science exposure, the flux the
template holds at that position, their difference, and the S/N a PSF-flux measurement of
that difference reaches (background, source Poisson, read and template noise), which is
what completeness is conditioned on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from astropy.table import Table

TRUTH_COLUMNS = (
    ("visit", np.int64), ("detector", np.int32), ("kind", "U9"), ("object_id", np.int64),
    ("ra", np.float64), ("dec", np.float64), ("x", np.float64), ("y", np.float64),
    ("flux_njy", np.float64), ("template_flux_njy", np.float64),
    ("diff_flux_njy", np.float64), ("diff_snr", np.float64), ("trail_px", np.float64),
    ("on_detector", bool),
)


def empty_truth() -> Table:
    return Table(names=[c for c, _ in TRUTH_COLUMNS], dtype=[t for _, t in TRUTH_COLUMNS])


def psf_noise_factors(psf_stamp: np.ndarray) -> tuple[float, float]:
    """(n_eff, f3) of a normalized PSF stamp: var(F) = n_eff * var_pix + f3 * F."""
    p = psf_stamp / psf_stamp.sum()
    s2 = float(np.sum(p * p))
    return 1.0 / s2, float(np.sum(p**3)) / s2**2


def difference_snr(diff_e: np.ndarray, sci_e: np.ndarray, bg_var_e: np.ndarray,
                   template_var_e: np.ndarray | float, n_eff: float,
                   f3: float) -> np.ndarray:
    """S/N of the PSF flux of a difference (electrons in the flat-fielded science frame)."""
    var = n_eff * (bg_var_e + template_var_e) + f3 * np.maximum(sci_e, 0.0)
    return diff_e / np.sqrt(var)


def truth_table(rows: Mapping[str, npt.ArrayLike]) -> Table:
    table = empty_truth()
    n = len(np.asarray(rows["ra"]))
    if n == 0:
        return table
    return Table({name: np.broadcast_to(np.asarray(rows[name], dtype=dtype), (n,)).copy()
                  for name, dtype in TRUTH_COLUMNS})
